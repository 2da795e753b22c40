// Speculative decoding with a draft model (vLLM's --speculative-model, llama.cpp's -md): a
// small model of the same tokenizer (Qwen2.5-0.5B for the 7B) proposes each sequence's next k
// tokens greedily, one batched forward pass per token over every proposing sequence; the engine
// verifies them with the target model as it does n-gram proposals (engine/drafter.h), so outputs
// are exactly those without it.
//
// The draft model keeps its own paged KV pool. Each sequence it has seen keeps a "slot": the
// tokens whose keys and values are in its blocks. A query continues the slot that holds its own
// earlier tokens (all but at most the last proposal), so a step computes only the tokens accepted
// since the last one and the new proposal; a new prompt is computed at most max_batch_tokens a
// step. Another query starts a new slot, taking blocks from the least recently used slots when
// the pool is full; a query that does not fit even then gets no proposal (its sequence decodes
// as usual).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/drafter.h"
#include "model/step_model.h"

namespace qb {

struct ModelDrafterConfig {
  int64_t block_size = 16;         // of the draft model's KV pool (whose blocks it has)
  // The most tokens computed to catch up in one call (one forward pass): a longer prompt is
  // caught up over several steps, proposing once it is.
  int64_t max_batch_tokens = 512;
  int64_t max_draft_tokens = 64;   // the longest proposal asked for (SpeculativeConfig::num_tokens)
};

struct ModelDrafterStats {
  int64_t forward_passes = 0;
  int64_t computed_tokens = 0;  // tokens run through the draft model
  int64_t reused_tokens = 0;    // tokens whose keys and values a slot already had
  int64_t evicted_slots = 0;
  int64_t unfit_queries = 0;    // queries that got no proposal: beyond the pool, the draft model's context or vocabulary
};

class ModelDrafter final : public Drafter {
 public:
  // `model` runs the draft model over a pool of model->kv_blocks() blocks of config.block_size.
  ModelDrafter(std::unique_ptr<StepModel> model, ModelDrafterConfig config);

  std::vector<std::vector<int32_t>> Propose(std::span<const DraftQuery> queries) override;

  const ModelDrafterStats& stats() const { return stats_; }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t held_blocks() const;  // by the slots (with free_blocks(): the whole pool)

 private:
  struct Slot {
    std::vector<int32_t> tokens;  // whose keys and values are in `blocks`, in order
    std::vector<int32_t> blocks;
    int64_t last_used = 0;
  };
  // The slot for `tokens` (its own, or a new one), not one of `taken`; sets *reuse to how many
  // of its leading tokens are kept.
  Slot* PickSlot(std::span<const int32_t> tokens, const std::vector<Slot*>& taken, int64_t* reuse);
  // Gives `slot` blocks for `tokens` positions, evicting least recently used slots not in `keep`
  // (none when that would not make room); false when they cannot be had.
  bool Reserve(Slot* slot, int64_t tokens, const std::vector<Slot*>& keep);
  void Release(Slot* slot, int64_t keep_tokens);
  // One forward pass; the greedy token of each logit row.
  Result<std::vector<int32_t>> Run(const ForwardBatch& batch);

  std::unique_ptr<StepModel> model_;
  ModelDrafterConfig config_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<int32_t> free_;
  int64_t clock_ = 0;
  ModelDrafterStats stats_;
};

}  // namespace qb
