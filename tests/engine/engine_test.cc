// The engine end to end on micro-qwen2: batching, chunked prefill, prefix caching and
// preemption never change a request's greedy output; sampling depends only on the seed; stop
// conditions; limits; cancellation frees the cache.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <random>
#include <thread>

#include "engine/engine_fixture.h"
#include "common/model_runner.h"
#include "grammar/json_grammar.h"

namespace qb {
namespace {


class EngineKvTypeTest : public EngineTest, public ::testing::WithParamInterface<DType> {};

TEST_P(EngineKvTypeTest, SoloGreedyMatchesTheModel) {
  // With the same KV type the engine (paged, chunked prefill) computes exactly what Forward on a
  // contiguous cache does: rows are stored (and, for q8_0, quantized) one token at a time.
  EngineConfig c;
  c.kv_blocks = 32;
  c.kv_dtype = GetParam();
  c.scheduler.max_batch_tokens = 16;  // the 40-token prompt is prefilled in three chunks
  Engine engine(model_, tokenizer_, c, kernels::ExecContext{pool_.get(), kernels::DetectIsa()});
  std::mt19937 rng(1);
  const auto prompt = RandomPrompt(rng, 40);
  auto s = engine.Submit(Greedy(prompt, 12));
  ASSERT_TRUE(s.ok());
  const Output out = Collect(**s);
  ContiguousKvCache cache(model_->config(), 60, GetParam());
  const kernels::ExecContext ctx{pool_.get(), kernels::DetectIsa()};
  std::vector<int32_t> want, step = prompt;
  int64_t pos = 0;
  for (int i = 0; i < 12; ++i) {
    auto logits = model_->Forward(step, pos, cache, false, ctx);
    ASSERT_TRUE(logits.ok());
    pos += static_cast<int64_t>(step.size());
    want.push_back(Argmax({logits->data<float>(), static_cast<size_t>(logits->cols())}));
    step = {want.back()};
  }
  EXPECT_EQ(out.ids, want);
  EXPECT_EQ(out.finish.reason, FinishReason::kLength);
  EXPECT_EQ(out.finish.generated_tokens, 12);
  EXPECT_EQ(out.text, *tokenizer_->Decode(want, true));
}

INSTANTIATE_TEST_SUITE_P(KvTypes, EngineKvTypeTest, ::testing::Values(DType::kF32, DType::kQ8_0),
                         [](const auto& p) { return std::string(Name(p.param)); });

// A q8_0 cache (half of f16's bytes) keeps what batching and the prefix cache promise.
TEST_F(EngineTest, Q8_0CacheBatchingAndPrefixHitsNeverChangeGreedyOutput) {
  std::mt19937 rng(12);
  const auto prompt = RandomPrompt(rng, 37);
  const Output solo = Collect(**MakeEngine(256, 64, 32, DType::kQ8_0)->Submit(Greedy(prompt, 20)));
  auto engine = MakeEngine(512, 48, 32, DType::kQ8_0);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 7; ++i)
    streams.push_back(*engine->Submit(Greedy(RandomPrompt(rng, std::uniform_int_distribution<int>(1, 80)(rng)),
                                             std::uniform_int_distribution<int>(1, 30)(rng))));
  auto mine = *engine->Submit(Greedy(prompt, 20));
  auto copy = *engine->Submit(Greedy(prompt, 20));
  EXPECT_EQ(Collect(*mine).ids, solo.ids);
  EXPECT_EQ(Collect(*copy).ids, solo.ids);
  for (auto& s : streams) Collect(*s);
}

TEST_F(EngineTest, BatchingNeverChangesGreedyOutput) {
  std::mt19937 rng(2);
  const auto prompt = RandomPrompt(rng, 37);
  auto solo_engine = MakeEngine();
  const Output solo = Collect(**solo_engine->Submit(Greedy(prompt, 20)));
  for (int others : {1, 7, 32}) {
    auto engine = MakeEngine(512, 48);
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (int i = 0; i < others; ++i)
      streams.push_back(*engine->Submit(Greedy(RandomPrompt(rng, std::uniform_int_distribution<int>(1, 80)(rng)),
                                               std::uniform_int_distribution<int>(1, 30)(rng))));
    auto mine = *engine->Submit(Greedy(prompt, 20));
    // And a second copy of the same prompt (prefix-cache hits once the first has run).
    auto copy = *engine->Submit(Greedy(prompt, 20));
    EXPECT_EQ(Collect(*mine).ids, solo.ids) << others << " others";
    EXPECT_EQ(Collect(*copy).ids, solo.ids) << others << " others (copy)";
    for (auto& s : streams) Collect(*s);
  }
}

TEST_F(EngineTest, PrefixCacheServesASharedPrompt) {
  auto engine = MakeEngine();
  std::mt19937 rng(3);
  const auto prompt = RandomPrompt(rng, 100);
  const Output first = Collect(**engine->Submit(Greedy(prompt, 4)));
  const Output second = Collect(**engine->Submit(Greedy(prompt, 4)));
  EXPECT_EQ(first.finish.cached_tokens, 0);
  EXPECT_EQ(second.finish.cached_tokens, 96);  // 6 full blocks of 16
  EXPECT_EQ(first.ids, second.ids);
  EXPECT_GE(engine->Stats().prefix_hit_blocks, 6);
}

// 300 requests under a pool small enough for frequent preemption, with cancellations: every
// request not cancelled returns exactly its solo tokens, and the pool ends empty.
TEST_F(EngineTest, StressMatchesSoloRuns) {
  std::mt19937 rng(4);
  std::vector<StressJob> jobs;
  for (int i = 0; i < 300 / kStressScale; ++i)
    jobs.push_back({RandomPrompt(rng, std::uniform_int_distribution<int>(1, 48)(rng)),
                    std::uniform_int_distribution<int64_t>(1, 24)(rng), rng() % 10 == 0});
  // All at once: 20 blocks of 16 tokens for up to 72-token requests.
  auto engine = MakeEngine(20, 64, 16);
  EngineStats st;
  EXPECT_GT(ExpectBatchedMatchesSolo(jobs, *engine, &st), 0);
  EXPECT_GT(st.preemptions, 0);
  EXPECT_EQ(st.kv_blocks_used, 0);
  EXPECT_EQ(st.running + st.waiting, 0);
}

TEST_F(EngineTest, SeededSamplingIgnoresTheBatch) {
  std::mt19937 rng(5);
  const auto prompt = RandomPrompt(rng, 20);
  GenerationRequest r;
  r.prompt = prompt;
  r.max_tokens = 16;
  r.ignore_eos = true;
  r.sampling.temperature = 1.3f;
  r.sampling.top_p = 0.9f;
  r.sampling.seed = 77;
  auto a = MakeEngine();
  const Output alone = Collect(**a->Submit(r));
  auto b = MakeEngine();
  std::vector<std::shared_ptr<RequestStream>> others;
  for (int i = 0; i < 5; ++i) {
    GenerationRequest o = r;
    o.sampling.seed = 1000 + static_cast<uint64_t>(i);
    o.prompt = RandomPrompt(rng, 10 + i);
    others.push_back(*b->Submit(o));
  }
  const Output batched = Collect(**b->Submit(r));
  EXPECT_EQ(alone.ids, batched.ids);
  r.sampling.seed = 78;
  EXPECT_NE(Collect(**a->Submit(r)).ids, alone.ids);
  for (auto& s : others) Collect(*s);
}

TEST_F(EngineTest, StopConditions) {
  auto engine = MakeEngine();
  std::mt19937 rng(6);
  const auto prompt = RandomPrompt(rng, 12);
  const Output full = Collect(**engine->Submit(Greedy(prompt, 24)));
  ASSERT_EQ(full.ids.size(), 24u);
  // A stop token id: output ends with it, reason stop, its text excluded.
  GenerationRequest r = Greedy(prompt, 24);
  r.stop_token_ids = {full.ids[5]};
  const Output by_id = Collect(**engine->Submit(r));
  const size_t first = static_cast<size_t>(std::find(full.ids.begin(), full.ids.end(), full.ids[5]) - full.ids.begin());
  EXPECT_EQ(by_id.finish.reason, FinishReason::kStop);
  EXPECT_EQ(by_id.ids.size(), first + 1);
  // A stop string from the middle of the text: the text ends right before it.
  ASSERT_GT(full.text.size(), 12u);
  const std::string stop = full.text.substr(6, 4);
  GenerationRequest rs = Greedy(prompt, 24);
  rs.stop = {stop, "never-appears"};
  const Output by_str = Collect(**engine->Submit(rs));
  EXPECT_EQ(by_str.finish.reason, FinishReason::kStop);
  EXPECT_EQ(by_str.text, full.text.substr(0, full.text.find(stop)));
  // EOS stops unless ignored.
  GenerationRequest re = Greedy(prompt, 24);
  re.ignore_eos = false;
  re.stop_token_ids.clear();
  const Output eos = Collect(**engine->Submit(re));
  EXPECT_TRUE(eos.finish.reason == FinishReason::kLength || eos.ids.back() == 1023);
}

// logit_bias reaches the sampler; min_tokens keeps the end ids out (eos and stop ids) and stop
// strings from ending the output before that many tokens.
TEST_F(EngineTest, LogitBiasAndMinTokens) {
  auto engine = MakeEngine();
  std::mt19937 rng(16);
  const auto prompt = RandomPrompt(rng, 10);
  const Output full = Collect(**engine->Submit(Greedy(prompt, 24)));
  ASSERT_EQ(full.ids.size(), 24u);
  GenerationRequest forced = Greedy(prompt, 24);
  forced.ignore_eos = false;
  forced.sampling.logit_bias = {{1023, 100.f}};  // the end id, forced
  const Output at_once = Collect(**engine->Submit(forced));
  EXPECT_EQ(at_once.ids, std::vector<int32_t>{1023});
  forced.min_tokens = 5;
  const Output late = Collect(**engine->Submit(forced));
  ASSERT_EQ(late.ids.size(), 6u);
  EXPECT_EQ(late.ids.back(), 1023);
  EXPECT_EQ(late.finish.reason, FinishReason::kStop);
  for (size_t i = 0; i < 5; ++i) EXPECT_NE(late.ids[i], 1023) << i;
  // A bias of -100 on the greedy first token: another one comes first.
  GenerationRequest banned = Greedy(prompt, 4);
  banned.sampling.logit_bias = {{full.ids[0], -100.f}};
  EXPECT_NE(Collect(**engine->Submit(banned)).ids[0], full.ids[0]);
  // A stop id that greedy decoding meets at token 3: not among the first 8 with min_tokens 8.
  GenerationRequest stop_id = Greedy(prompt, 24);
  stop_id.stop_token_ids = {full.ids[2]};
  stop_id.min_tokens = 8;
  const Output by_id = Collect(**engine->Submit(stop_id));
  ASSERT_GE(by_id.ids.size(), 8u);
  for (size_t i = 0; i < 8; ++i) EXPECT_NE(by_id.ids[i], full.ids[2]) << i;
  if (by_id.finish.reason == FinishReason::kStop) {
    EXPECT_EQ(by_id.ids.back(), full.ids[2]);
  }
  // A stop string in the first token's text: the output still has min_tokens tokens, those of
  // the greedy run (stop strings never change what is sampled).
  ASSERT_FALSE(full.text.empty());
  GenerationRequest stop_str = Greedy(prompt, 24);
  stop_str.stop = {full.text.substr(0, 1)};
  const Output early = Collect(**engine->Submit(stop_str));
  EXPECT_LT(early.ids.size(), 3u);
  stop_str.min_tokens = 6;
  const Output kept = Collect(**engine->Submit(stop_str));
  ASSERT_GE(kept.ids.size(), 6u);
  EXPECT_TRUE(std::equal(kept.ids.begin(), kept.ids.end(), full.ids.begin()));
  // Refused on submit: min_tokens above max_tokens, a bias for an id outside the vocabulary.
  GenerationRequest bad = Greedy(prompt, 4);
  bad.min_tokens = 5;
  EXPECT_FALSE(engine->Submit(bad).ok());
  bad.min_tokens = 0;
  bad.sampling.logit_bias = {{1024, 1.f}};
  EXPECT_FALSE(engine->Submit(bad).ok());
}

// Prompt log-probabilities: each prompt token after the first scored by the row before it, as
// the log-softmax of the model's logits over the whole prompt; in chunks no longer than the
// logit rows, never from the prefix cache, and once only when preemption computes the prompt again.
TEST_F(EngineTest, PromptLogprobsAreTheModelsScoresOfEachPromptToken) {
  EngineConfig c;
  c.kv_blocks = 12;  // four requests of 70 tokens need 20 blocks of 16: preemption
  c.kv_dtype = DType::kF32;
  c.scheduler.max_batch_tokens = 64;
  c.scheduler.max_num_seqs = 8;  // 8 logit rows a step: prompts in chunks of at most 8
  c.eos_token_ids = {1023};
  const kernels::ExecContext ctx{pool_.get(), kernels::DetectIsa()};
  std::mt19937 rng(21);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<std::vector<float>>> want;  // all computed before the engine runs
  for (int i = 0; i < 4; ++i) {
    prompts.push_back(RandomPrompt(rng, 40));
    want.push_back(test::AllPositionLogits(*model_, prompts.back(), ctx));
  }
  Engine engine(model_, tokenizer_, c, ctx);
  auto check = [&](size_t i, const Output& o, const std::vector<TokenLogprobs>& got) {
    ASSERT_EQ(got.size(), prompts[i].size() - 1) << i;
    for (size_t p = 0; p + 1 < prompts[i].size(); ++p) {
      const std::vector<float>& row = want[i][p];
      const TokenLogprobs ref = LogprobsOf(row, prompts[i][p + 1], 3, true);
      EXPECT_NEAR(got[p].logprob, ref.logprob, 2e-3) << i << " " << p;
      EXPECT_NEAR(static_cast<double>(got[p].rank), static_cast<double>(ref.rank), 1.0) << i << " " << p;
      ASSERT_EQ(got[p].top.size(), 3u);
      EXPECT_EQ(got[p].top[0].id, ref.top[0].id) << i << " " << p;
      EXPECT_NEAR(got[p].top[0].logprob, ref.top[0].logprob, 2e-3);
    }
    EXPECT_EQ(o.ids.size(), 30u);
  };
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const auto& p : prompts) {
    GenerationRequest r = Greedy(p, 30);
    r.prompt_logprobs = 3;
    streams.push_back(*engine.Submit(r));
  }
  for (size_t i = 0; i < streams.size(); ++i) {
    std::vector<TokenLogprobs> got;
    Output o;
    StreamEvent ev;
    while (streams[i]->Next(&ev)) {
      if (ev.kind == StreamEvent::Kind::kFinished) break;
      if (o.ids.empty()) got = ev.prompt_logprobs;
      else EXPECT_TRUE(ev.prompt_logprobs.empty());
      o.ids.push_back(ev.token);
    }
    check(i, o, got);
  }
  EXPECT_GT(engine.Stats().preemptions, 0);
  // The same prompt again: its blocks are cached, but scores need the prompt computed.
  GenerationRequest again = Greedy(prompts[0], 30);
  again.prompt_logprobs = 3;
  auto s = *engine.Submit(again);
  StreamEvent ev;
  ASSERT_TRUE(s->Next(&ev));
  Output o{{ev.token}, "", {}};
  const std::vector<TokenLogprobs> got = ev.prompt_logprobs;
  while (s->Next(&ev) && ev.kind == StreamEvent::Kind::kToken) o.ids.push_back(ev.token);
  EXPECT_EQ(ev.cached_tokens, 0);
  check(0, o, got);
  GenerationRequest plain = Greedy(prompts[0], 2);  // (without scores the cache serves it)
  EXPECT_GT(Collect(**engine.Submit(plain)).finish.cached_tokens, 0);
}

