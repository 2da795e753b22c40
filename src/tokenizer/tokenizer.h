// The Qwen2.5 tokenizer: NFC, the Qwen2 pre-tokenizer, byte-level BPE, and added tokens
// (<|endoftext|>, <|im_start|>, <tool_call>, ...) matched in the text before the rest.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/bpe.h"
#include "util/status.h"

namespace qb {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;  // control tokens (skipped by Decode with skip_special)
};

class Tokenizer {
 public:
  Tokenizer(BpeModel bpe, std::vector<AddedToken> added, std::string chat_template);

  // Text to ids. With parse_special, added tokens written in the text become their ids (as
  // Hugging Face does by default); without, they are encoded as ordinary text.
  std::vector<int32_t> Encode(std::string_view text, bool parse_special = true) const;
  // Ids to text (invalid UTF-8 from partial tokens becomes U+FFFD). Unknown ids are errors.
  Result<std::string> Decode(const std::vector<int32_t>& ids, bool skip_special = false) const;
  // The raw bytes of one token (added tokens: their content), or nullptr for an unknown id.
  const std::string* TokenBytes(int32_t id) const;
  bool IsSpecial(int32_t id) const;
  // The id of an added token's text, e.g. "<|im_end|>", if there is one.
  std::optional<int32_t> AddedTokenId(std::string_view content) const;

  int32_t vocab_size() const { return vocab_size_; }  // one past the largest id
  const std::vector<AddedToken>& added_tokens() const { return added_; }
  const std::string& chat_template() const { return chat_template_; }

 private:
  void EncodeOrdinary(std::string_view text, std::vector<int32_t>& ids) const;
  // The longest added token starting at text[i], or nullptr.
  const AddedToken* MatchAdded(std::string_view text, size_t i) const;

  BpeModel bpe_;
  std::vector<AddedToken> added_;  // sorted by content length, longest first
  std::vector<std::string> added_bytes_;  // id - added_base_ -> content, for decoding
  std::vector<int8_t> special_;           // per id
  bool first_byte_[256] = {};
  int32_t vocab_size_ = 0;
  std::string chat_template_;
};

// Loads the tokenizer of a model PATH: a directory with tokenizer.json, or vocab.json +
// merges.txt (+ tokenizer_config.json for added tokens), or a .gguf file (tokenizer.ggml.*).
// The chat template comes from tokenizer_config.json or tokenizer.chat_template.
Result<std::shared_ptr<const Tokenizer>> LoadTokenizer(const std::string& path);
// The same from the text of tokenizer.json and tokenizer_config.json ("{}" if none); `what`
// names the source in errors.
Result<std::shared_ptr<const Tokenizer>> LoadTokenizerFromText(std::string_view tokenizer_json,
                                                               std::string_view tokenizer_config_json,
                                                               const std::string& what);

}  // namespace qb
