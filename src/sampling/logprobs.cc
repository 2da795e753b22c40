#include "sampling/logprobs.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace qb {

double LogSumExp(std::span<const float> logits) {
  double max_l = -INFINITY;
  for (float l : logits) max_l = std::max(max_l, static_cast<double>(l));
  double sum = 0.0;
  for (float l : logits) sum += std::exp(l - max_l);
  return max_l + std::log(sum);
}

double KlDivergence(std::span<const float> p_logits, std::span<const float> q_logits) {
  const double lse_p = LogSumExp(p_logits), lse_q = LogSumExp(q_logits);
  double kl = 0.0;
  for (size_t i = 0; i < p_logits.size() && i < q_logits.size(); ++i) {
    const double lp = p_logits[i] - lse_p;
    if (lp < -80.0) continue;  // (a term below e^-80 cannot move the sum)
    kl += std::exp(lp) * (lp - (q_logits[i] - lse_q));
  }
  return std::max(kl, 0.0);
}

TokenLogprobs LogprobsOf(std::span<const float> logits, int32_t token, int32_t top, bool want_rank) {
  TokenLogprobs r;
  if (logits.empty() || token < 0 || static_cast<size_t>(token) >= logits.size()) return r;
  const double lse = LogSumExp(logits);
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
