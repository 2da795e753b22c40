#include "tokenizer/pretokenizer.h"

#include "tokenizer/unicode.h"

namespace qb {

namespace {

using unicode::kLetter;
using unicode::kNewline;
using unicode::kNumber;
using unicode::kSpace;

struct Char {
  size_t begin;  // byte offset
  char32_t cp;
  uint8_t cls;
};

// ASCII letter, lower-cased, for the case-insensitive contractions; U+017F (long s) and
// U+212A (Kelvin) case-fold to 's' and 'k' as Oniguruma's case folding has it.
char32_t Folded(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c == 0x17f) return 's';
  if (c == 0x212a) return 'k';
  return c;
}

// Length in characters of a contraction match at i, or 0.
size_t Contraction(const std::vector<Char>& c, size_t i) {
  if (c[i].cp != '\'' || i + 1 >= c.size()) return 0;
  const char32_t a = Folded(c[i + 1].cp);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 < c.size()) {
    const char32_t b = Folded(c[i + 2].cp);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  return 0;
}

size_t Match(const std::vector<Char>& c, size_t i) {
  const size_t n = c.size();
  auto is = [&](size_t k, uint8_t cls) { return k < n && (c[k].cls & cls) != 0; };
  // 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (size_t m = Contraction(c, i)) return m;
  // 2. [^\r\n\p{L}\p{N}]?\p{L}+
  {
    size_t k = i;
    if (!is(k, kNewline | kLetter | kNumber) && is(k + 1, kLetter)) ++k;
    if (is(k, kLetter)) {
      while (is(k, kLetter)) ++k;
      return k - i;
    }
  }
  // 3. \p{N}
  if (is(i, kNumber)) return 1;
  // 4. ' '?[^\s\p{L}\p{N}]+[\r\n]*
  {
    size_t k = i;
    if (c[k].cp == ' ' && k + 1 < n && !is(k + 1, kSpace | kLetter | kNumber)) ++k;
    if (k < n && !is(k, kSpace | kLetter | kNumber)) {
      while (k < n && !is(k, kSpace | kLetter | kNumber)) ++k;
      while (is(k, kNewline)) ++k;
      return k - i;
    }
  }
  // The rest start with white space: find the run.
  size_t end = i;
  while (is(end, kSpace)) ++end;
  // 5. \s*[\r\n]+ : up to and including the run's last CR/LF.
  for (size_t k = end; k > i; --k)
    if (is(k - 1, kNewline)) return k - i;
  // 6. \s+(?!\S) : the run, less its last character unless the run ends the text.
  if (end - i >= 2 || (end - i == 1 && end == n)) return end == n ? end - i : end - i - 1;
  // 7. \s+
  if (end > i) return end - i;
  return 1;  // unreachable for valid classes; keeps the scan moving
}

}  // namespace

void SplitQwen2(std::string_view text, std::vector<std::string_view>& pieces) {
  std::vector<Char> chars;
  chars.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t len = 0;
    const char32_t cp = unicode::DecodeAt(text, i, &len);
    chars.push_back({i, cp, unicode::Classify(cp)});
    i += len;
  }
  for (size_t i = 0; i < chars.size();) {
    const size_t m = Match(chars, i);
    const size_t begin = chars[i].begin;
    const size_t end = i + m < chars.size() ? chars[i + m].begin : text.size();
    pieces.push_back(text.substr(begin, end - begin));
    i += m;
  }
}

}  // namespace qb
