// The Unicode facts the tokenizer needs, from utf8proc: code point classes as Hugging Face
// tokenizers' regex engine (Oniguruma) sees them, NFC, and UTF-8 decoding (strict and lossy).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace qb::unicode {

// Decodes one code point at s[i] (i < s.size()). Returns the code point and sets *len to its
// byte length; invalid or truncated sequences give U+FFFD with *len = 1.
char32_t DecodeAt(std::string_view s, size_t i, size_t* len);
void AppendUtf8(std::string& out, char32_t cp);

// Character classes of the Qwen2 pre-tokenizer regex.
enum CharClass : uint8_t {
  kOther = 0,
  kLetter = 1,      // \p{L}: Lu, Ll, Lt, Lm, Lo
  kNumber = 2,      // \p{N}: Nd, Nl, No
  kSpace = 4,       // \s: U+0009..U+000D, U+0085, Zs, Zl, Zp
  kNewline = 8,     // \r or \n (also kSpace)
};
uint8_t Classify(char32_t cp);

bool IsAscii(std::string_view s);
// Unicode Normalization Form C. Invalid UTF-8 is returned unchanged.
std::string Nfc(std::string_view s);

// Length of the longest prefix of `s` made of whole code points, leaving out a trailing
// sequence that is incomplete but could still become valid with more bytes.
size_t CompletePrefix(std::string_view s);
// Decodes bytes as text, replacing each maximal ill-formed subsequence with U+FFFD (the
// Unicode-recommended practice, as Rust's from_utf8_lossy does).
std::string Lossy(std::string_view bytes);

}  // namespace qb::unicode
