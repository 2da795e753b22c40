// The scheduler: which sequences run in the next step, and how many of their tokens. Pure: no
// threads, no model. It owns the sequences' token lists, computed counts and block tables, and
// takes KV blocks from the BlockPool. Each step:
//   1. running sequences, oldest first, get their next chunk (1 token when decoding; a prompt
//      chunk when still prefilling) within the step's token budget; when blocks run out, the
//      most recently admitted running sequence is preempted (its blocks are freed and it goes
//      back to the front of the queue, to be recomputed later: cheap when its blocks are still
//      in the prefix cache);
//   2. waiting sequences (by priority, then arrival) are admitted while the budget, the
//      sequence limit and the free blocks allow; full blocks of their tokens found in the prefix
//      cache are reused instead of computed.
// "What fits the token budget" (max_batch_tokens) and "what fits the KV cache" (blocks) are
// checked separately.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <vector>

#include "kv/block_pool.h"
#include "util/status.h"

namespace qb {

struct SchedulerConfig {
  int64_t block_size = 16;
  int64_t max_num_seqs = 64;        // sequences running at once
  int64_t max_batch_tokens = 2048;  // tokens per step (prefill chunks + decodes)
  bool prefix_caching = true;
  int64_t max_logit_rows = 0;       // logit rows per step (sampled chunks + draft tokens); 0: no limit
  // Prompt log-probabilities (Sequence::logits_until) take rows up to max_logit_rows, or
  // max_num_seqs when that is 0 (what the activations are sized for), less one row kept for
  // each other running sequence; such a sequence's prompt chunks are as long as its rows.
  int64_t RowCap() const { return max_logit_rows > 0 ? max_logit_rows : max_num_seqs; }
};

struct Sequence {
  int64_t id = 0;
  int32_t priority = 0;  // lower runs first; equal priorities run in arrival order
  std::vector<int32_t> tokens;  // the prompt, then the generated tokens
  int64_t num_computed = 0;     // leading tokens whose keys/values are in the cache
  std::vector<int32_t> blocks;  // block table
  std::vector<uint64_t> hashes;  // prefix-cache hashes of the leading full blocks (published or found)
  // The prefix cache's root: sequences share cached blocks only with the same salt (a LoRA
  // adapter's keys and values differ from the base model's for the same tokens).
  uint64_t cache_salt = 0;
  int64_t cached_tokens = 0;    // tokens found in the prefix cache at the last admission
  // Positions below this return a logit row each when computed (the engine's prompt
  // log-probabilities: the row of position p scores token p + 1). While it is set the prefix
  // cache is not read: a cached position would have no row. The engine clears it once done.
  int64_t logits_until = 0;
  int64_t preemptions = 0;
  int64_t arrival = 0;          // set by the scheduler
  // Speculative decoding: tokens proposed to follow `tokens`, set by the engine before a step
  // (Decoding()). A decoding sequence's chunk then also computes as many of them as the step
  // leaves room for once every running sequence and every admission has its chunk: token
  // budget, logit rows, free blocks (no one is preempted or kept waiting for a draft). Dropped
  // when not scheduled; cleared by Complete.
  std::vector<int32_t> draft;
};

struct ScheduledChunk {
  int64_t seq_id;
  int64_t start;  // first position computed in this step
  int64_t count;
  bool sample;    // the chunk ends at the last known token: the next one is sampled from it
  int64_t draft = 0;  // the chunk's last `draft` tokens are the sequence's draft (sample is true)
};

struct StepPlan {
  std::vector<ScheduledChunk> chunks;
  std::vector<int64_t> preempted;
  int64_t num_tokens = 0;
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, BlockPool* pool) : config_(config), pool_(pool) {}

  const SchedulerConfig& config() const { return config_; }
  // Queues a new sequence (tokens = its prompt, at least one).
  void Add(Sequence seq);
  // Drops a sequence wherever it is and frees its blocks at once. False if unknown.
  bool Abort(int64_t id);
  StepPlan Schedule();
  // After the step ran: every chunk's tokens are computed; `next[i]` is the token sampled for
  // the i-th chunk with sample = true (appended to its sequence).
  void Complete(const StepPlan& plan, const std::vector<int32_t>& next);
  // The same with speculation: `next[i]` holds the tokens accepted for the i-th sampled chunk,
  // at least one; all but the last must be the chunk's first draft tokens, whose keys and values
  // then count as computed (those of the rejected ones are overwritten later).
  void Complete(const StepPlan& plan, const std::vector<std::vector<int32_t>>& next);
  // Frees a running sequence that is done.
  void Finish(int64_t id) { Abort(id); }

  Sequence* Find(int64_t id);
  // Running sequences whose next step is a decode (their tokens but the last are computed):
  // the ones a draft can be proposed for.
  std::vector<Sequence*> Decoding();
  size_t num_running() const { return running_.size(); }
  size_t num_waiting() const { return waiting_.size(); }
  int64_t total_preemptions() const { return total_preemptions_; }

 private:
  int64_t BlocksFor(int64_t tokens) const { return (tokens + config_.block_size - 1) / config_.block_size; }
  void Preempt(size_t running_index);
  void ReleaseBlocks(Sequence& s);
  void Publish(Sequence& s);
  // Reuses cached blocks for the longest cached prefix (keeping at least one token to compute).
  void MatchPrefix(Sequence& s);
  // Logit rows a chunk of `s` from `start` takes: one per position below s.logits_until, and
  // the sampled row.
  static int64_t RowsOf(const Sequence& s, int64_t start, int64_t count, bool sample) {
    return std::clamp<int64_t>(s.logits_until - start, 0, count) + (sample ? 1 : 0);
  }
  // Extends the plan's sampled chunks with their sequences' drafts, within what is left.
  void AddDrafts(StepPlan& plan, int64_t& budget, int64_t rows);
  // Keeps as much of s.draft as `budget` tokens and the free blocks allow (allocating the
  // blocks); returns its length.
  int64_t TakeDraft(Sequence& s, int64_t budget);
  void InsertWaiting(Sequence seq, bool front);

  SchedulerConfig config_;
  BlockPool* pool_;
  std::vector<Sequence> running_;  // admission order
  std::deque<Sequence> waiting_;   // priority, then arrival
  int64_t next_arrival_ = 0;
  int64_t total_preemptions_ = 0;
};

}  // namespace qb
