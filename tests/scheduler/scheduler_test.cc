// The scheduler alone, step by step, with a fake forward pass: each step "computes" the
// scheduled tokens and samples next = (last token * 31 + 7) % 1000, so every sequence's tokens
// are known in advance whatever happens to it.
#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>

namespace qb {
namespace {

int32_t FakeNext(int32_t last) { return (last * 31 + 7) % 1000; }

std::vector<int32_t> Prompt(int n, int32_t first = 1) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), first);
  return p;
}

Sequence Seq(int64_t id, std::vector<int32_t> prompt, int32_t priority = 0) {
  Sequence s;
  s.id = id;
  s.tokens = std::move(prompt);
  s.priority = priority;
  return s;
}

// Runs one step: checks invariants, returns the plan.
StepPlan RunStep(Scheduler& sched) {
  StepPlan plan = sched.Schedule();
  std::vector<int32_t> next;
  for (const auto& c : plan.chunks) {
    Sequence* s = sched.Find(c.seq_id);
    EXPECT_NE(s, nullptr);
    EXPECT_EQ(c.start, s->num_computed);
    EXPECT_GE(static_cast<int64_t>(s->blocks.size()) * sched.config().block_size, c.start + c.count);
    if (c.sample) next.push_back(FakeNext(s->tokens.back()));
  }
  sched.Complete(plan, next);
  return plan;
}

TEST(SchedulerTest, ChunkedPrefillThenDecode) {
  BlockPool pool(10);
  Scheduler sched({16, 8, 32, true}, &pool);
  sched.Add(Seq(1, Prompt(40)));
  StepPlan p1 = RunStep(sched);
  ASSERT_EQ(p1.chunks.size(), 1u);
  EXPECT_EQ(p1.chunks[0].count, 32);  // the token budget
  EXPECT_FALSE(p1.chunks[0].sample);
  EXPECT_EQ(pool.num_used(), 2);
  StepPlan p2 = RunStep(sched);
  EXPECT_EQ(p2.chunks[0].start, 32);
  EXPECT_EQ(p2.chunks[0].count, 8);
  EXPECT_TRUE(p2.chunks[0].sample);
  EXPECT_EQ(pool.num_used(), 3);
  StepPlan p3 = RunStep(sched);  // decode: position 40
  EXPECT_EQ(p3.chunks[0].start, 40);
  EXPECT_EQ(p3.chunks[0].count, 1);
  Sequence* s = sched.Find(1);
  EXPECT_EQ(s->tokens.size(), 42u);
  EXPECT_EQ(s->tokens[40], FakeNext(40));
  sched.Finish(1);
  EXPECT_EQ(pool.num_free(), 10);
}

TEST(SchedulerTest, DecodesFirstThenPrefillWithinTheBudget) {
  BlockPool pool(20);
  Scheduler sched({16, 8, 20, true}, &pool);
  sched.Add(Seq(1, Prompt(4)));
  RunStep(sched);  // 1 prefilled and sampled
  sched.Add(Seq(2, Prompt(50, 100)));
  StepPlan p = RunStep(sched);
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(p.chunks[0].seq_id, 1);  // the decode comes first
  EXPECT_EQ(p.chunks[0].count, 1);
  EXPECT_EQ(p.chunks[1].seq_id, 2);
  EXPECT_EQ(p.chunks[1].count, 19);  // the rest of the budget
  EXPECT_EQ(p.num_tokens, 20);
}

TEST(SchedulerTest, MaxNumSeqsAndPriority) {
  BlockPool pool(50);
  Scheduler sched({16, 2, 100, true}, &pool);
  sched.Add(Seq(1, Prompt(3)));
  sched.Add(Seq(2, Prompt(3)));
  sched.Add(Seq(3, Prompt(3), -1));  // higher priority: admitted first
  StepPlan p = RunStep(sched);
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(p.chunks[0].seq_id, 3);
  EXPECT_EQ(p.chunks[1].seq_id, 1);
  EXPECT_EQ(sched.num_waiting(), 1u);
}

