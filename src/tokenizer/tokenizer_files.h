// The Qwen2.5 tokenizer files that go with a model qwenbox writes: the real files (built into
// the binary) for models with Qwen2.5's vocabulary, or a consistent subset for smaller
// vocabularies (the first N-1 BPE tokens, the merges among them, and <|endoftext|> as id N-1,
// the recipe of the micro-qwen2 fixture). Also their GGUF metadata (tokenizer.ggml.*).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "formats/gguf.h"
#include "util/status.h"

namespace qb {

struct TokenizerFiles {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
};

// vocab_size >= 151,665 gives the real files; smaller sizes give the subset.
Result<TokenizerFiles> Qwen25TokenizerFiles(int64_t vocab_size);
// tokenizer.json and tokenizer_config.json (optional) of a model directory.
Result<TokenizerFiles> ReadTokenizerFiles(const std::string& dir);

struct SpecialTokenIds {
  int64_t bos = 0;
  int64_t eos = 0;
  int64_t pad = 0;
};

// tokenizer.ggml.* keys as llama.cpp's converter writes them for Qwen2: tokens padded to
// vocab_size with "[PAD<id>]" entries (type 5), control tokens type 3, other added tokens 4.
Result<std::vector<std::pair<std::string, GgufValue>>> TokenizerGgufMetadata(
    const TokenizerFiles& files, int64_t vocab_size, const SpecialTokenIds& ids);

}  // namespace qb
