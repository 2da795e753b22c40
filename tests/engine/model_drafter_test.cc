// Speculative decoding with a draft model (engine/model_drafter.h) on micro-qwen2: its proposals
// are the draft model's own greedy continuation, also when it continues, reuses or evicts its
// slots; through the engine it never changes what a request generates, and a draft model that is
// the target itself has its proposals accepted.
#include <gtest/gtest.h>

#include <random>

#include "engine/engine_fixture.h"
#include "engine/model_drafter.h"

namespace qb {
namespace {

SpeculativeConfig SpeculateWithModel(int64_t tokens, int64_t max_seqs = 64) {
  SpeculativeConfig c;
  c.num_tokens = tokens;
  c.max_seqs = max_seqs;
  return c;
}

class ModelDrafterTest : public EngineTest {
 protected:
  // A drafter running `model` over a pool of `blocks` blocks of 16 tokens.
  static std::shared_ptr<ModelDrafter> MakeDrafter(std::shared_ptr<const Qwen2Model> model, int64_t blocks,
                                                   int64_t max_draft_tokens = 8, int64_t max_batch_tokens = 64) {
    ModelDrafterConfig c;
    c.block_size = 16;
    c.max_batch_tokens = max_batch_tokens;
    c.max_draft_tokens = max_draft_tokens;
    return std::make_shared<ModelDrafter>(
        MakeCpuStepModel(std::move(model), KvLayout{blocks, 16, DType::kF16},
                         kernels::ExecContext{pool_.get(), kernels::DetectIsa()}),
        c);
  }
  // The model's greedy continuation of `prompt` (no speculation).
  static std::vector<int32_t> GreedyContinuation(const std::vector<int32_t>& prompt, int64_t n) {
    return Collect(**MakeEngine()->Submit(Greedy(prompt, n))).ids;
  }
  // Proposes, and checks that every block of the pool is free or held by one slot.
  static std::vector<std::vector<int32_t>> Propose(ModelDrafter& d, const std::vector<std::vector<int32_t>>& tokens,
                                                   int64_t k) {
    std::vector<DraftQuery> q;
    for (const auto& t : tokens) q.push_back(DraftQuery{t, k});
    auto out = d.Propose(q);
    EXPECT_EQ(d.free_blocks() + d.held_blocks(), pool_blocks_);
    return out;
  }
  static inline int64_t pool_blocks_ = 0;
  void SetUp() override { pool_blocks_ = 0; }
  static std::shared_ptr<ModelDrafter> Pool(std::shared_ptr<ModelDrafter> d) {
    pool_blocks_ = d->free_blocks();
    return d;
  }
};

TEST_F(ModelDrafterTest, ProposesTheDraftModelsGreedyContinuation) {
  std::mt19937 rng(31);
  auto drafter = Pool(MakeDrafter(model_, 64));
  const std::vector<std::vector<int32_t>> prompts = {RandomPrompt(rng, 100), RandomPrompt(rng, 5), RandomPrompt(rng, 1)};
  // One catch-up pass of at most 64 tokens a call, the shortest first: the 100-token prompt gets
  // the 58 left in the first call and proposes in the second.
  auto got = Propose(*drafter, prompts, 5);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_TRUE(got[0].empty());
  EXPECT_EQ(got[1], GreedyContinuation(prompts[1], 5));
  EXPECT_EQ(got[2], GreedyContinuation(prompts[2], 5));
  EXPECT_EQ(drafter->stats().computed_tokens, 64 + 4 * 2);
  got = Propose(*drafter, prompts, 5);
  EXPECT_EQ(got[0], GreedyContinuation(prompts[0], 5));
  EXPECT_EQ(got[1], GreedyContinuation(prompts[1], 5));
  EXPECT_EQ(got[2], GreedyContinuation(prompts[2], 5));
  // Computed: the rest of the long prompt, the last token of each short one, 4 more for each.
  EXPECT_EQ(drafter->stats().computed_tokens, 64 + 4 * 2 + (42 + 1 + 1) + 4 * 3);
  EXPECT_EQ(drafter->stats().reused_tokens, 58 + 4 + 0);
}

TEST_F(ModelDrafterTest, ContinuesASequencesSlotWithOnlyTheNewTokens) {
  std::mt19937 rng(32);
  auto drafter = Pool(MakeDrafter(model_, 64));
  std::vector<int32_t> seq = RandomPrompt(rng, 40);
  auto first = Propose(*drafter, {seq}, 5)[0];
  ASSERT_EQ(first.size(), 5u);
  // The engine accepted two proposals and sampled something else after them.
  seq.push_back(first[0]);
  seq.push_back(first[1]);
  seq.push_back((first[2] + 1) % 1023);
  const int64_t before = drafter->stats().computed_tokens;
  const auto second = Propose(*drafter, {seq}, 5)[0];
  EXPECT_EQ(second, GreedyContinuation(seq, 5));
  // Kept: the 40 tokens and the two accepted proposals; computed: the new token and 4 more.
  EXPECT_EQ(drafter->stats().computed_tokens - before, 5);
  EXPECT_EQ(drafter->stats().reused_tokens, 42);
  // A later turn of the conversation (everything so far and more) continues it too.
  for (int32_t t : RandomPrompt(rng, 10)) seq.push_back(t);
  EXPECT_EQ(Propose(*drafter, {seq}, 3)[0], GreedyContinuation(seq, 3));
  EXPECT_EQ(drafter->stats().reused_tokens, 42 + 43);
  EXPECT_EQ(drafter->stats().evicted_slots, 0);
}

TEST_F(ModelDrafterTest, EvictsTheLeastRecentlyUsedSlotAndRefusesWhatCannotFit) {
  std::mt19937 rng(33);
  // 6 blocks of 16: two sequences of ~40 tokens fit, a third evicts the older one.
  auto drafter = Pool(MakeDrafter(model_, 6));
  const std::vector<std::vector<int32_t>> seqs = {RandomPrompt(rng, 40), RandomPrompt(rng, 41), RandomPrompt(rng, 42)};
  for (const auto& s : seqs) EXPECT_EQ(Propose(*drafter, {s}, 4)[0], GreedyContinuation(s, 4));
  EXPECT_EQ(drafter->stats().evicted_slots, 1);
  // The second's slot survived (all but the last token reused); the first's is gone.
  int64_t reused = drafter->stats().reused_tokens;
  EXPECT_EQ(Propose(*drafter, {seqs[1]}, 4)[0], GreedyContinuation(seqs[1], 4));
  EXPECT_EQ(drafter->stats().reused_tokens - reused, 40);
  // Two queries in one step never evict each other: the third one waits.
  const auto both = Propose(*drafter, {seqs[1], seqs[2], seqs[0]}, 4);
  EXPECT_EQ(both[0], GreedyContinuation(seqs[1], 4));
  EXPECT_EQ(both[1], GreedyContinuation(seqs[2], 4));
  EXPECT_TRUE(both[2].empty());
  EXPECT_EQ(drafter->stats().unfit_queries, 1);
  // Longer than the whole pool: no proposal, nothing lost.
  EXPECT_TRUE(Propose(*drafter, {RandomPrompt(rng, 100)}, 4)[0].empty());
  EXPECT_EQ(drafter->stats().unfit_queries, 2);
  EXPECT_EQ(Propose(*drafter, {seqs[2]}, 2)[0], GreedyContinuation(seqs[2], 2));
}

// The model's vocabulary may be padded beyond the draft model's (Qwen2.5-7B has 152,064 rows,
// 0.5B 151,936): a sequence holding an id the draft model has no row for gets no proposal, and
// the others in the step are unaffected.
// Room for one query never costs another query of the same step its slot, and a query that
// cannot fit evicts nothing.
TEST_F(ModelDrafterTest, AQueryThatCannotFitEvictsNothing) {
  std::mt19937 rng(37);
  auto drafter = Pool(MakeDrafter(model_, 6));
  const std::vector<int32_t> a = RandomPrompt(rng, 40), b = RandomPrompt(rng, 20), c = RandomPrompt(rng, 5),
                             longer = RandomPrompt(rng, 60);
  Propose(*drafter, {a, b}, 4);  // 3 + 2 of the 6 blocks
  Propose(*drafter, {c}, 4);     // the last one
  // The 60-token query needs 4 blocks: only C's could be had (A and B are queried with it), which
  // is not enough, so C keeps its slot too.
  const auto got = Propose(*drafter, {a, longer, b}, 4);
  EXPECT_EQ(got[0], GreedyContinuation(a, 4));
  EXPECT_TRUE(got[1].empty());
  EXPECT_EQ(got[2], GreedyContinuation(b, 4));
  EXPECT_EQ(drafter->stats().evicted_slots, 0);
  EXPECT_EQ(drafter->stats().reused_tokens, 39 + 19);
  EXPECT_EQ(Propose(*drafter, {c}, 4)[0], GreedyContinuation(c, 4));
  EXPECT_EQ(drafter->stats().reused_tokens, 39 + 19 + 4);
}

// A prompt not caught up in a call holds only the blocks of what was computed: the others
// keep their room.
TEST_F(ModelDrafterTest, PromptsNotCaughtUpHoldOnlyWhatWasComputed) {
  std::mt19937 rng(38);
  auto drafter = Pool(MakeDrafter(model_, 6, 4, 8));  // catch up 8 tokens a call
  const std::vector<std::vector<int32_t>> prompts = {RandomPrompt(rng, 8), RandomPrompt(rng, 8), RandomPrompt(rng, 8)};
  auto got = Propose(*drafter, prompts, 4);
  EXPECT_EQ(got[0], GreedyContinuation(prompts[0], 4));
  EXPECT_TRUE(got[1].empty() && got[2].empty());
  EXPECT_EQ(drafter->held_blocks(), 1);
  // Then 1 + 7, 1 + 1 + 6 and 1 + 1 + 2 tokens: all three propose in the fourth call.
  for (int call = 0; call < 3; ++call) got = Propose(*drafter, prompts, 4);
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(got[i], GreedyContinuation(prompts[i], 4)) << i;
  EXPECT_EQ(drafter->stats().evicted_slots, 0);
}

TEST_F(ModelDrafterTest, AnIdBeyondTheDraftVocabularyGetsNoProposal) {
  std::mt19937 rng(36);
  auto drafter = Pool(MakeDrafter(model_, 64));
  std::vector<int32_t> outside = RandomPrompt(rng, 12);
  outside[7] = 1024;  // micro-qwen2 has 1,024 rows
  const std::vector<int32_t> fine = RandomPrompt(rng, 12);
  const auto got = Propose(*drafter, {outside, fine}, 3);
  EXPECT_TRUE(got[0].empty());
  EXPECT_EQ(got[1], GreedyContinuation(fine, 3));
  EXPECT_EQ(drafter->stats().unfit_queries, 1);
}

TEST_F(ModelDrafterTest, TheTargetAsItsOwnDraftIsAccepted) {
  std::mt19937 rng(34);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 4; ++i) prompts.push_back(RandomPrompt(rng, 10 + 15 * i));
  std::vector<std::vector<int32_t>> want;
  for (const auto& p : prompts) want.push_back(GreedyContinuation(p, 30));
  auto engine = MakeEngine(256, 64, 32, DType::kF16, SpeculateWithModel(4), MakeDrafter(model_, 64, 4));
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const auto& p : prompts) streams.push_back(*engine->Submit(Greedy(p, 30)));
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(Collect(*streams[i]).ids, want[i]) << i;
  engine->Shutdown();
  const EngineStats st = engine->Stats();
  EXPECT_GT(st.draft_tokens, 60);
  // The same weights propose what the target samples (rounding may flip a rare near tie).
  EXPECT_GE(st.accepted_tokens, st.draft_tokens * 9 / 10);
  // Up to 5 tokens a step: about 6 decoding steps for the batch, where one at a time takes 30.
  EXPECT_LE(st.steps, 15);
}