TEST(SchedulerTest, PreemptsTheNewestWhenBlocksRunOut) {
  BlockPool pool(4);  // 64 token slots
  Scheduler sched({16, 8, 64, false}, &pool);
  sched.Add(Seq(1, Prompt(30)));
  sched.Add(Seq(2, Prompt(30, 200)));
  RunStep(sched);  // both prefilled: 2 blocks each, pool full
  EXPECT_EQ(pool.num_free(), 0);
  // Both decode positions 30 and 31 within their blocks; position 32 of sequence 1 needs a
  // third block, and sequence 2 (the newest) is preempted for it.
  EXPECT_TRUE(RunStep(sched).preempted.empty());
  EXPECT_TRUE(RunStep(sched).preempted.empty());
  StepPlan p = RunStep(sched);
  ASSERT_EQ(p.preempted.size(), 1u);
  EXPECT_EQ(p.preempted[0], 2);
  EXPECT_EQ(sched.num_waiting(), 1u);
  Sequence* s2 = sched.Find(2);
  EXPECT_EQ(s2->num_computed, 0);
  EXPECT_TRUE(s2->blocks.empty());
  EXPECT_EQ(s2->tokens.size(), 33u);  // its tokens are kept: only the cache is recomputed
  EXPECT_EQ(sched.total_preemptions(), 1);
  sched.Finish(1);
  StepPlan back = RunStep(sched);  // seq 2 recomputes all its tokens
  ASSERT_EQ(back.chunks.size(), 1u);
  EXPECT_EQ(back.chunks[0].count, 33);
  EXPECT_TRUE(back.chunks[0].sample);
}

TEST(SchedulerTest, PrefixCacheSharesFullBlocks) {
  BlockPool pool(16);
  Scheduler sched({16, 8, 256, true}, &pool);
  std::vector<int32_t> shared = Prompt(40);
  sched.Add(Seq(1, shared));
  RunStep(sched);
  // The same 32-token prefix, then other tokens: two cached blocks are reused.
  std::vector<int32_t> other(shared.begin(), shared.begin() + 32);
  for (int i = 0; i < 10; ++i) other.push_back(500 + i);
  sched.Add(Seq(2, other));
  StepPlan p = RunStep(sched);
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(p.chunks[1].seq_id, 2);
  EXPECT_EQ(p.chunks[1].start, 32);
  EXPECT_EQ(p.chunks[1].count, 10);
  Sequence* s1 = sched.Find(1);
  Sequence* s2 = sched.Find(2);
  EXPECT_EQ(s2->cached_tokens, 32);
  EXPECT_EQ(s1->blocks[0], s2->blocks[0]);
  EXPECT_EQ(s1->blocks[1], s2->blocks[1]);
  EXPECT_EQ(pool.refcount(s1->blocks[0]), 2);
  // A prompt that is exactly cached still computes its last token.
  sched.Add(Seq(3, std::vector<int32_t>(shared.begin(), shared.begin() + 32)));
  StepPlan p3 = RunStep(sched);
  EXPECT_EQ(p3.chunks.back().seq_id, 3);
  EXPECT_EQ(p3.chunks.back().start, 16);
  EXPECT_EQ(p3.chunks.back().count, 16);
  sched.Finish(1);
  sched.Finish(2);
  sched.Finish(3);
  EXPECT_EQ(pool.num_free(), 16);
}

TEST(SchedulerTest, AbortFreesBlocksAtOnce) {
  BlockPool pool(8);
  Scheduler sched({16, 8, 64, true}, &pool);
  sched.Add(Seq(1, Prompt(40)));
  sched.Add(Seq(2, Prompt(40, 300)));
  RunStep(sched);
  EXPECT_GT(pool.num_used(), 0);
  EXPECT_TRUE(sched.Abort(2));
  EXPECT_TRUE(sched.Abort(1));
  EXPECT_FALSE(sched.Abort(1));
  EXPECT_EQ(pool.num_free(), 8);
  EXPECT_EQ(sched.num_running() + sched.num_waiting(), 0u);
}

