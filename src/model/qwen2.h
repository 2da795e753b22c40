// The Qwen2 decoder: embedding, N x (RMSNorm, GQA attention with RoPE and q/k/v bias, residual,
// RMSNorm, SwiGLU MLP, residual), final RMSNorm, lm_head. Computes in f32 through kernels/.
#pragma once

#include <span>

#include "kernels/ops.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/weights.h"
#include "util/status.h"

namespace qb {

class Qwen2Model {
 public:
  Qwen2Model(ModelConfig config, Qwen2Weights weights);

  const ModelConfig& config() const { return config_; }
  const Qwen2Weights& weights() const { return weights_; }

  // Runs `tokens` of one sequence at positions [start_pos, start_pos + n), storing their keys and
  // values in `cache` (which must already hold positions [0, start_pos)). Returns logits
  // [1, vocab] for the last token, or [n, vocab] for every token when all_logits is set.
  // `ctx` picks the threads and kernels (default: one thread, fastest kernels).
  Result<Tensor> Forward(std::span<const int32_t> tokens, int64_t start_pos, ContiguousKvCache& cache,
                         bool all_logits, const kernels::ExecContext& ctx = kernels::ExecContext::Default()) const;

 private:
  ModelConfig config_;
  Qwen2Weights weights_;
  kernels::RopeTable rope_;
};

}  // namespace qb
