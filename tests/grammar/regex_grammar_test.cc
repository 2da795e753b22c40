// Regular expressions as grammars: full matches agree with std::regex (ECMAScript) on random
// strings; UTF-8 classes accept exactly the encodings of their code points; JSON Schema
// patterns and formats; what is refused.
#include <gtest/gtest.h>

#include <random>
#include <regex>

#include "grammar/grammar_matcher.h"
#include "grammar/grammar_test_util.h"
#include "grammar/json_grammar.h"
#include "grammar/regex_grammar.h"

namespace qb {
namespace {

using test::Accepts;

std::string Utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) return std::string(1, static_cast<char>(cp));
  if (cp < 0x800) return {static_cast<char>(0xc0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3f))};
  if (cp < 0x10000)
    return {static_cast<char>(0xe0 | (cp >> 12)), static_cast<char>(0x80 | ((cp >> 6) & 0x3f)), static_cast<char>(0x80 | (cp & 0x3f))};
  return {static_cast<char>(0xf0 | (cp >> 18)), static_cast<char>(0x80 | ((cp >> 12) & 0x3f)),
          static_cast<char>(0x80 | ((cp >> 6) & 0x3f)), static_cast<char>(0x80 | (cp & 0x3f))};
}

TEST(RegexGrammarTest, FullMatchesAgreeWithStdRegex) {
  const char* patterns[] = {"a", "ab|cd", "a*b+c?", "(ab)*", "a{2,3}b{0,}c{1}", "[a-c]+x", "[^ab]*", "\\d{2}-\\w+",
                            "(a|b(c|d)*)+e?", "a.c", "\\s?\\S*", "(?:ab|a)(?:bc|c)", "[\\d.-]+", "x{0,2}y{1,}",
                            "(a|)b", "[a\\-z]", "\\.\\*\\(", "(ba?)*a"};
  std::mt19937 rng(5);
  const std::string alphabet = "abcdexyz01-. (*";
  for (const char* p : patterns) {
    auto g = RegexGrammar(p);
    ASSERT_TRUE(g.ok()) << p << ": " << g.status().ToString();
    const std::regex re(p);
    for (int i = 0; i < 3000; ++i) {
      std::string s;
      const size_t n = rng() % 7;
      for (size_t k = 0; k < n; ++k) s += alphabet[rng() % alphabet.size()];
      const bool want = std::regex_match(s, re);
      ASSERT_EQ(Accepts(*g, s), want) << "pattern " << p << " on \"" << s << "\"";
    }
  }
}

TEST(RegexGrammarTest, AnchorsAreAcceptedAtTheEnds) {
  auto g = RegexGrammar("^[0-9]+$");
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(Accepts(*g, "123"));
  EXPECT_FALSE(Accepts(*g, "12a"));
  auto dollar = RegexGrammar("a\\$");  // an escaped '$' is a character
  ASSERT_TRUE(dollar.ok());
  EXPECT_TRUE(Accepts(*dollar, "a$"));
}