// Many sequences, a small pool (frequent preemption), random cancellations: every surviving
// sequence produces exactly its expected tokens, and the pool ends empty.
TEST(SchedulerTest, StressWithPreemptionAndCancellation) {
  std::mt19937 rng(99);
  BlockPool pool(24);
  Scheduler sched({16, 12, 96, true}, &pool);
  struct Want {
    size_t prompt;
    size_t total;
  };
  std::map<int64_t, Want> live;
  std::map<int64_t, std::pair<size_t, std::vector<int32_t>>> done;  // prompt length, tokens
  int64_t next_id = 1;
  int steps = 0, cancelled = 0;
  while (next_id <= 300 || !live.empty()) {
    ASSERT_LT(++steps, 100000);
    for (int k = 0; k < 3 && next_id <= 300; ++k) {
      const int plen = std::uniform_int_distribution<int>(1, 60)(rng);
      const int gen = std::uniform_int_distribution<int>(1, 40)(rng);
      // Some share a prefix (tokens 1..plen), some not.
      const int32_t first = rng() % 2 ? 1 : static_cast<int32_t>(1000 + next_id * 100);
      sched.Add(Seq(next_id, Prompt(plen, first)));
      live[next_id] = {static_cast<size_t>(plen), static_cast<size_t>(plen + gen)};
      ++next_id;
    }
    RunStep(sched);
    for (auto it = live.begin(); it != live.end();) {
      Sequence* s = sched.Find(it->first);
      ASSERT_NE(s, nullptr);
      if (rng() % 2000 == 0) {  // cancelled
        sched.Abort(it->first);
        ++cancelled;
        it = live.erase(it);
        continue;
      }
      if (s->tokens.size() >= it->second.total && s->num_computed + 1 >= static_cast<int64_t>(s->tokens.size())) {
        done[it->first] = {it->second.prompt, s->tokens};
        sched.Finish(it->first);
        it = live.erase(it);
        continue;
      }
      ++it;
    }
  }
  EXPECT_GT(sched.total_preemptions(), 10);
  EXPECT_GT(cancelled, 0);
  EXPECT_EQ(static_cast<int>(done.size()) + cancelled, 300);
  // Every generated token follows from the one before it.
  for (const auto& [id, entry] : done) {
    const auto& [prompt, tokens] = entry;
    for (size_t i = prompt; i < tokens.size(); ++i)
      ASSERT_EQ(tokens[i], FakeNext(tokens[i - 1])) << "sequence " << id << " token " << i;
  }
  EXPECT_EQ(pool.num_free(), 24);
  EXPECT_EQ(pool.num_used(), 0);
}

// Speculative decoding: a decoding sequence's draft rides along with its last token; the blocks
// taken for rejected draft tokens go back at once.
TEST(SchedulerTest, DraftTokensRunWithTheDecodeAndRejectedOnesFreeTheirBlocks) {
  BlockPool pool(10);
  Scheduler sched({16, 8, 64, true}, &pool);
  sched.Add(Seq(1, Prompt(13)));
  RunStep(sched);  // prefill: 14 tokens, 13 computed
  Sequence* s = sched.Find(1);
  ASSERT_EQ(s->tokens.size(), 14u);
  s->draft = {5, 6, 7, 8, 9};
  StepPlan plan = sched.Schedule();
  ASSERT_EQ(plan.chunks.size(), 1u);
  EXPECT_EQ(plan.chunks[0].start, 13);
  EXPECT_EQ(plan.chunks[0].count, 6);
  EXPECT_EQ(plan.chunks[0].draft, 5);
  EXPECT_TRUE(plan.chunks[0].sample);
  EXPECT_EQ(pool.num_used(), 2);  // positions up to 18
  sched.Complete(plan, std::vector<std::vector<int32_t>>{{42}});  // the first draft token refused
  EXPECT_EQ(s->num_computed, 14);
  EXPECT_EQ(s->tokens.size(), 15u);
  EXPECT_EQ(s->tokens.back(), 42);
  EXPECT_TRUE(s->draft.empty());
  EXPECT_EQ(pool.num_used(), 1);  // the block taken for positions 16..18 went back
  // Two of three accepted, then the sampler's own token.
  s->draft = {7, 8, 9};
  plan = sched.Schedule();
  EXPECT_EQ(plan.chunks[0].count, 4);
  sched.Complete(plan, std::vector<std::vector<int32_t>>{{7, 8, 100}});
  EXPECT_EQ(s->num_computed, 17);
  EXPECT_EQ(std::vector<int32_t>(s->tokens.end() - 4, s->tokens.end()), (std::vector<int32_t>{42, 7, 8, 100}));
  EXPECT_EQ(pool.num_used(), 2);
}