TEST_F(EngineTest, LimitsAreCheckedOnSubmit) {
  EngineConfig c;
  c.kv_blocks = 8;
  c.max_total_tokens = 100;
  c.max_input_tokens = 50;
  Engine engine(model_, tokenizer_, c, kernels::ExecContext{pool_.get(), kernels::DetectIsa()});
  EXPECT_FALSE(engine.Submit(Greedy({}, 4)).ok());
  auto too_long = engine.Submit(Greedy(std::vector<int32_t>(60, 5), 4));
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.status().message().find("--max-input-tokens"), std::string::npos);
  auto total = engine.Submit(Greedy(std::vector<int32_t>(40, 5), 70));
  ASSERT_FALSE(total.ok());
  EXPECT_NE(total.status().message().find("--max-total-tokens"), std::string::npos);
  EXPECT_FALSE(engine.Submit(Greedy({5, 2000}, 4)).ok());
  GenerationRequest r = Greedy({5}, 4);
  r.stop = {""};
  EXPECT_FALSE(engine.Submit(r).ok());
}

// --max-queue counts the requests admitted beyond the running slots: a burst that the slots
// take at once is never refused (the queue once counted requests on their way to a free slot).
TEST_F(EngineTest, TheQueueLimitCountsOnlyRequestsBeyondTheSlots) {
  EngineConfig c;
  c.kv_blocks = 64;
  c.scheduler.max_num_seqs = 2;
  c.max_queue = 2;
  Engine engine(model_, tokenizer_, c, kernels::ExecContext{pool_.get(), kernels::DetectIsa()});
  std::vector<std::shared_ptr<RequestStream>> admitted;
  for (int i = 0; i < 4; ++i) {  // 2 running + 2 waiting
    auto s = engine.Submit(Greedy({5, static_cast<int32_t>(10 + i)}, 200));
    ASSERT_TRUE(s.ok()) << "request " << i << ": " << s.status().message();
    admitted.push_back(*s);
  }
  StreamEvent ev;
  ASSERT_TRUE(admitted.front()->Next(&ev));  // running; wait until the stats show all four
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (engine.Stats().running + engine.Stats().waiting < 4 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto fifth = engine.Submit(Greedy({5, 99}, 200));
  ASSERT_FALSE(fifth.ok());
  EXPECT_NE(fifth.status().message().find("queue is full"), std::string::npos);
  for (auto& s : admitted) s->Cancel();
}

TEST_F(EngineTest, CancellationFreesTheCache) {
  auto engine = MakeEngine(64);
  std::mt19937 rng(7);
  auto s = *engine->Submit(Greedy(RandomPrompt(rng, 60), 10000 / 100));
  StreamEvent ev;
  ASSERT_TRUE(s->Next(&ev));  // it is running
  s->Cancel();
  const Output o = Collect(*s);
  EXPECT_EQ(o.finish.reason, FinishReason::kCancelled);
  for (int i = 0; i < 100 && engine->Stats().kv_blocks_used > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(engine->Stats().kv_blocks_used, 0);
}

}  // namespace
}  // namespace qb