TEST(RegexGrammarTest, Utf8ClassesAcceptExactlyTheirCodePoints) {
  struct Case {
    const char* pattern;
    uint32_t lo, hi;  // the code points it must accept (inclusive); negated when lo > hi
  };
  // [а-я] (Cyrillic), [\u4e00-\u9fff] (CJK), a range across encoding lengths, a class of
  // non-ASCII singles.
  auto g1 = RegexGrammar("[\xd0\xb0-\xd1\x8f]");
  auto g2 = RegexGrammar("[\\u4e00-\\u9fff]");
  auto g3 = RegexGrammar("[\\x7e-\\u0801]");
  ASSERT_TRUE(g1.ok() && g2.ok() && g3.ok());
  auto check = [](const std::shared_ptr<const Grammar>& g, uint32_t lo, uint32_t hi) {
    for (uint32_t cp = 0; cp < 0x11000; cp += (cp < 0x1000 ? 1 : 7)) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      ASSERT_EQ(Accepts(g, Utf8(cp)), cp >= lo && cp <= hi) << std::hex << cp;
    }
  };
  check(*g1, 0x430, 0x44f);
  check(*g2, 0x4e00, 0x9fff);
  check(*g3, 0x7e, 0x801);
  // '.' and negated classes take any character (not a surrogate, not malformed).
  auto dot = RegexGrammar("[^a]");
  ASSERT_TRUE(dot.ok());
  for (uint32_t cp : {0x62u, 0xe9u, 0x20acu, 0x1f600u, 0x10ffffu}) EXPECT_TRUE(Accepts(*dot, Utf8(cp))) << cp;
  EXPECT_FALSE(Accepts(*dot, "a"));
  EXPECT_FALSE(Accepts(*dot, "\xed\xa0\x80"));  // a surrogate
  EXPECT_FALSE(Accepts(*dot, "\xc0\xaf"));      // overlong
}

TEST(RegexGrammarTest, UnsupportedConstructsAreRefused) {
  for (const char* p : {"(a", "a)", "[ab", "*a", "a**", "(?=a)", "(?<=a)b", "(a)\\1", "\\bword", "a{3,1}",
                        "a{5000}", "a{10000}", "a{1000000}", "a{2,99999999999999999999}", "(a*)*", "x^y", "a$b",
                        "\\q", "a++"})
    EXPECT_FALSE(RegexGrammar(p).ok()) << p;
  EXPECT_TRUE(RegexGrammar("(?P<year>\\d{4})-(?<m>\\d\\d)").ok());
  EXPECT_TRUE(RegexGrammar("a{,").ok());  // not a quantifier: literal characters
}

TEST(RegexGrammarTest, JsonSchemaPatternsAndFormats) {
  auto g = JsonSchemaGrammar(nlohmann::ordered_json::parse(R"({"type": "object", "properties": {
      "code": {"type": "string", "pattern": "^[A-Z]{2}-\\d{3}$"},
      "quote": {"type": "string", "pattern": "^say \"[a-z]+\"\\\\$"},
      "loose": {"type": "string", "pattern": "ab"},
      "day": {"type": "string", "format": "date"},
      "id": {"type": "string", "format": "uuid"}},
    "required": ["code", "quote", "loose", "day", "id"]})"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const std::string ok = R"({"code":"AB-123","quote":"say \"hi\"\\","loose":"xxabyy","day":"2026-11-27",)"
                         R"("id":"123e4567-e89b-12d3-a456-426614174000"})";
  EXPECT_TRUE(Accepts(*g, ok));
  const auto j = nlohmann::ordered_json::parse(ok);
  EXPECT_EQ(j["quote"], "say \"hi\"\\");
  for (const std::string& bad : {std::string(R"({"code":"AB-12",)"), std::string(R"({"code":"ab-123",)")})
    EXPECT_FALSE(Accepts(*g, bad + R"("quote":"say \"hi\"\\","loose":"ab","day":"2026-11-27","id":"123e4567-e89b-12d3-a456-426614174000"})"));
  EXPECT_FALSE(Accepts(*g, R"({"code":"AB-123","quote":"say \"hi\"\\","loose":"a b","day":"2026-11-27","id":"123e4567-e89b-12d3-a456-426614174000"})"));
  EXPECT_FALSE(Accepts(*g, R"({"code":"AB-123","quote":"say \"hi\"\\","loose":"ab","day":"2026-13-27","id":"123e4567-e89b-12d3-a456-426614174000"})"));
  EXPECT_FALSE(JsonSchemaGrammar(nlohmann::ordered_json::parse(R"({"type": "string", "pattern": "(a"})")).ok());
  EXPECT_FALSE(JsonSchemaGrammar(nlohmann::ordered_json::parse(R"({"type": "string", "pattern": "a", "maxLength": 3})")).ok());
}

}  // namespace
}  // namespace qb
