// N-gram speculative decoding through the engine on micro-qwen2: it never changes what a
// request generates (greedy or seeded sampling, penalties, stop strings, structured output,
// batching, preemption), and on text that repeats itself its proposals are accepted.
#include <gtest/gtest.h>

#include <random>

#include "engine/engine_fixture.h"
#include "engine/drafter.h"
#include "grammar/json_grammar.h"

namespace qb {
namespace {

SpeculativeConfig Speculate(int64_t tokens, int64_t ngram_min = 1, int64_t max_seqs = 64) {
  SpeculativeConfig c;
  c.num_tokens = tokens;
  c.ngram_min = ngram_min;
  c.ngram_max = 3;
  c.max_seqs = max_seqs;
  return c;
}

// A prompt that repeats a random phrase: the proposals come from it (and from the model's own
// loops: random weights fall into repetition under greedy decoding).
std::vector<int32_t> RepetitivePrompt(std::mt19937& rng, int phrase, int copies) {
  std::vector<int32_t> p(static_cast<size_t>(phrase));
  for (auto& t : p) t = std::uniform_int_distribution<int32_t>(0, 1022)(rng);
  std::vector<int32_t> out;
  for (int i = 0; i < copies; ++i) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::vector<int32_t> Draft(std::vector<int32_t> tokens, int64_t ngram_min, int64_t ngram_max, int64_t k) {
  return NgramDraft(tokens, ngram_min, ngram_max, k);
}

TEST(NgramDraftTest, ProposesWhatFollowedTheLatestOccurrenceOfTheLongestSuffix) {
  // ... 7 8 9 | 1 2 | ... 7 8 9: the 3-token suffix last occurred at the start.
  const std::vector<int32_t> t = {7, 8, 9, 1, 2, 5, 8, 9, 3, 7, 8, 9};
  EXPECT_EQ(NgramDraft(t, 1, 3, 2), (std::vector<int32_t>{1, 2}));
  // With at most 2: "8 9" last occurred before "3".
  EXPECT_EQ(NgramDraft(t, 1, 2, 2), (std::vector<int32_t>{3, 7}));
  // A continuation that reaches the end continues as the loop would.
  EXPECT_EQ(Draft({4, 5, 4, 5}, 2, 2, 5), (std::vector<int32_t>{4, 5, 4, 5, 4}));
  EXPECT_EQ(Draft({6, 6, 6}, 1, 3, 3), (std::vector<int32_t>{6, 6, 6}));
  // Nothing repeats, or the suffix is too short, or nothing asked for.
  EXPECT_TRUE(Draft({1, 2, 3, 4}, 1, 3, 4).empty());
  EXPECT_TRUE(Draft({1, 2, 1}, 2, 3, 4).empty());
  EXPECT_TRUE(Draft({1, 1}, 1, 3, 0).empty());
  EXPECT_TRUE(Draft({}, 1, 3, 4).empty());
  EXPECT_TRUE(Draft({5}, 1, 3, 4).empty());
}

TEST(NgramDraftTest, SettingsAreChecked) {
  EXPECT_TRUE(CheckSpeculative(Speculate(4)).ok());
  EXPECT_TRUE(CheckSpeculative(Speculate(0)).ok());
  EXPECT_FALSE(CheckSpeculative(Speculate(-1)).ok());
  EXPECT_FALSE(CheckSpeculative(Speculate(65)).ok());
  EXPECT_FALSE(CheckSpeculative(Speculate(4, 0)).ok());
  EXPECT_FALSE(CheckSpeculative(Speculate(4, 4)).ok());  // min above max (3)
  EXPECT_FALSE(CheckSpeculative(Speculate(4, 1, 0)).ok());
}

TEST_F(EngineTest, SpeculationNeverChangesGreedyOutput) {
  std::mt19937 rng(21);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 4; ++i) prompts.push_back(RepetitivePrompt(rng, 3 + i * 4, 4));
  prompts.push_back(RandomPrompt(rng, 30));
  std::vector<std::vector<int32_t>> want;
  for (const auto& p : prompts) want.push_back(Collect(**MakeEngine()->Submit(Greedy(p, 40))).ids);
  for (int64_t k : {1, 4, 8}) {
    // One at a time, then all at once.
    auto engine = MakeEngine(256, 64, 32, DType::kF16, Speculate(k));
    for (size_t i = 0; i < prompts.size(); ++i)
      EXPECT_EQ(Collect(**engine->Submit(Greedy(prompts[i], 40))).ids, want[i]) << "k " << k << " prompt " << i;
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (const auto& p : prompts) streams.push_back(*engine->Submit(Greedy(p, 40)));
    for (size_t i = 0; i < prompts.size(); ++i)
      EXPECT_EQ(Collect(*streams[i]).ids, want[i]) << "k " << k << " batched prompt " << i;
    const EngineStats st = engine->Stats();
    EXPECT_GT(st.draft_tokens, 0) << k;
    EXPECT_GT(st.accepted_tokens, 0) << k;
    EXPECT_LE(st.accepted_tokens, st.draft_tokens);
    // Accepted proposals save steps: fewer steps than tokens generated.
    EXPECT_LT(st.steps, st.generated_tokens) << k;
  }
}

TEST_F(EngineTest, SpeculationNeverChangesSeededSamplingPenaltiesOrStops) {
  std::mt19937 rng(22);
  for (int trial = 0; trial < 6; ++trial) {
    GenerationRequest r = Greedy(RepetitivePrompt(rng, 5, 5), 48);
    r.sampling.temperature = trial % 2 ? 0.7f : 0.3f;
    r.sampling.top_k = trial % 3 == 0 ? 20 : 0;
    r.sampling.top_p = 0.95f;
    r.sampling.seed = 100 + static_cast<uint64_t>(trial);
    r.sampling.logprobs = true;
    r.sampling.top_logprobs = 2;
    if (trial >= 3) {
      r.sampling.repetition_penalty = 1.1f;
      r.sampling.frequency_penalty = 0.3f;
    }
    const Output plain = Collect(**MakeEngine()->Submit(r));
    const Output spec = Collect(**MakeEngine(256, 64, 32, DType::kF16, Speculate(4))->Submit(r));
    EXPECT_EQ(spec.ids, plain.ids) << trial;
    EXPECT_EQ(spec.text, plain.text) << trial;
    // A stop string from the middle of the text ends both at the same place.
    if (plain.text.size() > 20) {
      r.stop = {plain.text.substr(plain.text.size() / 2, 3)};
      const Output a = Collect(**MakeEngine()->Submit(r));
      const Output b = Collect(**MakeEngine(256, 64, 32, DType::kF16, Speculate(4))->Submit(r));
      EXPECT_EQ(b.ids, a.ids) << trial;
      EXPECT_EQ(b.text, a.text) << trial;
      EXPECT_EQ(b.finish.reason, FinishReason::kStop) << trial;
    }
  }
}

TEST_F(EngineTest, SpeculationKeepsMaxTokensAndStructuredOutput) {
  std::mt19937 rng(23);
  const auto prompt = RepetitivePrompt(rng, 4, 6);
  for (int64_t max_tokens : {1, 2, 5, 17}) {
    const Output plain = Collect(**MakeEngine()->Submit(Greedy(prompt, max_tokens)));
    const Output spec = Collect(**MakeEngine(256, 64, 32, DType::kF16, Speculate(8))->Submit(Greedy(prompt, max_tokens)));
    EXPECT_EQ(spec.ids, plain.ids);
    EXPECT_EQ(spec.finish.generated_tokens, max_tokens);
    EXPECT_EQ(spec.finish.reason, FinishReason::kLength);
  }
  GenerationRequest r = Greedy(prompt, 200);
  r.grammar = *JsonSchemaGrammar(nlohmann::ordered_json::parse(
      R"({"type": "array", "items": {"enum": ["ab", "ab", "abab"]}, "minItems": 3, "maxItems": 6})"));
  const Output plain = Collect(**MakeEngine()->Submit(r));
  const Output spec = Collect(**MakeEngine(256, 64, 32, DType::kF16, Speculate(4))->Submit(r));
  EXPECT_EQ(spec.ids, plain.ids);
  EXPECT_EQ(spec.text, plain.text);
  EXPECT_EQ(spec.finish.reason, FinishReason::kStop);
}

// Many requests under a pool small enough for frequent preemption, with cancellations and
// speculation: every request not cancelled returns exactly its solo tokens; the pool ends empty.
TEST_F(EngineTest, SpeculationStressMatchesSoloRuns) {
  std::mt19937 rng(24);
  std::vector<StressJob> jobs;
  for (int i = 0; i < 120 / kStressScale; ++i)
    jobs.push_back({i % 2 ? RandomPrompt(rng, std::uniform_int_distribution<int>(1, 40)(rng))
                          : RepetitivePrompt(rng, std::uniform_int_distribution<int>(2, 6)(rng), 4),
                    std::uniform_int_distribution<int64_t>(1, 28)(rng), rng() % 10 == 0});
  auto engine = MakeEngine(20, 64, 16, DType::kF16, Speculate(6, 1, 16));
  EngineStats st;
  ExpectBatchedMatchesSolo(jobs, *engine, &st);
  EXPECT_GT(st.preemptions, 0);
  EXPECT_GT(st.accepted_tokens, 0);
  EXPECT_EQ(st.kv_blocks_used, 0);
}

}  // namespace
}  // namespace qb
