#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

namespace qb {

int32_t Argmax(std::span<const float> logits) {
  if (logits.empty()) return 0;
  // One pass over blocks that stay in L1: each block's largest value (eight independent maxima:
  // the loop vectorizes), the first block holding the overall largest remembered; then its
  // first index in that block. (A 151,936-entry vocabulary read twice cost a batched decode step
  // 1-2%.)
  constexpr size_t kLanes = 8, kBlock = 2048;
  float best = -INFINITY;
  size_t best_block = logits.size();
  for (size_t b0 = 0; b0 < logits.size(); b0 += kBlock) {
    const size_t end = std::min(logits.size(), b0 + kBlock);
    float lane_max[kLanes];
    std::fill(lane_max, lane_max + kLanes, -INFINITY);
    size_t i = b0;
    for (; i + kLanes <= end; i += kLanes)
      for (size_t j = 0; j < kLanes; ++j) lane_max[j] = logits[i + j] > lane_max[j] ? logits[i + j] : lane_max[j];
    float m = *std::max_element(lane_max, lane_max + kLanes);
    for (; i < end; ++i) m = logits[i] > m ? logits[i] : m;
    if (m > best) {
      best = m;
      best_block = b0;
    }
  }
  const size_t from = best_block < logits.size() ? best_block : 0;  // (every value -inf or NaN: all of them)
  for (size_t k = from; k < logits.size(); ++k)
    if (logits[k] == best) return static_cast<int32_t>(k);
  // Only NaNs: the scalar definition.
  int32_t arg = 0;
  for (size_t k = 1; k < logits.size(); ++k)
    if (logits[k] > logits[static_cast<size_t>(arg)]) arg = static_cast<int32_t>(k);
  return arg;
}

Sampler::Sampler(const SamplingParams& params, std::span<const int32_t> prompt)
    : params_(params), rng_(params.seed) {
  if (params_.repetition_penalty != 1.0f) seen_.insert(prompt.begin(), prompt.end());
}

void Sampler::Adjust(std::vector<float>& logits, std::span<const int32_t> banned) const {
  const auto vocab = static_cast<int32_t>(logits.size());
  if (params_.repetition_penalty != 1.0f)
    for (int32_t id : seen_) {
      if (id < 0 || id >= vocab) continue;
      float& l = logits[static_cast<size_t>(id)];
      l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f)
    for (const auto& [id, count] : generated_) {
      if (id < 0 || id >= vocab) continue;
      logits[static_cast<size_t>(id)] -= params_.presence_penalty + params_.frequency_penalty * static_cast<float>(count);
    }
  for (const auto& [id, bias] : params_.logit_bias)
    if (id >= 0 && id < vocab) logits[static_cast<size_t>(id)] += bias;
  for (int32_t id : banned)
    if (id >= 0 && id < vocab) logits[static_cast<size_t>(id)] = -INFINITY;
}

void Sampler::TakeBest(std::span<const float> logits, size_t keep) {
  const size_t vocab = logits.size();
  keep = std::min(keep, vocab);
  float threshold = -INFINITY;
  if (keep < vocab) {
    // The keep-th best value: for a few thousand, a min-heap of the best seen so far (most
    // values fail the first comparison); for more, selection over a copy of the values.
    values_.clear();
    if (keep <= 4096) {
      for (float l : logits) {
        if (values_.size() < keep) {
          values_.push_back(l);
          std::push_heap(values_.begin(), values_.end(), std::greater<float>());
        } else if (l > values_.front()) {
          std::pop_heap(values_.begin(), values_.end(), std::greater<float>());
          values_.back() = l;
          std::push_heap(values_.begin(), values_.end(), std::greater<float>());
        }
      }
      threshold = values_.front();
    } else {
      values_.assign(logits.begin(), logits.end());
      std::nth_element(values_.begin(), values_.begin() + static_cast<std::ptrdiff_t>(keep - 1), values_.end(),
                       std::greater<float>());
      threshold = values_[keep - 1];
    }
  }
  // The ids above the threshold, then those equal to it in id order until there are `keep`,
  // sorted as (value, id) pairs (contiguous, no index indirection).
  // (At most keep - 1 values lie strictly above the keep-th best; NaNs are never taken.)
  candidates_.resize(keep);
  size_t n = 0;
  for (size_t i = 0; i < vocab && n < keep; ++i)
    if (logits[i] > threshold || (keep == vocab && logits[i] == logits[i]))
      candidates_[n++] = {logits[i], static_cast<int32_t>(i)};
  for (size_t i = 0; i < vocab && n < keep; ++i)
    if (logits[i] == threshold) candidates_[n++] = {logits[i], static_cast<int32_t>(i)};
  candidates_.resize(n);
  std::sort(candidates_.begin(), candidates_.end(), [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  });
  ids_.resize(candidates_.size());
  for (size_t i = 0; i < candidates_.size(); ++i) ids_[i] = candidates_[i].id;
}

SampleResult Sampler::Sample(std::span<const float> raw, TokenFilter* filter, std::span<const int32_t> banned) {
  SampleResult r;
  const bool adjusted = params_.repetition_penalty != 1.0f || params_.presence_penalty != 0.0f ||
                        params_.frequency_penalty != 0.0f || !params_.logit_bias.empty() || !banned.empty();
  std::span<const float> logits = raw;
  if (adjusted) {
    work_.assign(raw.begin(), raw.end());
    Adjust(work_, banned);
    logits = work_;
  }
  const bool greedy = params_.temperature <= 0.0f || params_.top_k == 1;
  // Removes the tokens the filter refuses (-inf); false when it allows none.
  auto restrict = [&] {
    if (!adjusted) work_.assign(raw.begin(), raw.end());
    if (filter->Allowed(allowed_) == 0) return false;
    // (The model's rows may be wider than the tokenizer's vocabulary: padding ids are refused.)
    for (size_t i = 0; i < work_.size(); ++i)
      if (i >= allowed_.size() || !allowed_[i]) work_[i] = -INFINITY;
    logits = work_;
    return true;
  };
  SampleResult none;
  none.token = -1;
  // The first allowed id: what is left when every allowed token's logit is NaN or -inf.
  auto first_allowed = [&] {
    return static_cast<int32_t>(std::find(allowed_.begin(), allowed_.end(), uint8_t{1}) - allowed_.begin());
  };
  auto refused = [&](int32_t id) {
    return static_cast<size_t>(id) >= allowed_.size() || !allowed_[static_cast<size_t>(id)];
  };
  if (greedy) {
    r.token = Argmax(logits);
    if (filter != nullptr && !filter->Allows(r.token)) {
      if (!restrict()) return none;
      r.token = Argmax(logits);
      if (refused(r.token)) r.token = first_allowed();
    }
  } else {
    if (filter != nullptr && !restrict()) return none;
    // Candidates best first (ties: lower id first), cut by top-k; when only top-p/min-p cut,
    // the best 1024 usually hold the whole nucleus; when they do not, 8x more are taken until
    // they do (a flat distribution can need most of the vocabulary).
    const auto vocab = static_cast<int32_t>(logits.size());
    const float inv_t = 1.0f / params_.temperature;
    size_t keep = params_.top_k > 0 ? static_cast<size_t>(params_.top_k) : 1024;
    TakeBest(logits, keep);
    if (ids_.empty() || !(logits[static_cast<size_t>(ids_[0])] > -INFINITY)) {
      // Nothing with any weight (every allowed token banned or -inf): the first allowed one.
      r.token = filter != nullptr ? first_allowed() : Argmax(logits);
      return Finish(r, raw);
    }
    const float max_l = logits[static_cast<size_t>(ids_[0])];
    // Softmax mass of the whole vocabulary (for top-p and min-p relative to all tokens), in
    // float: it only decides where the nucleus ends. Terms below e^-40 of the best cannot move
    // a float sum that starts at 1: skipped.
    double total = 0.0;
    if (params_.top_k == 0) {
      float t = 0.f;
      for (float l : logits) {
        const float z = (l - max_l) * inv_t;
        if (z > -40.f) t += std::exp(z);
      }
      total = t;
    }
    std::vector<double> probs;
    auto weigh = [&] {
      probs.assign(ids_.size(), 0.0);
      double kept = 0.0;
      for (size_t i = 0; i < ids_.size(); ++i)
        kept += probs[i] = std::exp(static_cast<double>(logits[static_cast<size_t>(ids_[i])] - max_l) * inv_t);
      return kept;
    };
    double kept = weigh();
    while (params_.top_k == 0 && params_.top_p < 1.0f && kept / total < params_.top_p &&
           ids_.size() < static_cast<size_t>(vocab)) {
      keep *= 8;
      TakeBest(logits, keep);
      kept = weigh();
    }
    if (params_.top_k > 0) total = std::accumulate(probs.begin(), probs.end(), 0.0);  // top-k renormalises first
    size_t cut = probs.size();
    if (params_.top_p < 1.0f) {
      double cum = 0.0;
      for (size_t i = 0; i < probs.size(); ++i) {
        cum += probs[i] / total;
        if (cum >= params_.top_p) {
          cut = i + 1;
          break;
        }
      }
    }
    if (params_.min_p > 0.0f) {
      const double floor = params_.min_p * probs[0];  // min-p is relative to the best token
      size_t m = 1;
      while (m < cut && probs[m] >= floor) ++m;
      cut = m;
    }
    const double sum = std::accumulate(probs.begin(), probs.begin() + static_cast<std::ptrdiff_t>(cut), 0.0);
    std::uniform_real_distribution<double> uniform(0.0, sum);
    const double x = uniform(rng_);
    double cum = 0.0;
    r.token = ids_[cut - 1];
    for (size_t i = 0; i < cut; ++i) {
      cum += probs[i];
      if (x < cum) {
        r.token = ids_[i];
        break;
      }
    }
    // (Refused tokens weigh 0, so a draw never lands on one; the best token is allowed.)
    if (filter != nullptr && refused(r.token)) r.token = refused(ids_[0]) ? first_allowed() : ids_[0];
  }
  return Finish(r, raw);
}

SampleResult Sampler::Finish(SampleResult r, std::span<const float> raw) {
  if (params_.logprobs || params_.top_logprobs > 0) {
    TokenLogprobs lp = LogprobsOf(raw, r.token, params_.top_logprobs);
    r.logprob = lp.logprob;
    r.top = std::move(lp.top);
  }
  if (params_.repetition_penalty != 1.0f) seen_.insert(r.token);
  ++generated_[r.token];
  return r;
}

}  // namespace qb
