// A grammar over the real Qwen2.5 vocabulary: the sorted walk finds exactly the tokens whose
// bytes the grammar accepts one by one (checked token by token), end tokens only where the
// output is complete, other special tokens never; the sampler picks only allowed tokens.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "common/test_paths.h"
#include "grammar/grammar_cache.h"
#include "grammar/json_grammar.h"
#include "grammar/regex_grammar.h"
#include "grammar/token_constraint.h"
#include "sampling/sampler.h"

namespace qb {
namespace {

class TokenConstraintTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t = LoadTokenizer(test::DataPath("tokenizer/qwen2.5"));
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    tokenizer_ = *t;
    index_ = std::make_shared<const TokenBytesIndex>(tokenizer_);
    im_end_ = *tokenizer_->AddedTokenId("<|im_end|>");
    im_start_ = *tokenizer_->AddedTokenId("<|im_start|>");
  }
  static void TearDownTestSuite() {
    index_.reset();
    tokenizer_.reset();
  }

  // The allowed set token by token: each ordinary token's bytes tried from the current state.
  static std::vector<uint8_t> OneByOne(const GrammarConstraint& c) {
    std::vector<uint8_t> allowed(static_cast<size_t>(index_->vocab_size()), 0);
    for (int32_t id = 0; id < index_->vocab_size(); ++id) {
      if (c.IsEnd(id)) allowed[static_cast<size_t>(id)] = c.complete();
      else if (const std::string* b = index_->bytes(id)) allowed[static_cast<size_t>(id)] = c.matcher().Allows(*b);
    }
    return allowed;
  }

  static void ExpectWalkMatches(GrammarConstraint& c, const std::string& where) {
    std::vector<uint8_t> walked;
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t n = c.Allowed(walked);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const std::vector<uint8_t> expected = OneByOne(c);
    int64_t m = 0;
    for (uint8_t a : expected) m += a;
    EXPECT_EQ(n, m) << where;
    for (size_t id = 0; id < expected.size(); ++id)
      ASSERT_EQ(walked[id], expected[id]) << where << ": token " << id << " '" << *tokenizer_->TokenBytes(static_cast<int32_t>(id)) << "'";
    std::vector<uint8_t> again;  // from the cache
    EXPECT_EQ(c.Allowed(again), n);
    EXPECT_EQ(again, walked);
    std::printf("  %s: %lld allowed tokens, walk %.1f ms\n", where.c_str(), static_cast<long long>(n), ms);
  }

  static inline std::shared_ptr<const Tokenizer> tokenizer_;
  static inline std::shared_ptr<const TokenBytesIndex> index_;
  static inline int32_t im_end_ = 0, im_start_ = 0;
};

TEST_F(TokenConstraintTest, SortedWalkFindsExactlyTheTokensTheGrammarAccepts) {
  GrammarConstraint c(JsonObjectGrammar(), index_, {im_end_});
  ExpectWalkMatches(c, "start");
  EXPECT_FALSE(c.Allows(im_end_));
  EXPECT_FALSE(c.Allows(im_start_));
  // (Each check tries all 151,665 tokens one by one: a few of the states.)
  for (const char* piece : {"{\"", "name", "\":", " \"", "caf", "\"", ",\"n\":", "12"}) {
    const std::vector<int32_t> ids = tokenizer_->Encode(piece, false);
    for (int32_t id : ids) ASSERT_TRUE(c.Accept(id)) << piece;
    const std::string p = piece;
    if (p == "{\"" || p == "\":" || p == "\"" || p == "12") ExpectWalkMatches(c, "after " + p);
  }
  EXPECT_FALSE(c.Allows(im_end_));
  ASSERT_TRUE(c.Accept(tokenizer_->Encode("}", false)[0]));
  EXPECT_TRUE(c.complete());
  ExpectWalkMatches(c, "complete");
  std::vector<uint8_t> allowed;
  EXPECT_EQ(c.Allowed(allowed), 1);  // only the end
  EXPECT_TRUE(allowed[static_cast<size_t>(im_end_)]);
  EXPECT_FALSE(allowed[static_cast<size_t>(im_start_)]);
  EXPECT_TRUE(c.Accept(im_end_));
}

TEST_F(TokenConstraintTest, RefusedTokensLeaveTheStateAlone) {
  GrammarConstraint c(JsonObjectGrammar(), index_, {im_end_});
  const int32_t hello = tokenizer_->Encode("hello", false)[0];
  EXPECT_FALSE(c.Allows(hello));
  EXPECT_FALSE(c.Accept(hello));
  EXPECT_FALSE(c.Accept(im_end_));
  EXPECT_FALSE(c.Accept(im_start_));
  EXPECT_TRUE(c.Accept(tokenizer_->Encode("{", false)[0]));
}

