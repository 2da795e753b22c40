#include "sampling/logprobs.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace qb {

TokenLogprobs LogprobsOf(std::span<const float> logits, int32_t token, int32_t top, bool want_rank) {
  TokenLogprobs r;
  if (logits.empty() || token < 0 || static_cast<size_t>(token) >= logits.size()) return r;
  double max_l = -INFINITY;
  for (float l : logits) max_l = std::max(max_l, static_cast<double>(l));
  double sum = 0.0;
  for (float l : logits) sum += std::exp(l - max_l);
  const double lse = max_l + std::log(sum);
  const float mine = logits[static_cast<size_t>(token)];
  r.logprob = static_cast<float>(mine - lse);
  if (want_rank) r.rank = 1 + std::count_if(logits.begin(), logits.end(), [mine](float l) { return l > mine; });
  if (top > 0) {
    std::vector<int32_t> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    const size_t n = std::min(ids.size(), static_cast<size_t>(top));
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n), ids.end(), [&](int32_t a, int32_t b) {
      const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
      return la > lb || (la == lb && a < b);
    });
    r.top.reserve(n);
    for (size_t i = 0; i < n; ++i)
      r.top.push_back({ids[i], static_cast<float>(logits[static_cast<size_t>(ids[i])] - lse)});
  }
  return r;
}

}  // namespace qb
