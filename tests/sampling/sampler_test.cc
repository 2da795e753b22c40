// Sampler: each filter against distributions whose answer is known in closed form.
#include "sampling/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <vector>

namespace qb {
namespace {

std::vector<float> LogitsOf(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

// Token counts over `draws` samples, each from a fresh sampler with its own seed.
std::map<int32_t, int> Histogram(SamplingParams p, const std::vector<float>& logits, int draws) {
  std::map<int32_t, int> h;
  for (int i = 0; i < draws; ++i) {
    p.seed = static_cast<uint64_t>(1000 + i);
    Sampler s(p);
    ++h[s.Sample(logits).token];
  }
  return h;
}

// A filter that allows a fixed set of ids.
class SetFilter : public TokenFilter {
 public:
  SetFilter(std::vector<int32_t> ids, size_t vocab) : ids_(std::move(ids)), vocab_(vocab) {}
  bool Allows(int32_t id) override { return std::find(ids_.begin(), ids_.end(), id) != ids_.end(); }
  int64_t Allowed(std::vector<uint8_t>& allowed) override {
    allowed.assign(vocab_, 0);
    for (int32_t id : ids_) allowed[static_cast<size_t>(id)] = 1;
    return static_cast<int64_t>(ids_.size());
  }

 private:
  std::vector<int32_t> ids_;
  size_t vocab_;
};

TEST(ArgmaxTest, LargestFirstIndexOnTiesAnyLength) {
  for (size_t n : {1u, 7u, 8u, 9u, 100u, 151936u}) {
    std::vector<float> l(n);
    for (size_t i = 0; i < n; ++i) l[i] = -static_cast<float>((i * 7919) % 1000) - 1.f;
    const size_t a = n / 3, b = n - 1;
    l[b] = 5.f;
    l[a] = 5.f;  // tie: the lower index wins
    EXPECT_EQ(Argmax(l), static_cast<int32_t>(a)) << n;
    l[b] = 6.f;
    EXPECT_EQ(Argmax(l), static_cast<int32_t>(b)) << n;
  }
  EXPECT_EQ(Argmax(std::vector<float>{-INFINITY, -INFINITY, -1e30f}), 2);
}

TEST(SamplerTest, GreedyAndTopKOneAreArgmax) {
  const std::vector<float> l = {0.1f, 2.f, -1.f, 2.f, 1.9f};
  SamplingParams greedy;
  EXPECT_EQ(Sampler(greedy).Sample(l).token, 1);
  SamplingParams k1;
  k1.temperature = 5.f;
  k1.top_k = 1;
  EXPECT_EQ(Sampler(k1).Sample(l).token, 1);
}

TEST(SamplerTest, TopKKeepsTheKBestWithRenormalisedProbabilities) {
  // p = 0.4, 0.3, 0.2, 0.1; top_k 2 leaves 0.4/0.7 and 0.3/0.7.
  SamplingParams p;
  p.temperature = 1.f;
  p.top_k = 2;
  const auto h = Histogram(p, LogitsOf({0.4, 0.3, 0.2, 0.1}), 4000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_NEAR(h.at(0) / 4000.0, 4.0 / 7.0, 0.03);
  EXPECT_NEAR(h.at(1) / 4000.0, 3.0 / 7.0, 0.03);
}

TEST(SamplerTest, TopPStopsWhereTheMassReachesP) {
  // 0.5 + 0.3 = 0.8 >= top_p 0.8: tokens 0 and 1 only, as 5:3.
  SamplingParams p;
  p.temperature = 1.f;
  p.top_p = 0.8f;
  const auto h = Histogram(p, LogitsOf({0.5, 0.3, 0.15, 0.05}), 4000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_NEAR(h.at(0) / 4000.0, 5.0 / 8.0, 0.03);
}

TEST(SamplerTest, TopPOverAFlatVocabularyReachesPastTheFirstCandidates) {
  // 4,000 equal logits: the nucleus of 0.9 is ids 0..3599 (ties: lower ids first), far more
  // than the 1,024 candidates taken first. Every draw lies in it and draws spread over it.
  const std::vector<float> l(4000, 0.5f);
  SamplingParams p;
  p.temperature = 0.7f;
  p.top_p = 0.9f;
  std::set<int32_t> seen;
  Sampler s(p);
  for (int i = 0; i < 6000; ++i) {
    const int32_t t = s.Sample(l).token;
    ASSERT_LT(t, 3600);
    seen.insert(t);
  }
  EXPECT_GT(seen.size(), 2000u);
}

TEST(SamplerTest, MinPDropsTokensBelowTheFractionOfTheBest) {
  // min_p 0.4 of the best 0.6 = 0.24: 0.3 stays, 0.1 goes.
  SamplingParams p;
  p.temperature = 1.f;
  p.min_p = 0.4f;
  const auto h = Histogram(p, LogitsOf({0.6, 0.3, 0.1}), 3000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_NEAR(h.at(0) / 3000.0, 2.0 / 3.0, 0.03);
}

TEST(SamplerTest, TemperatureSharpensTheDistribution) {
  // T = 0.5 squares the probabilities: 0.6^2 : 0.4^2 = 9 : 4.
  SamplingParams p;
  p.temperature = 0.5f;
  const auto h = Histogram(p, LogitsOf({0.6, 0.4}), 4000);
  EXPECT_NEAR(h.at(0) / 4000.0, 9.0 / 13.0, 0.03);
}

TEST(SamplerTest, SameSeedSameTokensOtherSeedOthers) {
  std::vector<float> l(1000);
  for (size_t i = 0; i < l.size(); ++i) l[i] = static_cast<float>(std::sin(static_cast<double>(i)));
  SamplingParams p;
  p.temperature = 1.f;
  p.top_p = 0.95f;
  auto run = [&](uint64_t seed) {
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) out.push_back(s.Sample(l).token);
    return out;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
}

TEST(SamplerTest, PenaltiesLowerSeenAndGeneratedTokens) {
  // Repetition penalty 2 halves token 0's positive logit (prompt token): 1.0 -> 0.5 < 0.8.
  const std::vector<float> l = {1.0f, 0.8f, 0.1f};
  SamplingParams rep;
  rep.repetition_penalty = 2.f;
  const std::vector<int32_t> prompt = {0};
  EXPECT_EQ(Sampler(rep, prompt).Sample(l).token, 1);
  // Frequency penalty: after token 0 is generated once its logit drops by 0.5 (1.0 -> 0.5).
  SamplingParams freq;
  freq.frequency_penalty = 0.5f;
  Sampler s(freq);
  EXPECT_EQ(s.Sample(l).token, 0);
  EXPECT_EQ(s.Sample(l).token, 1);
}

TEST(SamplerTest, LogitBiasShiftsTheDistributionButNotTheReportedLogprobs) {
  // p = 0.5, 0.3, 0.2. A bias of ln 3 on token 2 makes its weight 0.6: p' = 0.5, 0.3, 0.6 / 1.4.
  const std::vector<float> l = LogitsOf({0.5, 0.3, 0.2});
  SamplingParams p;
  p.temperature = 1.f;
  p.logit_bias = {{2, static_cast<float>(std::log(3.0))}};
  const auto h = Histogram(p, l, 4000);
  EXPECT_NEAR(h.at(2) / 4000.0, 0.6 / 1.4, 0.03);
  EXPECT_NEAR(h.at(0) / 4000.0, 0.5 / 1.4, 0.03);
  // -100 bans (as OpenAI documents), +100 forces, greedy or not.
  p.logit_bias = {{0, -100.f}, {1, -100.f}};
  EXPECT_EQ(Histogram(p, l, 200).size(), 1u);
  SamplingParams g;
  g.logit_bias = {{1, 100.f}};
  g.logprobs = true;
  const SampleResult r = Sampler(g).Sample(l);
  EXPECT_EQ(r.token, 1);
  EXPECT_NEAR(r.logprob, std::log(0.3), 1e-6);  // the model's own probability of the token
}

TEST(SamplerTest, BannedIdsAreNeverPickedUnlessAFilterAllowsNothingElse) {
  const std::vector<float> l = LogitsOf({0.6, 0.3, 0.1});
  const std::vector<int32_t> banned = {0};
  EXPECT_EQ(Sampler(SamplingParams{}).Sample(l, nullptr, banned).token, 1);
  SamplingParams p;
  p.temperature = 1.f;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    p.seed = seed;
    EXPECT_NE(Sampler(p).Sample(l, nullptr, banned).token, 0);
  }
  // A grammar that allows only the banned id (it must end here) wins.
  SetFilter only_end({0}, l.size());
  EXPECT_EQ(Sampler(SamplingParams{}).Sample(l, &only_end, banned).token, 0);
  EXPECT_EQ(Sampler(p).Sample(l, &only_end, banned).token, 0);
}

TEST(LogprobsTest, KlDivergenceOfKnownDistributions) {
  // KL((0.5, 0.5) || (0.25, 0.75)) = 0.5 ln 2 + 0.5 ln(2/3); logits shifted by any constant alike.
  const std::vector<float> p = {3.0f, 3.0f};
  const std::vector<float> q = LogitsOf({0.25, 0.75});
  EXPECT_NEAR(KlDivergence(p, q), 0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3.0), 1e-7);
  EXPECT_NEAR(KlDivergence(q, q), 0.0, 1e-12);
  EXPECT_NEAR(LogSumExp(LogitsOf({0.2, 0.3, 0.5})), 0.0, 1e-7);
}

TEST(SamplerTest, LogprobsAreLogSoftmaxOfTheRawLogits) {
  const std::vector<double> probs = {0.5, 0.25, 0.125, 0.125};
  SamplingParams p;
  p.logprobs = true;
  p.top_logprobs = 3;
  const SampleResult r = Sampler(p).Sample(LogitsOf(probs));
  EXPECT_EQ(r.token, 0);
  EXPECT_NEAR(r.logprob, std::log(0.5), 1e-6);
  ASSERT_EQ(r.top.size(), 3u);
  EXPECT_EQ(r.top[0].id, 0);
  EXPECT_EQ(r.top[1].id, 1);
  EXPECT_EQ(r.top[2].id, 2);  // tie with 3: the lower id
  EXPECT_NEAR(r.top[1].logprob, std::log(0.25), 1e-6);
}

}  // namespace
}  // namespace qb

namespace qb {
namespace {

TEST(SamplerFilterTest, OnlyAllowedTokensEvenWhenTheirLogitsAreNanOrInfinite) {
  for (float bad : {NAN, -INFINITY}) {
    std::vector<float> logits = {5.0f, 4.0f, bad, bad, 3.0f};
    SetFilter f({2, 3}, logits.size());
    SamplingParams greedy;
    EXPECT_EQ(Sampler(greedy).Sample(logits, &f).token, 2);
    SamplingParams sampled;
    sampled.temperature = 0.8f;
    sampled.top_p = 0.9f;
    for (uint64_t seed = 0; seed < 5; ++seed) {
      sampled.seed = seed;
      const int32_t t = Sampler(sampled).Sample(logits, &f).token;
      EXPECT_TRUE(t == 2 || t == 3) << t;
    }
  }
  std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  SetFilter none({}, logits.size());
  EXPECT_EQ(Sampler(SamplingParams{}).Sample(logits, &none).token, -1);
  SetFilter one({0}, logits.size());
  SamplingParams sampled;
  sampled.temperature = 1.0f;
  EXPECT_EQ(Sampler(sampled).Sample(logits, &one).token, 0);
}

}  // namespace
}  // namespace qb
