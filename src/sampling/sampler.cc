#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace qb {

int32_t Argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  return best;
}

Sampler::Sampler(const SamplingParams& params, std::span<const int32_t> prompt)
    : params_(params), rng_(params.seed) {
  if (params_.repetition_penalty != 1.0f) seen_.insert(prompt.begin(), prompt.end());
}

void Sampler::Penalize(std::vector<float>& logits) const {
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
}

SampleResult Sampler::Sample(std::span<const float> raw) {
  SampleResult r;
  const bool penalties = params_.repetition_penalty != 1.0f || params_.presence_penalty != 0.0f ||
                         params_.frequency_penalty != 0.0f;
  std::span<const float> logits = raw;
  if (penalties) {
    work_.assign(raw.begin(), raw.end());
    Penalize(work_);
    logits = work_;
  }
  if (params_.temperature <= 0.0f || params_.top_k == 1) {
    r.token = Argmax(logits);
  } else {
    // Candidates best first (ties: lower id first), cut by top-k; when only top-p/min-p cut,
    // the best 1024 usually hold the whole nucleus: fall back to all ids when they do not.
    // nth_element finds them in linear time; only the candidates are sorted.
    const auto vocab = static_cast<int32_t>(logits.size());
    auto better = [&](int32_t a, int32_t b) {
      const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
      return la > lb || (la == lb && a < b);
    };
    const float inv_t = 1.0f / params_.temperature;
    auto take = [&](size_t keep) {
      ids_.resize(static_cast<size_t>(vocab));
      std::iota(ids_.begin(), ids_.end(), 0);
      keep = std::min(keep, ids_.size());
      if (keep < ids_.size())
        std::nth_element(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(keep), ids_.end(), better);
      ids_.resize(keep);
      std::sort(ids_.begin(), ids_.end(), better);
    };
    size_t keep = params_.top_k > 0 ? static_cast<size_t>(params_.top_k) : 1024;
    take(keep);
    const float max_l = logits[static_cast<size_t>(ids_[0])];
    // Softmax mass of the whole vocabulary (for top-p and min-p relative to all tokens), in
    // float: it only decides where the nucleus ends.
    double total = 0.0;
    if (params_.top_k == 0) {
      float t = 0.f;
      for (float l : logits) t += std::exp((l - max_l) * inv_t);
      total = t;
    }
    std::vector<double> probs(ids_.size());
    double kept = 0.0;
    for (size_t i = 0; i < ids_.size(); ++i)
      kept += probs[i] = std::exp(static_cast<double>(logits[static_cast<size_t>(ids_[i])] - max_l) * inv_t);
    if (params_.top_k == 0 && params_.top_p < 1.0f && kept / total < params_.top_p && ids_.size() < static_cast<size_t>(vocab)) {
      take(static_cast<size_t>(vocab));
      probs.resize(ids_.size());
      for (size_t i = 0; i < ids_.size(); ++i)
        probs[i] = std::exp(static_cast<double>(logits[static_cast<size_t>(ids_[i])] - max_l) * inv_t);
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
  }
  if (params_.logprobs || params_.top_logprobs > 0) {
    double max_l = -INFINITY;
    for (float l : raw) max_l = std::max(max_l, static_cast<double>(l));
    double sum = 0.0;
    for (float l : raw) sum += std::exp(l - max_l);
    const double lse = max_l + std::log(sum);
    r.logprob = static_cast<float>(raw[static_cast<size_t>(r.token)] - lse);
    if (params_.top_logprobs > 0) {
      std::vector<int32_t> ids(raw.size());
      std::iota(ids.begin(), ids.end(), 0);
      const size_t n = std::min(ids.size(), static_cast<size_t>(params_.top_logprobs));
      std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n), ids.end(), [&](int32_t a, int32_t b) {
        return raw[static_cast<size_t>(a)] > raw[static_cast<size_t>(b)] ||
               (raw[static_cast<size_t>(a)] == raw[static_cast<size_t>(b)] && a < b);
      });
      for (size_t i = 0; i < n; ++i) r.top.push_back({ids[i], static_cast<float>(raw[static_cast<size_t>(ids[i])] - lse)});
    }
  }
  if (params_.repetition_penalty != 1.0f) seen_.insert(r.token);
  ++generated_[r.token];
  return r;
}

}  // namespace qb
