// The CUDA backend behind the engine's StepModel interface: uploads the loaded weights, sizes
// the KV pool from the GPU memory left (vLLM's --gpu-memory-utilization rule: the pool gets what
// is left of utilization x total after the weights and the step's activations), and runs steps
// with CUDA graphs for decode. Only built with -DQWENBOX_CUDA=ON.
#pragma once

#include <memory>
#include <string>

#include "kernels/cuda/cuda_api.h"
#include "model/step_model.h"

namespace qb {

struct CudaStepOptions {
  int64_t max_batch_tokens = 2048;  // tokens per step
  int64_t max_num_seqs = 64;        // sequences per step
  int64_t max_logit_rows = 0;       // logit rows per step (speculation: more than sequences); at least max_num_seqs
  int64_t max_total_tokens = 0;     // longest sequence (block table width); 0: the model's context
  int64_t block_size = 16;
  DType kv_dtype = DType::kBF16;
  double gpu_memory_utilization = 0.9;
  int64_t kv_cache_bytes = 0;  // > 0: exactly this pool (within the GPU's memory)
  // kGemv with an f32 pool computes every step in f32 (tests compare it tightly).
  cuda::LinearPath linear_path = cuda::LinearPath::kAuto;
};

struct CudaStepInfo {
  std::string device;          // description
  int64_t gpu_total_bytes = 0;
  int64_t gpu_free_before = 0;  // before anything was uploaded
  int64_t weight_bytes = 0;     // as uploaded
  int64_t activation_bytes = 0;  // measured: state allocated besides the pool
  int64_t kv_cache_bytes = 0;
  int64_t kv_blocks = 0;
  std::string how;  // one line on the sizing
};

Result<std::unique_ptr<StepModel>> MakeCudaStepModel(const ModelConfig& config, const Qwen2Weights& weights,
                                                     const CudaStepOptions& options, CudaStepInfo* info);

}  // namespace qb
