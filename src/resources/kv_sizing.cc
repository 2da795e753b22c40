#include "resources/kv_sizing.h"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "resources/memory_plan.h"

namespace qb {

namespace {

std::string Gib(int64_t bytes) { return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1 << 30)); }
std::string Bytes(int64_t bytes) { return fmt::format("{} bytes ({})", bytes, Gib(bytes)); }

// The refusal: needed vs available, and what would fit.
Status Refuse(const KvSizingInput& in, int64_t usable, int64_t fixed, int64_t tokens, bool explicit_tokens) {
  const int64_t kv_needed = tokens * in.kv_bytes_per_token;
  std::string msg = fmt::format(
      "the model does not fit the memory limit: it needs {} = resident model and runtime {} (weights {}) + "
      "one step's activations {} + connections {}{} + KV cache for one request of {} tokens {}; the limit is {} "
      "({}), {} after the {:g}% margin.",
      Bytes(fixed + kv_needed), Bytes(in.resident_bytes), Gib(in.weights_bytes), Gib(in.activation_bytes),
      Gib(in.connection_bytes),
      in.draft_bytes > 0 ? fmt::format(" + the draft model's KV cache and activations {}", Gib(in.draft_bytes)) : "", tokens, Gib(kv_needed), Bytes(*in.memory_limit), in.limit_source, Gib(usable),
      in.margin * 100);
  std::vector<std::string> fits;
  const int64_t spare = usable - fixed;
  if (spare >= in.kv_bytes_per_token * in.block_size) {
    const int64_t max_tokens = spare / in.kv_bytes_per_token / in.block_size * in.block_size;
    fits.push_back(fmt::format("a shorter context: --max-total-tokens {}", max_tokens));
  }
  for (const char* q : {"q8_0", "q4_k", "q4_0"}) {
    auto w = WeightBytes(in.config, q);
    if (!w.ok() || *w >= in.weights_bytes || in.quant == q) continue;
    const int64_t smaller = fixed - in.weights_bytes + *w;
    if (smaller + kv_needed <= usable)
      fits.push_back(fmt::format("a smaller quantization: --quant {} (weights {}, total {})", q, Gib(*w),
                                 Gib(smaller + kv_needed)));
  }
  const auto limit_needed = static_cast<int64_t>(static_cast<double>(fixed + kv_needed) / (1.0 - in.margin)) + 1;
  fits.push_back(fmt::format("a memory limit of at least {} (docker run --memory={}m)", Bytes(limit_needed),
                             (limit_needed + (1 << 20) - 1) >> 20));
  msg += " What would fit:";
  for (size_t i = 0; i < fits.size(); ++i) msg += fmt::format("{} {}", i == 0 ? "" : ";", fits[i]);
  if (!explicit_tokens)
    msg += fmt::format(" (without --max-total-tokens, one request of {} tokens must fit)", tokens);
  return ResourceExhausted(msg);
}

}  // namespace

Result<KvSizing> SizeKvCache(const KvSizingInput& in) {
  if (in.kv_bytes_per_token <= 0 || in.block_size <= 0 || in.max_num_seqs <= 0)
    return InvalidArgument("KV sizing needs positive bytes per token, block size and sequences");
  if (in.margin < 0 || in.margin >= 1) return InvalidArgument("--memory-margin must be in [0, 1)");
  const int64_t context = in.config.max_position_embeddings;
  if (in.max_total_tokens > context)
    return InvalidArgument(fmt::format("--max-total-tokens {} exceeds the model's context of {}", in.max_total_tokens, context));
  const int64_t block_bytes = in.kv_bytes_per_token * in.block_size;
  const bool explicit_tokens = in.max_total_tokens > 0;
  const int64_t wanted_tokens = explicit_tokens ? in.max_total_tokens : context;
  const int64_t required_tokens = explicit_tokens ? in.max_total_tokens : std::min(context, kMinDefaultContext);
  const int64_t fixed = in.resident_bytes + in.activation_bytes + in.connection_bytes + in.draft_bytes;
  // Enough for max_num_seqs sequences of the longest length: more would never be used.
  const int64_t cap = in.max_num_seqs * ((wanted_tokens + in.block_size - 1) / in.block_size) * block_bytes;

  KvSizing s;
  if (in.kv_cache_bytes > 0) {
    s.budget_bytes = in.kv_cache_bytes;
    s.kv_cache_bytes = in.kv_cache_bytes / block_bytes * block_bytes;
    s.how = fmt::format("--kv-cache-bytes {}", in.kv_cache_bytes);
    if (in.memory_limit && fixed + s.kv_cache_bytes > *in.memory_limit)
      return ResourceExhausted(fmt::format(
          "--kv-cache-bytes {} does not fit the memory limit {} ({}): the model and runtime hold {}, so at most {} "
          "bytes are left for the KV cache",
          in.kv_cache_bytes, *in.memory_limit, in.limit_source, fixed, std::max<int64_t>(0, *in.memory_limit - fixed)));
  } else if (in.memory_limit) {
    const auto usable = static_cast<int64_t>(static_cast<double>(*in.memory_limit) * (1.0 - in.margin));
    s.budget_bytes = usable - fixed;
    if (s.budget_bytes < required_tokens * in.kv_bytes_per_token)
      return Refuse(in, usable, fixed, required_tokens, explicit_tokens);
    s.kv_cache_bytes = std::min(s.budget_bytes, cap) / block_bytes * block_bytes;
    s.how = fmt::format("{} of the {} memory limit ({}) less {:g}% margin and {} for the model and runtime{}",
                        Gib(s.kv_cache_bytes), Gib(*in.memory_limit), in.limit_source, in.margin * 100, Gib(fixed),
                        cap < s.budget_bytes ? fmt::format(", capped at {} sequences x {} tokens", in.max_num_seqs,
                                                           wanted_tokens)
                                             : "");
  } else {
    const auto usable = static_cast<int64_t>(static_cast<double>(in.host_available_bytes) * (1.0 - in.margin));
    s.budget_bytes = std::min(kDefaultUnlimitedKvBytes, usable - fixed);
    s.kv_cache_bytes = std::max<int64_t>(0, std::min(s.budget_bytes, cap)) / block_bytes * block_bytes;
    s.how = cap < s.budget_bytes
                ? fmt::format("no memory limit: {} = {} sequences x {} tokens (the most they can use)",
                              Gib(s.kv_cache_bytes), in.max_num_seqs, wanted_tokens)
                : fmt::format("no memory limit: {} (at most {}, within available memory)", Gib(s.kv_cache_bytes),
                              Gib(kDefaultUnlimitedKvBytes));
  }
  s.blocks = s.kv_cache_bytes / block_bytes;
  if (s.blocks < 1)
    return ResourceExhausted(fmt::format("the KV cache of {} bytes holds no block ({} bytes each)", s.kv_cache_bytes, block_bytes));
  const int64_t pool_tokens = s.blocks * in.block_size;
  if (explicit_tokens && in.max_total_tokens > pool_tokens)
    return ResourceExhausted(fmt::format(
        "--max-total-tokens {} does not fit the KV cache ({} tokens in {} bytes, {}): lower it, or give more memory",
        in.max_total_tokens, pool_tokens, s.kv_cache_bytes, s.how));
  s.max_total_tokens = explicit_tokens ? in.max_total_tokens : std::min(context, pool_tokens);
  return s;
}

}  // namespace qb
