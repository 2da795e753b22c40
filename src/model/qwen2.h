// The Qwen2 decoder: embedding, N x (RMSNorm, GQA attention with RoPE and q/k/v bias, residual,
// RMSNorm, SwiGLU MLP, residual), final RMSNorm, lm_head. Computes in f32 through kernels/.
#pragma once

#include <span>
#include <vector>

#include "kernels/ops.h"
#include "model/config.h"
#include "kv/kv_storage.h"
#include "model/kv_cache.h"
#include "model/lora_adapter.h"
#include "model/weights.h"
#include "util/status.h"

namespace qb {

// One step's tokens, possibly from several sequences (continuous batching): each token has its
// position, the KV slot it writes (block * block_size + offset) and its sequence's block table.
struct ForwardBatch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> positions;
  std::vector<int32_t> slots;
  std::vector<std::span<const int32_t>> tables;
  std::vector<int32_t> logit_rows;  // the tokens whose logits are returned, in this order
  // LoRA (model/lora_adapter.h): token i runs with adapter adapters[i] of `lora` (1-based; 0:
  // the base model). Both empty: every token runs with the base model.
  std::vector<int32_t> adapters;
  const LoraAdapters* lora = nullptr;
};

// One sequence's `tokens` at positions [start_pos, start_pos + n) in a KV pool of a single block
// as long as the sequence (ContiguousKvCache's layout): logits for the last token, or for every
// token with all_logits.
ForwardBatch SequenceBatch(std::span<const int32_t> tokens, int64_t start_pos, bool all_logits);

class Qwen2Model {
 public:
  Qwen2Model(ModelConfig config, Qwen2Weights weights);

  const ModelConfig& config() const { return config_; }
  const Qwen2Weights& weights() const { return weights_; }

  // One forward pass over a batch: writes the tokens' keys and values into `kv` (whose earlier
  // positions of each sequence must be there already) and returns logits
  // [batch.logit_rows.size(), vocab]. `ctx` picks the threads and kernels.
  Result<Tensor> Forward(const ForwardBatch& batch, KvStorage& kv, const kernels::ExecContext& ctx) const;

  // One sequence in a contiguous cache: `tokens` at positions [start_pos, start_pos + n).
  // Returns logits [1, vocab] for the last token, or [n, vocab] with all_logits.
  Result<Tensor> Forward(std::span<const int32_t> tokens, int64_t start_pos, ContiguousKvCache& cache,
                         bool all_logits, const kernels::ExecContext& ctx = kernels::ExecContext::Default()) const;

 private:
  ModelConfig config_;
  Qwen2Weights weights_;
  kernels::RopeTable rope_;
};

}  // namespace qb