TEST_F(TokenConstraintTest, SamplerPicksOnlyAllowedTokens) {
  auto g = ChoiceGrammar({"yes", "no"});
  ASSERT_TRUE(g.ok());
  const int32_t yes = tokenizer_->Encode("yes", false)[0], no = tokenizer_->Encode("no", false)[0];
  const int32_t hello = tokenizer_->Encode("hello", false)[0];
  // The model's rows are wider than the vocabulary (padding ids), and it prefers a refused
  // token and the padding.
  std::vector<float> logits(static_cast<size_t>(index_->vocab_size()) + 300, 0.0f);
  logits[static_cast<size_t>(hello)] = 10.0f;
  for (size_t i = static_cast<size_t>(index_->vocab_size()); i < logits.size(); ++i) logits[i] = 50.0f;
  logits[static_cast<size_t>(no)] = 2.0f;
  logits[static_cast<size_t>(yes)] = 1.0f;
  {
    GrammarConstraint c(*g, index_, {im_end_});
    Sampler greedy(SamplingParams{});
    EXPECT_EQ(greedy.Sample(logits, &c).token, no);
  }
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 50;
  int counts[2] = {0, 0};
  for (uint64_t seed = 0; seed < 400; ++seed) {
    p.seed = seed;
    GrammarConstraint c(*g, index_, {im_end_});
    Sampler s(p);
    const int32_t t = s.Sample(logits, &c).token;
    // Only tokens that start "yes" or "no" ("y", "ye", "n", ...) are allowed.
    const std::string& b = *tokenizer_->TokenBytes(t);
    ASSERT_TRUE(std::string("yes").rfind(b, 0) == 0 || std::string("no").rfind(b, 0) == 0) << b;
    if (t == yes) ++counts[0];
    if (t == no) ++counts[1];
  }
  EXPECT_GT(counts[1], counts[0]);  // e^2 vs e^1 (with the one-letter prefixes as the rest)
  EXPECT_GT(counts[0], 0);
  // No token at all: a grammar that is complete, with no end token to offer.
  auto done = ChoiceGrammar({"y"});
  GrammarConstraint c(*done, index_, {});
  ASSERT_TRUE(c.Accept(tokenizer_->Encode("y", false)[0]));
  Sampler greedy(SamplingParams{});
  EXPECT_EQ(greedy.Sample(logits, &c).token, -1);
}

}  // namespace
}  // namespace qb

namespace qb {
namespace {

// Random logits over the real vocabulary, greedy and sampled: every pick is accepted and every
// finished text is a document of the schema.
TEST_F(TokenConstraintTest, RandomLogitsWriteDocumentsOfTheSchema) {
  auto g = JsonSchemaGrammar(nlohmann::ordered_json::parse(R"({"type": "object", "properties": {
      "city": {"type": "string", "maxLength": 12}, "sunny": {"type": "boolean"}, "temp": {"type": "integer"}},
      "required": ["city", "sunny", "temp"], "additionalProperties": false})"));
  ASSERT_TRUE(g.ok());
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(static_cast<size_t>(index_->vocab_size()));
  int finished = 0;
  for (int doc = 0; doc < 6; ++doc) {
    SamplingParams p;
    if (doc % 2) {
      p.temperature = 1.0f;
      p.seed = static_cast<uint64_t>(doc);
    }
    Sampler s(p);
    GrammarConstraint c(*g, index_, {im_end_});
    std::string text;
    for (int step = 0; step < 200; ++step) {
      for (float& l : logits) l = normal(rng);
      const int32_t t = s.Sample(logits, &c).token;
      ASSERT_GE(t, 0);
      ASSERT_TRUE(c.Accept(t)) << text << " + token " << t << " '" << *tokenizer_->TokenBytes(t) << "'";
      if (t == im_end_) break;
      text += *tokenizer_->TokenBytes(t);
    }
    if (!c.complete()) continue;
    ++finished;
    const auto j = nlohmann::ordered_json::parse(text, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << text;
    EXPECT_EQ(j.size(), 3u) << text;
  }
  EXPECT_EQ(finished, 6);
}

}  // namespace
}  // namespace qb

namespace qb {
namespace {

// Requests of the same grammar share its allowed sets: a second document walks only the states
// the first did not reach; a compiled grammar is reused by its source, failures are not kept.
TEST_F(TokenConstraintTest, RequestsOfOneGrammarShareTheirAllowedSets) {
  GrammarCache compiled(2);
  const auto schema = nlohmann::ordered_json::parse(R"({"type": "object", "properties": {"ok": {"type": "boolean"}},
      "required": ["ok"], "additionalProperties": false})");
  auto g1 = compiled.GetOrBuild("s", [&] { return JsonSchemaGrammar(schema); });
  auto g2 = compiled.GetOrBuild("s", [&]() -> Result<std::shared_ptr<const Grammar>> { return Internal("not called"); });
  ASSERT_TRUE(g1.ok() && g2.ok());
  EXPECT_EQ(g1->get(), g2->get());
  EXPECT_FALSE(compiled.GetOrBuild("bad", [] { return RegexGrammar("(a"); }).ok());
  EXPECT_TRUE(compiled.GetOrBuild("bad", [] { return RegexGrammar("a"); }).ok());  // not cached as failed
  EXPECT_TRUE(compiled.GetOrBuild("third", [] { return RegexGrammar("b"); }).ok());
  auto again = compiled.GetOrBuild("s", [&] { return JsonSchemaGrammar(schema); });  // evicted: built anew
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->get(), g1->get());

  TokenSetCaches caches;
  auto sets = caches.For(*g1);
  EXPECT_EQ(caches.For(*g1), sets);
  const std::vector<int32_t> doc = tokenizer_->Encode(R"({"ok": true})", false);
  std::vector<uint8_t> allowed;
  int64_t first_walks = 0;
  for (int request = 0; request < 2; ++request) {
    GrammarConstraint c(*g1, index_, {im_end_}, caches.For(*g1));
    for (int32_t id : doc) {
      c.Allowed(allowed);
      ASSERT_TRUE(allowed[static_cast<size_t>(id)]);
      ASSERT_TRUE(c.Accept(id));
    }
    EXPECT_TRUE(c.complete());
    if (request == 0) first_walks = c.walks();
    else EXPECT_EQ(c.walks(), 0);  // every state's set came from the first request
  }
  EXPECT_GT(first_walks, 2);
}

}  // namespace
}  // namespace qb
