// The Qwen2 pre-tokenizer: splits text into pieces exactly as Hugging Face tokenizers' Split
// (behavior Isolated) does with Qwen2's regex
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// implemented as a hand-written matcher (no regex engine) over utf8proc's character classes.
#pragma once

#include <string_view>
#include <vector>

namespace qb {

// Appends the pieces of `text` (views into it, in order, covering it exactly) to `pieces`.
void SplitQwen2(std::string_view text, std::vector<std::string_view>& pieces);

}  // namespace qb
