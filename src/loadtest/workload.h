// The requests a load test sends: synthetic prompts of a given token length (random ordinary
// tokens of the Qwen2.5 vocabulary, decoded to text, as vLLM's random dataset does), or a JSONL
// dataset of prompts or chat messages.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "loadtest/length_dist.h"
#include "tokenizer/tokenizer.h"
#include "util/json.h"

namespace qb::loadtest {

struct LoadRequest {
  std::string prompt;        // completions / TGI input
  Json messages;             // chat messages (null unless the dataset gave them)
  int64_t prompt_tokens = 0;  // by the Qwen2.5 tokenizer (the server's usage is preferred)
  int64_t max_tokens = 0;
};

// `count` random prompts; `tokenizer` counts and decodes tokens.
std::vector<LoadRequest> RandomWorkload(const Tokenizer& tokenizer, int64_t count, const LengthDist& input,
                                        const LengthDist& output, uint64_t seed);

// A JSONL file: one object a line with "prompt" (string) or "messages" (chat), and optionally
// "max_tokens" / "output_len" (else drawn from `output`). Lines are used in order, repeated
// when `count` is larger.
Result<std::vector<LoadRequest>> DatasetWorkload(const std::string& path, const Tokenizer& tokenizer, int64_t count,
                                                 const LengthDist& output, uint64_t seed);

}  // namespace qb::loadtest
