// The engine tests' fixture: micro-qwen2 (random weights, 1,024-token vocabulary, end id 1023)
// with its tokenizer, loaded once per suite, and helpers to run requests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/test_paths.h"
#include "engine/engine.h"
#include "model/loader.h"
#include "util/thread_pool.h"

namespace qb {

class EngineTest : public ::testing::Test {
 protected:
  // The stress tests' request counts: under AddressSanitizer (~10x slower) a third of them,
  // enough for preemptions and cancellations, which is what the sanitizers need to see.
#if defined(__SANITIZE_ADDRESS__)
  static constexpr int kStressScale = 3;
#else
  static constexpr int kStressScale = 1;
#endif

  static void SetUpTestSuite() {
    auto m = LoadModel(test::DataPath("micro-qwen2"));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = m->model;
    auto t = LoadTokenizer(test::DataPath("micro-qwen2"));
    ASSERT_TRUE(t.ok());
    tokenizer_ = *t;
    pool_ = std::make_unique<ThreadPool>(2);
  }
  static void TearDownTestSuite() {
    model_.reset();
    tokenizer_.reset();
    pool_.reset();
  }

  static std::unique_ptr<Engine> MakeEngine(int64_t kv_blocks = 256, int64_t max_batch_tokens = 64,
                                            int64_t max_num_seqs = 32, DType kv_dtype = DType::kF16,
                                            SpeculativeConfig speculative = {},
                                            std::shared_ptr<Drafter> drafter = nullptr) {
    EngineConfig c;
    c.speculative = speculative;
    c.drafter = std::move(drafter);
    c.kv_dtype = kv_dtype;
    c.scheduler.block_size = 16;
    c.scheduler.max_batch_tokens = max_batch_tokens;
    c.scheduler.max_num_seqs = max_num_seqs;
    c.kv_blocks = kv_blocks;
    c.eos_token_ids = {1023};
    return std::make_unique<Engine>(model_, tokenizer_, c, kernels::ExecContext{pool_.get(), kernels::DetectIsa()});
  }

  struct Output {
    std::vector<int32_t> ids;
    std::string text;
    StreamEvent finish;
  };

  static Output Collect(RequestStream& s) {
    Output o;
    StreamEvent ev;
    while (s.Next(&ev)) {
      if (ev.kind == StreamEvent::Kind::kFinished) {
        o.text += ev.text;
        o.finish = ev;
        break;
      }
      o.ids.push_back(ev.token);
      o.text += ev.text;
    }
    return o;
  }

  static GenerationRequest Greedy(std::vector<int32_t> prompt, int64_t max_tokens) {
    GenerationRequest r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    return r;
  }

  static std::vector<int32_t> RandomPrompt(std::mt19937& rng, int n) {
    std::vector<int32_t> p(static_cast<size_t>(n));
    for (auto& t : p) t = std::uniform_int_distribution<int32_t>(0, 1022)(rng);
    return p;
  }

  struct StressJob {
    std::vector<int32_t> prompt;
    int64_t max_tokens;
    bool cancel;
  };
  // Runs every job not marked for cancelling alone (greedy, on a fresh engine), then all jobs
  // at once on `engine`, cancelling the marked ones: each request that was not cancelled must
  // return exactly its solo tokens. Returns how many were cancelled; `idle` gets the engine's
  // counters once it has published its last step.
  static int ExpectBatchedMatchesSolo(const std::vector<StressJob>& jobs, Engine& engine, EngineStats* idle) {
    auto solo_engine = MakeEngine();
    std::vector<std::vector<int32_t>> want;
    for (const StressJob& j : jobs)
      want.push_back(j.cancel ? std::vector<int32_t>{} : Collect(**solo_engine->Submit(Greedy(j.prompt, j.max_tokens))).ids);
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (const StressJob& j : jobs) streams.push_back(*engine.Submit(Greedy(j.prompt, j.max_tokens)));
    for (size_t i = 0; i < jobs.size(); ++i)
      if (jobs[i].cancel) streams[i]->Cancel();
    int cancelled = 0;
    for (size_t i = 0; i < jobs.size(); ++i) {
      const Output o = Collect(*streams[i]);
      if (o.finish.reason == FinishReason::kCancelled) {
        EXPECT_TRUE(jobs[i].cancel) << i;
        ++cancelled;
        continue;
      }
      EXPECT_EQ(o.ids, want[i]) << "request " << i;
    }
    // The engine publishes its counters after the step that sent the last events.
    for (int i = 0; i < 200 && engine.Stats().kv_blocks_used > 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    *idle = engine.Stats();
    return cancelled;
  }

  static inline std::shared_ptr<const Qwen2Model> model_;
  static inline std::shared_ptr<const Tokenizer> tokenizer_;
  static inline std::unique_ptr<ThreadPool> pool_;
};

}  // namespace qb