TEST(SchedulerTest, DraftsFitTheTokenBudgetAndNeverPreempt) {
  BlockPool pool(2);
  Scheduler sched({16, 8, 4, true}, &pool);
  sched.Add(Seq(1, Prompt(3)));
  sched.Add(Seq(2, Prompt(1, 500)));
  RunStep(sched);  // both prefilled (3 + 1 tokens): one block each
  Sequence* s1 = sched.Find(1);
  Sequence* s2 = sched.Find(2);
  s1->draft = {1, 2, 3, 4, 5, 6};
  StepPlan plan = sched.Schedule();
  ASSERT_EQ(plan.chunks.size(), 2u);
  EXPECT_EQ(plan.chunks[0].draft, 2);  // 4 tokens a step: 1 + 2 drafts, then the other's decode
  EXPECT_EQ(plan.chunks[1].draft, 0);
  EXPECT_EQ(plan.num_tokens, 4);
  sched.Complete(plan, std::vector<std::vector<int32_t>>{{1, 2, 3}, {7}});
  EXPECT_EQ(s1->tokens.size(), 7u);
  // Sequence 1 fills its block at position 15; a draft that needs a third block gets only the
  // tokens that fit in the blocks it has, and nobody is preempted for it.
  for (int i = 0; i < 8; ++i) {
    s1->draft.clear();
    RunStep(sched);
  }
  ASSERT_EQ(s1->tokens.size(), 15u);
  s1->draft = {1, 2, 3};
  plan = sched.Schedule();
  EXPECT_TRUE(plan.preempted.empty());
  EXPECT_EQ(plan.chunks[0].draft, 1);  // position 15 is the block's last slot
  EXPECT_EQ(pool.num_free(), 0);
  (void)s2;
}

// Drafts take what is left once every running sequence and admission has its chunk: here the
// last free block goes to B's decode, and A's draft keeps to the blocks A holds.
TEST(SchedulerTest, DraftsComeLastForBlocksAndLogitRows) {
  BlockPool pool(5);
  SchedulerConfig config{16, 8, 64, true};
  config.max_logit_rows = 64;
  Scheduler sched(config, &pool);
  sched.Add(Seq(1, Prompt(17)));
  sched.Add(Seq(2, Prompt(32, 100)));
  RunStep(sched);  // both prefilled: A 18 tokens in 2 blocks, B 33 tokens in 2 blocks
  ASSERT_EQ(pool.num_free(), 1);
  sched.Find(1)->draft = std::vector<int32_t>(16, 3);
  StepPlan plan = sched.Schedule();
  EXPECT_TRUE(plan.preempted.empty());
  ASSERT_EQ(plan.chunks.size(), 2u);
  EXPECT_EQ(plan.chunks[0].draft, 14);  // positions 18..31
  EXPECT_EQ(plan.chunks[1].seq_id, 2);
  EXPECT_EQ(plan.chunks[1].count, 1);
  EXPECT_EQ(pool.num_free(), 0);
  sched.Complete(plan, std::vector<std::vector<int32_t>>{{9}, {8}});

  // Logit rows: two decodes leave one row of three for drafts.
  BlockPool pool2(8);
  config.max_logit_rows = 3;
  Scheduler rows(config, &pool2);
  rows.Add(Seq(1, Prompt(4)));
  rows.Add(Seq(2, Prompt(4, 50)));
  RunStep(rows);
  rows.Find(1)->draft = {1, 2, 3, 4};
  rows.Find(2)->draft = {1, 2, 3, 4};
  plan = rows.Schedule();
  ASSERT_EQ(plan.chunks.size(), 2u);
  EXPECT_EQ(plan.chunks[0].draft, 1);
  EXPECT_EQ(plan.chunks[1].draft, 0);
  EXPECT_TRUE(rows.Find(2)->draft.empty());  // dropped: not scheduled
}

