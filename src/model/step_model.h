// What the engine runs each step, whatever the device: one forward pass over a ForwardBatch that
// writes the batch's keys and values into the backend's own KV pool (blocks as the scheduler
// numbers them) and returns the requested logit rows on the host. The CPU backend is Qwen2Model
// with a KvStorage; the CUDA backend (model/cuda_step_model.h, -DQWENBOX_CUDA=ON) keeps its pool
// in device memory.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kernels/exec_context.h"
#include "kv/kv_storage.h"
#include "model/loader.h"
#include "model/qwen2.h"
#include "util/numa.h"

namespace qb {

class StepModel {
 public:
  virtual ~StepModel() = default;
  virtual const ModelConfig& config() const = 0;
  // Logits [batch.logit_rows.size(), vocab] f32 on the host.
  virtual Result<Tensor> Step(const ForwardBatch& batch) = 0;
  virtual int64_t kv_pool_bytes() const = 0;
  virtual int64_t kv_blocks() const = 0;  // the pool's blocks (the scheduler's BlockPool matches it)
  virtual std::string device() const = 0;  // "cpu", "cuda:0 (NVIDIA H100 ...)"
  // The most logit rows one step may ask for (buffers sized at start); 0: no limit.
  virtual int64_t max_logit_rows() const { return 0; }
};

// The CPU backend: `model` over a KvStorage of `layout`, computing with `ctx`.
std::unique_ptr<StepModel> MakeCpuStepModel(std::shared_ptr<const Qwen2Model> model, const KvLayout& layout,
                                            const kernels::ExecContext& ctx);

// The CPU backend over tensor-parallel ranks (model/tensor_parallel.h): rank r runs shards[r]
// with a KvStorage of its own KV heads (`layout`'s blocks) on `threads_per_rank` threads of its
// own; the ranks meet through an in-process collective. The calling thread is rank 0's. Logits
// and config() are the whole model's (`config`). With a `placement` (util/numa.h), rank r's
// threads run on placement[r]'s CPUs and its weight copies and KV cache move to that node.
std::unique_ptr<StepModel> MakeCpuTensorParallelStepModel(std::vector<std::shared_ptr<const Qwen2Model>> shards,
                                                          const ModelConfig& config, const KvLayout& layout,
                                                          kernels::Isa isa, int threads_per_rank,
                                                          std::vector<NumaNode> placement = {});

// The CPU backend for a loaded model: its ranks when it was loaded split (LoadOptions::
// tensor_parallel > 1; `ctx`'s threads are divided among them, and each rank is placed on a
// NUMA node of its own when the host has enough), else the model itself on `ctx`.
std::unique_ptr<StepModel> MakeCpuStepModel(const LoadedModel& loaded, const KvLayout& layout,
                                            const kernels::ExecContext& ctx);
// The same for one sequence of up to `capacity` tokens in a pool of a single block
// (ContiguousKvCache's layout; feed it SequenceBatch): the CLI's logits, generate and bench.
std::unique_ptr<StepModel> MakeCpuSequenceModel(const LoadedModel& loaded, int64_t capacity, DType kv_dtype,
                                                const kernels::ExecContext& ctx);

}  // namespace qb