// A different draft model (the Q4_0 file of the same weights): greedy and seeded sampling give
// exactly what they give without speculation, under preemption, evictions and cancellations.
TEST_F(ModelDrafterTest, ADifferentDraftModelNeverChangesOutputs) {
  auto q4 = LoadModel(test::DataPath("micro-qwen2/micro-qwen2-q4_0.gguf"));
  ASSERT_TRUE(q4.ok()) << q4.status().ToString();
  std::mt19937 rng(35);
  for (int trial = 0; trial < 4; ++trial) {
    GenerationRequest r = Greedy(RandomPrompt(rng, 20), 40);
    r.sampling.temperature = trial % 2 ? 0.8f : 0.0f;
    r.sampling.seed = 7 + static_cast<uint64_t>(trial);
    r.sampling.top_k = 40;
    const Output plain = Collect(**MakeEngine()->Submit(r));
    auto spec_engine = MakeEngine(256, 64, 32, DType::kF16, SpeculateWithModel(4), MakeDrafter(q4->model, 16, 4));
    const Output spec = Collect(**spec_engine->Submit(r));
    EXPECT_EQ(spec.ids, plain.ids) << trial;
    EXPECT_EQ(spec.text, plain.text) << trial;
    spec_engine->Shutdown();
    EXPECT_GT(spec_engine->Stats().draft_tokens, 0) << trial;
  }
  std::vector<StressJob> jobs;
  for (int i = 0; i < 60 / kStressScale; ++i)
    jobs.push_back({RandomPrompt(rng, std::uniform_int_distribution<int>(1, 40)(rng)),
                    std::uniform_int_distribution<int64_t>(1, 24)(rng), rng() % 10 == 0});
  // The draft pool holds about 3 sequences: the rest evict or wait.
  auto drafter = MakeDrafter(q4->model, 8, 6);
  auto engine = MakeEngine(20, 64, 16, DType::kF16, SpeculateWithModel(6, 16), drafter);
  EngineStats st;
  ExpectBatchedMatchesSolo(jobs, *engine, &st);
  EXPECT_GT(st.preemptions, 0);
  EXPECT_GT(st.accepted_tokens, 0);
  EXPECT_EQ(st.kv_blocks_used, 0);
  EXPECT_GT(drafter->stats().evicted_slots, 0);
}

}  // namespace
}  // namespace qb
