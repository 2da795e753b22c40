// Incremental detokenization for streaming: each Push returns the text that has become final.
// A multi-byte character split across tokens is held back until complete, and nothing is lost:
// the pieces concatenated equal Tokenizer::Decode of all the ids.
#pragma once

#include <string>

#include "tokenizer/tokenizer.h"

namespace qb {

class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false)
      : tokenizer_(tokenizer), skip_special_(skip_special) {}

  Result<std::string> Push(int32_t id);
  // The held-back tail, if any (an incomplete character becomes U+FFFD, as in Decode).
  std::string Finish();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::string pending_;  // bytes not yet returned
};

}  // namespace qb
