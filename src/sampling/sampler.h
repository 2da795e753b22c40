// Picks the next token from a row of logits: greedy (temperature 0) or sampling with
// temperature, top-k and top-p, from a seeded generator (same seed, same choices).
#pragma once

#include <cstdint>
#include <random>
#include <span>

namespace qb {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy
  int64_t top_k = 0;         // 0 = off
  float top_p = 1.0f;        // 1 = off
  uint64_t seed = 0;
};

// The index of the largest logit; the lowest index on ties.
int32_t Argmax(std::span<const float> logits);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}
  int32_t Sample(std::span<const float> logits);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

}  // namespace qb
