// Qwen2 weights in GPU memory, in the layouts the CUDA kernels read (docs/CUDA.md):
// - matrices as bf16/f16 as stored, GPTQ/AWQ (Q4Z) repacked to the int4 layout, every other
//   type (f32, Q8_0, Q4_0, Q4_K, Q6_K) dequantized to bf16 at upload (logged);
// - q/k/v fused into one [q_dim + 2 kv_dim, hidden] matrix and gate/up into one
//   [2 intermediate, hidden] matrix when their formats (and GPTQ permutations) agree, so a
//   decode step makes two launches instead of five and small matrices do not starve the GPU;
//   otherwise the parts stay separate and write column slices of the same output;
// - norms and biases f32.
// Built from loaded CPU weights (Upload) or directly on the device with random values
// (Random, for benchmarks of full-size shapes).
#pragma once

#include <string>
#include <vector>

#include "kernels/cuda/cuda_api.h"
#include "model/config.h"
#include "model/weights.h"
#include "util/status.h"

namespace qb {

// A linear layer as one or more row blocks: part i writes output columns
// [offsets[i], offsets[i] + parts[i].rows).
struct CudaLinear {
  std::vector<cuda::DeviceMatrix> parts;
  std::vector<int64_t> offsets;
  int64_t out = 0;               // total output features
  const float* bias = nullptr;   // f32 [out] or nullptr
};

struct CudaLayer {
  const float* attn_norm = nullptr;
  CudaLinear qkv;  // [q | k | v]
  CudaLinear o;
  const float* ffn_norm = nullptr;
  CudaLinear gate_up;  // [gate | up]
  CudaLinear down;
};

struct CudaWeights {
  std::vector<cuda::DeviceBuffer> buffers;  // owns every allocation below
  const void* embedding = nullptr;          // [vocab, hidden]
  DType embedding_type = DType::kBF16;      // f32, f16 or bf16
  std::vector<CudaLayer> layers;
  const float* final_norm = nullptr;
  CudaLinear lm_head;
  std::vector<std::string> notes;  // conversions made at upload

  // Bytes one decode step reads: every matrix once (the embedding row lookup is negligible).
  int64_t MatrixBytes() const;
  // Largest rows * cols of an int4 matrix (scratch for its dequantization), and of any input.
  int64_t MaxInt4Elements() const;
  int64_t MaxInputFeatures() const;
};

// Uploads loaded weights (any DType the CPU loader produces). Fails for shapes the kernels do
// not support (in_features not a multiple of 32 for int4, 8 otherwise).
Result<CudaWeights> UploadWeights(const ModelConfig& config, const Qwen2Weights& weights);

// Repacks every int4 matrix the tensor-core kernel supports into its layout (kInt4Mma,
// int4_mma.cu), freeing the row-major codes; returns how many were repacked.
int UseInt4TensorCoreLayout(CudaWeights& weights);

// Random weights made on the device: matrices in `format` (bf16, f16 or int4 with
// `group_size`), embedding and lm_head bf16 (as GPTQ/AWQ checkpoints keep them), norms 1,
// biases 0. Values are scaled so that activations stay in range through every layer.
CudaWeights RandomWeights(const ModelConfig& config, cuda::WeightFormat format, int64_t group_size, uint64_t seed);

}  // namespace qb
