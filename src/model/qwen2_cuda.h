// The Qwen2 forward pass on a CUDA GPU: the same ForwardBatch contract as Qwen2Model::Forward
// (tokens, positions, KV slots, per-token block tables from the CPU scheduler, logit rows),
// with weights, the paged KV pool and all activations in device memory.
//
// Everything a step needs is allocated at construction for `max_tokens` tokens, so a step does
// no cudaMalloc. A step's host inputs go up in one copy (a pinned staging buffer at fixed
// device offsets), which also makes steps replayable as CUDA graphs: with `use_graphs`, the
// first step of each (tokens, logit rows) shape up to `graph_max_tokens` is captured and later
// steps of that shape replay it, removing ~12 launch overheads per layer.
//
// Activations: the residual stream and every elementwise op are f32 (as the CPU reference);
// linear layers read f32 activations in the GEMV (decode) and bf16/f16-rounded ones in cuBLAS
// (prefill), accumulating in f32; logits are f32.
#pragma once

#include <map>
#include <memory>
#include <utility>

#include "kernels/cuda/cuda_api.h"
#include "model/config.h"
#include "model/cuda_weights.h"
#include "model/qwen2.h"
#include "util/status.h"

namespace qb {

struct CudaModelOptions {
  int64_t max_tokens = 512;         // tokens per step (a prefill chunk plus decodes)
  int64_t max_logit_rows = 64;      // logit rows per step
  int64_t max_seqs = 64;            // distinct block tables per step
  int64_t max_blocks_per_seq = 256; // table width (context up to this x block_size tokens)
  int64_t num_blocks = 1024;        // KV pool blocks
  int64_t block_size = 16;
  DType kv_dtype = DType::kBF16;  // bf16 or f16 (f32 also works, for tests)
  bool use_graphs = false;
  int64_t graph_max_tokens = 64;
  cuda::LinearPath linear_path = cuda::LinearPath::kAuto;
  // Fused kernels (docs/CUDA_PERF.md): residual add + RMSNorm, RoPE + KV scatter, split-key
  // decode attention. false: the first version's separate kernels (for comparisons).
  bool fused_ops = true;
  // GPTQ/AWQ int4 matrices in the tensor-core layout (kInt4Mma: 1-32 tokens on the tensor
  // cores, f16-rounded activations); false keeps the CUDA-core GEMV layout (f32 activations).
  bool int4_tensor_cores = true;
};

class CudaQwen2Model {
 public:
  // Uploads loaded weights (see cuda_weights.h for the conversions).
  static Result<std::unique_ptr<CudaQwen2Model>> Create(const ModelConfig& config, const Qwen2Weights& weights,
                                                        const CudaModelOptions& options);
  // Random weights made on the device (benchmarks).
  static Result<std::unique_ptr<CudaQwen2Model>> CreateRandom(const ModelConfig& config, cuda::WeightFormat format,
                                                              int64_t group_size, uint64_t seed,
                                                              const CudaModelOptions& options);
  // Already uploaded weights (e.g. from TakeWeights() of a model being resized).
  static Result<std::unique_ptr<CudaQwen2Model>> FromWeights(const ModelConfig& config, CudaWeights weights,
                                                             const CudaModelOptions& options);
  ~CudaQwen2Model();
  CudaQwen2Model(const CudaQwen2Model&) = delete;
  CudaQwen2Model& operator=(const CudaQwen2Model&) = delete;

  const ModelConfig& config() const { return config_; }
  const CudaModelOptions& options() const { return options_; }
  const CudaWeights& weights() const { return weights_; }
  // Moves the weights out (waits for the stream first); the model must not run afterwards.
  CudaWeights TakeWeights();
  int64_t kv_pool_bytes() const;
  // Graphs can be switched per step (benchmarks compare both).
  void set_use_graphs(bool on) { options_.use_graphs = on; }
  // Switches the fused kernels per step; graphs captured with the other setting are dropped.
  void set_fused_ops(bool on);
  // Profiling: while set, steps run without graphs and mark `events` after each kernel class
  // (labels: "embedding", "norm", "qkv", "rope+kv", "attention", "o", "add+norm", "gate_up",
  // "silu", "down", "add", "final norm", "lm_head"); the caller calls Begin() before Enqueue.
  void set_profiler(cuda::EventList* events) { profiler_ = events; }

  // One step: writes the tokens' keys/values into the pool and returns logits
  // [logit_rows, vocab] f32 on the host.
  Result<Tensor> Forward(const ForwardBatch& batch);
  // The same without waiting or downloading (benchmarks): logits stay in device_logits().
  Status Enqueue(const ForwardBatch& batch);
  const float* device_logits() const { return logits_; }

 private:
  CudaQwen2Model(ModelConfig config, CudaWeights weights, const CudaModelOptions& options);
  void AllocateState();
  Status Stage(const ForwardBatch& batch);  // validates and copies the step's inputs
  void RunLayers(int64_t n, int64_t m);     // every kernel of the step
  void RunLinear(const float* x, int64_t n, const CudaLinear& lin, float* y);
  void Mark(const char* label) {
    if (profiler_ != nullptr) profiler_->Mark(label);
  }

  ModelConfig config_;
  CudaWeights weights_;
  CudaModelOptions options_;
  std::vector<cuda::DeviceBuffer> state_;  // KV pool, activations, scratch, inputs
  std::vector<void*> k_pool_, v_pool_;     // per layer
  const float* inv_freq_ = nullptr;
  float rope_scale_ = 1.f;
  // Activations [max_tokens, *].
  float *x_ = nullptr, *h_ = nullptr, *qkv_ = nullptr, *attn_ = nullptr, *proj_ = nullptr, *gu_ = nullptr,
        *act_ = nullptr, *last_ = nullptr, *logits_ = nullptr;
  cuda::LinearScratch scratch_;
  float* attn_partial_ = nullptr;  // split-key attention scratch
  size_t attn_partial_bytes_ = 0;
  cuda::EventList* profiler_ = nullptr;
  int graphs_kernels_ = 0;  // the kernel choices the graphs were captured with
  // Step inputs: pinned host staging and its device copy, at fixed offsets (int32 elements).
  int32_t* host_in_ = nullptr;
  int32_t* dev_in_ = nullptr;
  int64_t off_tokens_ = 0, off_pos_ = 0, off_slots_ = 0, off_seq_ = 0, off_rows_ = 0, off_tables_ = 0;
  int64_t staged_ints_ = 0;
  std::map<std::pair<int64_t, int64_t>, std::unique_ptr<cuda::Graph>> graphs_;
};

}  // namespace qb
