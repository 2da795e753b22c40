#include "tokenizer/pretokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tokenizer/unicode.h"

namespace qb {
namespace {

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string_view> v;
  SplitQwen2(s, v);
  return {v.begin(), v.end()};
}

using V = std::vector<std::string>;

TEST(PreTokenizerTest, WordsNumbersPunctuation) {
  EXPECT_EQ(Split("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(Split("x=123"), (V{"x", "=", "1", "2", "3"}));
  EXPECT_EQ(Split("a, b!!"), (V{"a", ",", " b", "!!"}));
  EXPECT_EQ(Split(" (x)"), (V{" (", "x", ")"}));
}

TEST(PreTokenizerTest, Contractions) {
  EXPECT_EQ(Split("I'm"), (V{"I", "'m"}));
  EXPECT_EQ(Split("YOU'LL"), (V{"YOU", "'LL"}));
  EXPECT_EQ(Split("it's"), (V{"it", "'s"}));
  EXPECT_EQ(Split("'x"), (V{"'x"}));  // not a contraction: punctuation + letter
}

TEST(PreTokenizerTest, WhiteSpaceRuns) {
  EXPECT_EQ(Split("a   b"), (V{"a", "  ", " b"}));    // \s+(?!\S) leaves one space for " b"
  EXPECT_EQ(Split("a \n\n b"), (V{"a", " \n\n", " b"}));  // \s*[\r\n]+ ends at the last newline
  EXPECT_EQ(Split("a  "), (V{"a", "  "}));              // trailing run stays whole
  EXPECT_EQ(Split("x\t\ty"), (V{"x", "\t", "\ty"}));
  EXPECT_EQ(Split("!!\n\nx"), (V{"!!\n\n", "x"}));       // punctuation takes the newlines after it
}

TEST(PreTokenizerTest, UnicodeClasses) {
  EXPECT_EQ(Split("今天天气"), (V{"今天天气"}));
  EXPECT_EQ(Split("x\u00a0y"), (V{"x", "\u00a0y"}));  // NBSP is \s but may prefix letters
  EXPECT_EQ(Split("①②"), (V{"①", "②"}));              // No: numbers, one each
  EXPECT_EQ(Split("a\u0085b"), (V{"a", "\u0085b"}));  // U+0085 is \s in Oniguruma
  EXPECT_EQ(unicode::Classify(0xfeff), unicode::kOther);
  EXPECT_EQ(unicode::Classify(0x85), unicode::kSpace);
  EXPECT_EQ(unicode::Classify(0x3000), unicode::kSpace);
  EXPECT_EQ(unicode::Classify(0x4e00), unicode::kLetter);
}

TEST(PreTokenizerTest, PiecesCoverTheText) {
  const std::string s = "Ünïcödé   text\r\n\r\n  with 12 numbers, 'quotes' and   tabs\t\tend  ";
  std::string joined;
  for (const auto& p : Split(s)) joined += p;
  EXPECT_EQ(joined, s);
}

TEST(UnicodeTest, LossyAndCompletePrefix) {
  EXPECT_EQ(unicode::Lossy("a\xe4\xbd"), "a\xef\xbf\xbd");          // truncated sequence: one U+FFFD
  EXPECT_EQ(unicode::Lossy("\xff\xfe"), "\xef\xbf\xbd\xef\xbf\xbd");  // two invalid bytes: two
  EXPECT_EQ(unicode::Lossy("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // surrogate
  EXPECT_EQ(unicode::CompletePrefix("ab\xe4\xbd"), 2u);
  EXPECT_EQ(unicode::CompletePrefix("ab\xe4\xbd\xa0"), 5u);
  EXPECT_EQ(unicode::CompletePrefix("ab\xff"), 3u);  // never valid: emit now
  EXPECT_EQ(unicode::Nfc("e\u0301"), "\u00e9");
  EXPECT_EQ(unicode::Nfc("\u1100\u1161"), "\uac00");
}

}  // namespace
}  // namespace qb
