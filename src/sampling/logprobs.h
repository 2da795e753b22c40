// Log-probabilities of one row of logits (log-softmax in double): a token's, its rank and the
// best alternatives. What the sampler reports for a chosen token and the engine for each token
// of a prompt (OpenAI's echo with logprobs, vLLM's prompt_logprobs, TGI's decoder_input_details).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace qb {

struct TokenLogprob {
  int32_t id;
  float logprob;
};

struct TokenLogprobs {
  float logprob = 0.0f;
  int64_t rank = 0;                // 1 + how many ids have a larger logit (only with want_rank)
  std::vector<TokenLogprob> top;   // the `top` best ids, best first (lower id first on ties)
};

TokenLogprobs LogprobsOf(std::span<const float> logits, int32_t token, int32_t top, bool want_rank = false);

// log(sum(exp(logits))), in double.
double LogSumExp(std::span<const float> logits);

// KL(P || Q) of the distributions softmax(p_logits) and softmax(q_logits), in nats (rows of the
// same length): what a quantized model (Q) loses against the exact one (P).
double KlDivergence(std::span<const float> p_logits, std::span<const float> q_logits);

}  // namespace qb