// A sequence whose prompt positions return logit rows (prompt log-probabilities) takes what the
// step's rows leave (max_num_seqs when max_logit_rows is 0), a row kept for each other running
// sequence, and never reads the prefix cache.
TEST(SchedulerTest, PromptLogitRowsBoundItsChunksAndSkipThePrefixCache) {
  BlockPool pool(32);
  Scheduler sched({16, 8, 64, true}, &pool);
  sched.Add(Seq(1, Prompt(40)));  // published to the prefix cache
  sched.Add(Seq(2, Prompt(4, 100)));
  sched.Add(Seq(3, Prompt(4, 200)));
  RunStep(sched);
  Sequence scored = Seq(4, Prompt(40));
  scored.logits_until = 39;
  sched.Add(scored);
  sched.Add(Seq(6, Prompt(4, 300)));  // admitted in the same step: no row is left for its sample
  auto rows_of = [&](const StepPlan& plan) {
    int64_t rows = 0;
    for (const auto& c : plan.chunks) {
      const Sequence* s = sched.Find(c.seq_id);
      rows += std::clamp<int64_t>(s->logits_until - c.start, 0, c.count) + (c.sample ? 1 : 0);
    }
    return rows;
  };
  StepPlan plan = sched.Schedule();
  ASSERT_EQ(plan.chunks.size(), 5u);
  EXPECT_EQ(plan.chunks[3].seq_id, 4);
  EXPECT_EQ(plan.chunks[3].start, 0);  // not from the cache
  EXPECT_EQ(plan.chunks[3].count, 5);  // 8 rows less the three decodes'
  EXPECT_EQ(sched.Find(4)->cached_tokens, 0);
  EXPECT_EQ(plan.chunks[4].seq_id, 6);
  EXPECT_EQ(plan.chunks[4].count, 3);  // its prompt but the last token: its sample waits a step
  EXPECT_FALSE(plan.chunks[4].sample);
  EXPECT_EQ(rows_of(plan), 8);
  std::vector<int32_t> next = {1, 2, 3};
  sched.Complete(plan, next);
  // Running now: a row kept for each of the three others, wherever they come.
  for (int step = 0; step < 20 && sched.Find(4)->num_computed < 40; ++step) {
    plan = sched.Schedule();
    EXPECT_LE(rows_of(plan), 8) << step;
    next.clear();
    for (const auto& c : plan.chunks)
      if (c.sample) next.push_back(5);
    sched.Complete(plan, next);
  }
  EXPECT_EQ(sched.Find(4)->num_computed, 40);
  // Without rows to score, the same prompt comes from the cache.
  sched.Add(Seq(5, Prompt(40)));
  plan = sched.Schedule();
  EXPECT_EQ(sched.Find(5)->cached_tokens, 32);
}

// A waiting sequence whose prompt is cached but for its last token, admitted while prompt scores
// hold every row: it waits, giving back the cached blocks it took, and runs once rows are free.
TEST(SchedulerTest, AWaitingSequenceGivesBackItsPrefixBlocksWhenNoRowIsLeft) {
  BlockPool pool(32);
  Scheduler sched({16, 2, 64, true}, &pool);  // 2 logit rows a step
  sched.Add(Seq(1, Prompt(17)));
  RunStep(sched);  // its first block is published
  sched.Finish(1);
  Sequence scored = Seq(2, Prompt(40, 500));
  scored.logits_until = 39;
  sched.Add(scored);
  sched.Add(Seq(3, Prompt(17)));  // 16 tokens cached, 1 to compute: its chunk is its sample
  for (int step = 0; step < 40 && sched.Find(3)->num_computed < 17; ++step) {
    const StepPlan plan = sched.Schedule();
    const Sequence* waiting = sched.Find(3);
    const bool scheduled = std::any_of(plan.chunks.begin(), plan.chunks.end(), [](const ScheduledChunk& c) { return c.seq_id == 3; });
    if (!scheduled) {
      EXPECT_TRUE(waiting->blocks.empty()) << step;
      EXPECT_EQ(waiting->num_computed, 0) << step;
    }
    std::vector<int32_t> next;
    for (const auto& c : plan.chunks)
      if (c.sample) next.push_back(7);
    sched.Complete(plan, next);
  }
  EXPECT_EQ(sched.Find(3)->num_computed, 17);
  EXPECT_EQ(sched.Find(3)->cached_tokens, 16);
  sched.Finish(2);
  sched.Finish(3);
  EXPECT_EQ(pool.num_used(), 0);
}

