// Start-up sizing of the KV cache from the memory limit: budget = limit x (1 - margin) - what the
// loaded model measurably holds - one step's activations - open connections; the KV cache gets
// the budget (up to what max_num_seqs full-length sequences can use). When not even one request
// fits, the error says the bytes needed, the limit and what would fit instead.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "model/config.h"
#include "util/status.h"

namespace qb {

// Without a memory limit the KV cache defaults to this (like vLLM's CPU backend), within
// MemAvailable.
constexpr int64_t kDefaultUnlimitedKvBytes = int64_t{4} << 30;
// Without --max-total-tokens, start only if a request of this many tokens (or the model's
// context, if shorter) fits.
constexpr int64_t kMinDefaultContext = 2048;

struct KvSizingInput {
  ModelConfig config;                  // for the suggestions (smaller quantizations)
  std::optional<int64_t> memory_limit;  // bytes: the cgroup's, or --memory-limit
  std::string limit_source;             // where the limit came from, for messages
  int64_t host_available_bytes = 0;     // MemAvailable, used when there is no limit
  double margin = 0.05;                 // fraction of the limit left free
  int64_t resident_bytes = 0;           // the process after loading and warming up
  int64_t weights_bytes = 0;            // part of resident_bytes
  std::string quant;                    // the weights' type now ("bf16", "q8_0", ...)
  int64_t activation_bytes = 0;         // one engine step's peak
  int64_t connection_bytes = 0;         // connections budgeted
  int64_t draft_bytes = 0;              // a draft model's KV pool and activations (its weights are resident)
  int64_t kv_bytes_per_token = 0;
  int64_t block_size = 16;
  int64_t max_num_seqs = 64;
  int64_t max_total_tokens = 0;  // 0: the model's context, lowered to what fits
  int64_t kv_cache_bytes = 0;    // > 0: --kv-cache-bytes, used as given
};

struct KvSizing {
  int64_t kv_cache_bytes = 0;  // whole blocks
  int64_t blocks = 0;
  int64_t max_total_tokens = 0;
  int64_t budget_bytes = 0;  // what the KV cache could have had (before the cap)
  std::string how;           // one line: where the size came from
};

Result<KvSizing> SizeKvCache(const KvSizingInput& in);

}  // namespace qb