namespace qb {
namespace {

// Structured output through the engine (micro-qwen2's random weights would otherwise write
// anything): the text is a document of the schema and ends there, greedy or sampled, alone or
// batched with unconstrained requests, whose output does not change.
TEST_F(EngineTest, StructuredOutputFollowsTheSchemaAndEndsWhereItIsComplete) {
  const auto schema = nlohmann::ordered_json::parse(R"({"type": "object", "properties": {
      "n": {"type": "integer"}, "kind": {"enum": ["a", "b"]}, "ok": {"type": "boolean"},
      "xs": {"type": "array", "items": {"type": "integer"}, "maxItems": 2}},
    "required": ["n", "kind", "ok", "xs"], "additionalProperties": false})");
  auto grammar = JsonSchemaGrammar(schema);
  ASSERT_TRUE(grammar.ok()) << grammar.status().ToString();
  std::mt19937 rng(3);
  const auto prompt = RandomPrompt(rng, 20);
  const auto other = RandomPrompt(rng, 30);
  const Output plain_solo = Collect(**MakeEngine()->Submit(Greedy(other, 24)));
  auto engine = MakeEngine();
  auto plain = *engine->Submit(Greedy(other, 24));
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 4; ++i) {
    GenerationRequest r = Greedy(prompt, 400);
    r.ignore_eos = i == 3;  // still ends where the document does
    r.grammar = *grammar;
    if (i > 0) {
      r.sampling.temperature = 1.0f;
      r.sampling.seed = static_cast<uint64_t>(i);
    }
    streams.push_back(*engine->Submit(std::move(r)));
  }
  for (auto& s : streams) {
    const Output o = Collect(*s);
    EXPECT_EQ(o.finish.reason, FinishReason::kStop) << o.text;
    EXPECT_EQ(o.ids.back(), 1023) << o.text;  // the end token, once the document is complete
    const auto j = nlohmann::ordered_json::parse(o.text, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << o.text;
    EXPECT_TRUE(j["n"].is_number_integer()) << o.text;
    EXPECT_TRUE(j["kind"] == "a" || j["kind"] == "b") << o.text;
    EXPECT_TRUE(j["ok"].is_boolean()) << o.text;
    EXPECT_LE(j["xs"].size(), 2u) << o.text;
    EXPECT_EQ(j.size(), 4u) << o.text;
  }
  EXPECT_EQ(Collect(*plain).ids, plain_solo.ids);
}

TEST_F(EngineTest, StructuredOutputCutByMaxTokensEndsWithLength) {
  GenerationRequest r = Greedy({1, 2, 3}, 3);
  r.grammar = JsonObjectGrammar();
  const Output o = Collect(**MakeEngine()->Submit(std::move(r)));
  EXPECT_EQ(o.finish.reason, FinishReason::kLength);
  EXPECT_EQ(o.ids.size(), 3u);
  EXPECT_EQ(o.text[0], '{');
}

}  // namespace
}  // namespace qb