// Random drafts (some right, most wrong somewhere) under preemption and prefix caching: every
// sequence still produces exactly its expected tokens, the keys/values behind every computed
// position are that position's token (a rejected draft's never leak, into the prefix cache
// either), and the pool ends empty.
TEST(SchedulerTest, StressWithDraftsPreemptionAndPrefixCaching) {
  std::mt19937 rng(7);
  const int64_t bs = 16;
  BlockPool pool(24);
  Scheduler sched({bs, 12, 64, true}, &pool);
  std::vector<int32_t> kv(24 * bs, -1);  // what each slot's keys/values were computed from
  auto slot = [&](const Sequence* s, int64_t p) -> int32_t& {
    return kv[static_cast<size_t>(s->blocks[static_cast<size_t>(p / bs)] * bs + p % bs)];
  };
  std::map<int64_t, std::pair<size_t, size_t>> live;  // id -> prompt length, tokens wanted
  int64_t next_id = 1;
  int steps = 0;
  int64_t drafted = 0, accepted = 0;
  while (next_id <= 200 || !live.empty()) {
    ASSERT_LT(++steps, 100000);
    for (int k = 0; k < 2 && next_id <= 200; ++k) {
      const int plen = std::uniform_int_distribution<int>(1, 40)(rng);
      const int32_t first = rng() % 2 ? 1 : static_cast<int32_t>(1000 + next_id * 100);
      sched.Add(Seq(next_id, Prompt(plen, first)));
      live[next_id] = {static_cast<size_t>(plen), static_cast<size_t>(plen + std::uniform_int_distribution<int>(1, 40)(rng))};
      ++next_id;
    }
    for (Sequence* s : sched.Decoding()) {
      const int n = std::uniform_int_distribution<int>(0, 6)(rng);
      const int right = std::uniform_int_distribution<int>(0, n)(rng);  // the first `right` are correct
      int32_t t = s->tokens.back();
      s->draft.clear();
      for (int j = 0; j < n; ++j) {
        t = FakeNext(t);
        s->draft.push_back(j < right ? t : (t + 1) % 1000);
      }
    }
    StepPlan plan = sched.Schedule();
    std::vector<std::vector<int32_t>> next;
    for (const auto& c : plan.chunks) {
      Sequence* s = sched.Find(c.seq_id);
      ASSERT_EQ(c.start, s->num_computed);
      const auto known = static_cast<int64_t>(s->tokens.size());
      ASSERT_EQ(c.draft, c.sample ? static_cast<int64_t>(s->draft.size()) : 0);
      ASSERT_EQ(c.start + c.count - c.draft, c.sample ? known : c.start + c.count);
      for (int64_t p = c.start; p < c.start + c.count; ++p) {
        slot(s, p) = p < known ? s->tokens[static_cast<size_t>(p)] : s->draft[static_cast<size_t>(p - known)];
      }
      if (!c.sample) continue;
      std::vector<int32_t> add;
      int32_t t = FakeNext(s->tokens.back());
      for (size_t j = 0;; ++j) {
        add.push_back(t);
        if (j == s->draft.size() || s->draft[j] != t) break;
        t = FakeNext(t);
      }
      drafted += c.draft;
      accepted += static_cast<int64_t>(add.size()) - 1;
      next.push_back(std::move(add));
    }
    sched.Complete(plan, next);
    for (auto it = live.begin(); it != live.end();) {
      Sequence* s = sched.Find(it->first);
      ASSERT_NE(s, nullptr);
      for (int64_t p = 0; p < s->num_computed; ++p) {
        ASSERT_EQ(slot(s, p), s->tokens[static_cast<size_t>(p)]) << "sequence " << it->first << " position " << p;
      }
      if (s->tokens.size() >= it->second.second && s->num_computed + 1 >= static_cast<int64_t>(s->tokens.size())) {
        for (size_t g = it->second.first; g < s->tokens.size(); ++g)
          ASSERT_EQ(s->tokens[g], FakeNext(s->tokens[g - 1])) << "sequence " << it->first << " token " << g;
        sched.Finish(it->first);
        it = live.erase(it);
        continue;
      }
      ++it;
    }
  }
  EXPECT_GT(sched.total_preemptions(), 10);
  EXPECT_GT(accepted, 100);
  EXPECT_GT(drafted - accepted, 100);
  EXPECT_EQ(pool.num_used(), 0);
}

}  // namespace
}  // namespace qb
