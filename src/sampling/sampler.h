// Picks the next token of one sequence from its logits: penalties (repetition over prompt and
// output, as Hugging Face; presence and frequency over the output, as OpenAI), a logit bias (as
// OpenAI's) and banned ids (vLLM's min_tokens keeps the end ids out for a while), temperature,
// top-k, top-p, min-p, then a draw from the sequence's own seeded generator, so a request's
// output depends only on its seed and prompt, never on what else is in the batch. Temperature 0
// is greedy (lowest id on ties). Optionally reports log-probabilities (of the model's raw
// distribution) for the chosen token and the top alternatives.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "sampling/logprobs.h"
#include "sampling/token_filter.h"

namespace qb {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy
  int64_t top_k = 0;         // 0 = off
  float top_p = 1.0f;        // 1 = off
  float min_p = 0.0f;        // 0 = off
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  uint64_t seed = 0;
  // Added to these ids' logits after the penalties (OpenAI's logit_bias: -100 bans, +100 forces).
  std::vector<std::pair<int32_t, float>> logit_bias;
  bool logprobs = false;  // report the chosen token's log-probability
  int32_t top_logprobs = 0;  // and this many alternatives
};

// The index of the largest logit; the lowest index on ties.
int32_t Argmax(std::span<const float> logits);

struct SampleResult {
  int32_t token = 0;               // -1: the filter allowed no token at all
  float logprob = 0.0f;            // when requested
  std::vector<TokenLogprob> top;   // when requested, best first
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params, std::span<const int32_t> prompt = {});
  // Chooses the next token and remembers it (for the penalties). With a filter, only a token it
  // allows: greedy picks the best allowed token (the filter is asked about the best one first,
  // and for the whole set only when it is refused); sampling draws from the distribution with
  // the refused tokens removed before temperature, top-k, top-p and min-p.
  // `banned` ids are never picked (unless a filter allows nothing else).
  SampleResult Sample(std::span<const float> logits, TokenFilter* filter = nullptr, std::span<const int32_t> banned = {});

 private:
  // Penalties, the logit bias and the bans applied to a copy of the logits.
  void Adjust(std::vector<float>& logits, std::span<const int32_t> banned) const;
  // The chosen token's log-probabilities (when asked), remembered for the penalties.
  SampleResult Finish(SampleResult r, std::span<const float> raw);
  // Sets ids_ to the `keep` best ids (logit descending, lower id first on ties), best first.
  void TakeBest(std::span<const float> logits, size_t keep);

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::unordered_set<int32_t> seen_;                // prompt and output (repetition penalty)
  std::unordered_map<int32_t, int32_t> generated_;  // output counts (presence, frequency)
  std::vector<float> work_;
  std::vector<uint8_t> allowed_;
  struct Candidate {
    float logit;
    int32_t id;
  };
  std::vector<float> values_;  // scratch of TakeBest
  std::vector<Candidate> candidates_;
  std::vector<int32_t> ids_;
};

}  // namespace qb
