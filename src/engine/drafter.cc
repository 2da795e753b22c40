#include "engine/drafter.h"

#include <algorithm>

#include <fmt/format.h>

namespace qb {

Status CheckSpeculative(const SpeculativeConfig& c) {
  if (c.num_tokens < 0 || c.num_tokens > 64)
    return InvalidArgument(fmt::format("--speculative-tokens {} is not in 0..64", c.num_tokens));
  if (c.ngram_min < 1 || c.ngram_max < c.ngram_min)
    return InvalidArgument(fmt::format("--speculative-ngram-min {} and -max {} need 1 <= min <= max", c.ngram_min,
                                       c.ngram_max));
  if (c.max_seqs < 1) return InvalidArgument(fmt::format("--speculative-max-seqs {} must be at least 1", c.max_seqs));
  return Status::Ok();
}

std::vector<int32_t> NgramDraft(std::span<const int32_t> tokens, int64_t ngram_min, int64_t ngram_max, int64_t k) {
  std::vector<int32_t> draft;
  const auto len = static_cast<int64_t>(tokens.size());
  if (k <= 0 || ngram_min < 1) return draft;
  for (int64_t n = std::min(ngram_max, len - 1); n >= ngram_min; --n) {
    const std::span<const int32_t> suffix = tokens.subspan(static_cast<size_t>(len - n));
    // Latest start i < len - n whose n tokens equal the suffix (then i + n <= len - 1: at least
    // one token follows the match).
    for (int64_t i = len - n - 1; i >= 0; --i) {
      if (tokens[static_cast<size_t>(i + n - 1)] != suffix.back()) continue;
      if (!std::equal(suffix.begin(), suffix.end(), tokens.begin() + i)) continue;
      draft.reserve(static_cast<size_t>(k));
      for (int64_t j = 0; j < k; ++j) {
        const int64_t at = i + n + j;  // < len + j: past the end it reads the draft itself
        draft.push_back(at < len ? tokens[static_cast<size_t>(at)] : draft[static_cast<size_t>(at - len)]);
      }
      return draft;
    }
  }
  return draft;
}

std::vector<std::vector<int32_t>> NgramDrafter::Propose(std::span<const DraftQuery> queries) {
  std::vector<std::vector<int32_t>> out;
  out.reserve(queries.size());
  for (const DraftQuery& q : queries) out.push_back(NgramDraft(q.tokens, min_, max_, q.k));
  return out;
}

}  // namespace qb
