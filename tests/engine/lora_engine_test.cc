// LoRA adapters through the engine: requests of different adapters (and of none) batched
// together each get their own adapter's greedy output, and the prefix cache never hands one
// adapter's keys and values to another.
#include <gtest/gtest.h>

#include "common/model_runner.h"
#include "engine/engine_fixture.h"
#include "model/random_lora.h"

namespace qb {
namespace {

class EngineLoraTest : public EngineTest {
 protected:
  static std::shared_ptr<const LoraAdapters> TwoAdapters() {
    auto set = std::make_shared<LoraAdapters>();
    const std::string dir = test::ScratchDir();
    for (uint64_t seed : {11, 12}) {
      RandomLoraOptions o;
      o.out = dir + "/a" + std::to_string(seed);
      o.seed = seed;
      o.alpha = 64;  // a large update, so greedy outputs differ between adapters
      EXPECT_TRUE(WriteRandomLora(model_->config(), o).ok());
      auto a = LoadLoraAdapter(o.out, model_->config(), "a" + std::to_string(seed));
      EXPECT_TRUE(a.ok()) << a.status().ToString();
      set->push_back(std::make_shared<const LoraAdapter>(std::move(*a)));
    }
    return set;
  }

  static std::unique_ptr<Engine> LoraEngine(std::shared_ptr<const LoraAdapters> lora) {
    EngineConfig c;
    c.kv_dtype = DType::kF32;
    c.scheduler.block_size = 16;
    c.scheduler.max_batch_tokens = 24;  // prompts are prefilled in chunks, beside others' decodes
    c.kv_blocks = 64;
    c.eos_token_ids = {1023};
    c.lora = std::move(lora);
    return std::make_unique<Engine>(model_, tokenizer_, c, kernels::ExecContext{pool_.get(), kernels::DetectIsa()});
  }

  static GenerationRequest With(std::vector<int32_t> prompt, int32_t adapter) {
    GenerationRequest r = Greedy(std::move(prompt), 10);
    r.adapter = adapter;
    return r;
  }
};

TEST_F(EngineLoraTest, BatchedRequestsEachGetTheirAdapter) {
  const auto lora = TwoAdapters();
  auto engine = LoraEngine(lora);
  std::mt19937 rng(3);
  const auto prompt = RandomPrompt(rng, 40);
  const kernels::ExecContext ctx{pool_.get(), kernels::DetectIsa()};
  std::vector<std::vector<int32_t>> want;
  for (int32_t a = 0; a <= 2; ++a)
    want.push_back(test::Greedy(*model_, prompt, 10, ctx, a > 0 ? lora.get() : nullptr, a));
  // The adapters change the output (else this test could not tell them apart).
  EXPECT_NE(want[0], want[1]);
  EXPECT_NE(want[1], want[2]);
  // Twice each, all at once, and a base request with another prompt in between.
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int rep = 0; rep < 2; ++rep)
    for (int32_t a = 0; a <= 2; ++a) streams.push_back(*engine->Submit(With(prompt, a)));
  auto other = *engine->Submit(With(RandomPrompt(rng, 30), 0));
  for (size_t i = 0; i < streams.size(); ++i) EXPECT_EQ(Collect(*streams[i]).ids, want[i % 3]) << "request " << i;
  Collect(*other);
}

TEST_F(EngineLoraTest, PrefixCacheIsPerAdapter) {
  const auto lora = TwoAdapters();
  auto engine = LoraEngine(lora);
  std::mt19937 rng(4);
  const auto prompt = RandomPrompt(rng, 50);  // 3 full blocks
  const kernels::ExecContext ctx{pool_.get(), kernels::DetectIsa()};
  const auto want1 = test::Greedy(*model_, prompt, 10, ctx, lora.get(), 1);
  const Output base = Collect(**engine->Submit(With(prompt, 0)));
  EXPECT_EQ(base.finish.cached_tokens, 0);
  // The base model's blocks of the same tokens are not the adapter's.
  const Output first = Collect(**engine->Submit(With(prompt, 1)));
  EXPECT_EQ(first.finish.cached_tokens, 0);
  EXPECT_EQ(first.ids, want1);
  // The adapter's own blocks are.
  const Output again = Collect(**engine->Submit(With(prompt, 1)));
  EXPECT_EQ(again.finish.cached_tokens, 48);
  EXPECT_EQ(again.ids, want1);
  EXPECT_EQ(Collect(**engine->Submit(With(prompt, 2))).finish.cached_tokens, 0);
  EXPECT_EQ(Collect(**engine->Submit(With(prompt, 0))).finish.cached_tokens, 48);
}

TEST_F(EngineLoraTest, SpeculationAndPreemptionKeepEachAdaptersOutput) {
  // N-gram proposals (verified with the request's adapter) and a KV pool small enough that
  // sequences are preempted and recomputed: every request still gets its adapter's greedy output.
  const auto lora = TwoAdapters();
  EngineConfig c;
  c.kv_dtype = DType::kF32;
  c.scheduler.block_size = 16;
  c.scheduler.max_batch_tokens = 32;
  c.kv_blocks = 8;  // 128 tokens for six requests of up to 60
  c.eos_token_ids = {1023};
  c.lora = lora;
  c.speculative.num_tokens = 3;
  c.speculative.max_seqs = 8;
  Engine engine(model_, tokenizer_, c, kernels::ExecContext{pool_.get(), kernels::DetectIsa()});
  std::mt19937 rng(9);
  const kernels::ExecContext ctx{pool_.get(), kernels::DetectIsa()};
  // Every reference first: the engine and the references share the thread pool, which runs
  // one caller's jobs at a time.
  std::vector<std::vector<int32_t>> prompts, want;
  for (int i = 0; i < 6; ++i) {
    // (micro-qwen2's greedy text soon repeats itself: the n-gram drafter finds proposals there.)
    prompts.push_back(RandomPrompt(rng, 30));
    want.push_back(test::Greedy(*model_, prompts.back(), 30, ctx, i % 3 > 0 ? lora.get() : nullptr, i % 3));
  }
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 6; ++i) {
    GenerationRequest r = Greedy(prompts[static_cast<size_t>(i)], 30);
    r.adapter = i % 3;
    streams.push_back(*engine.Submit(std::move(r)));
  }
  for (size_t i = 0; i < streams.size(); ++i) EXPECT_EQ(Collect(*streams[i]).ids, want[i]) << "request " << i;
  const EngineStats st = engine.Stats();
  EXPECT_GT(st.preemptions, 0);
  EXPECT_GT(st.draft_tokens, 0);
}

TEST_F(EngineLoraTest, UnknownAdapterIsRefused) {
  auto engine = LoraEngine(TwoAdapters());
  auto s = engine->Submit(With({1, 2, 3}, 3));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("LoRA adapter 3 is not loaded (2 are)"), std::string::npos);
  EXPECT_FALSE(MakeEngine()->Submit(With({1, 2, 3}, 1)).ok());  // an engine without adapters
}

}  // namespace
}  // namespace qb
