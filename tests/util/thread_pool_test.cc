#include "util/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace qb {
namespace {

// Every index of [0, n) is run exactly once, whatever the pool size and n.
TEST(ThreadPoolTest, EveryFormRunsEachIndexOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 3, 7, 64, 1001}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      auto count = [&](int64_t i) { hits[static_cast<size_t>(i)].fetch_add(1); };
      pool.ParallelFor(n, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) count(i);
      });
      pool.ParallelForDynamic(n, count);
      pool.ParallelForStealing(n, count);
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[static_cast<size_t>(i)].load(), 3) << threads << " " << n << " " << i;
    }
  }
}

TEST(ThreadPoolTest, ParallelForRangesAreContiguousAndRoundedToTheGrain) {
  ThreadPool pool(3);
  std::vector<std::pair<int64_t, int64_t>> ranges(3, {-1, -1});
  std::atomic<int> calls{0};
  pool.ParallelFor(100, [&](int64_t b, int64_t e) {
    ranges[static_cast<size_t>(calls.fetch_add(1))] = {b, e};
  }, 8);
  ASSERT_EQ(calls.load(), 3);
  std::sort(ranges.begin(), ranges.end());
  EXPECT_EQ(ranges.front().first, 0);
  EXPECT_EQ(ranges.back().second, 100);
  for (size_t i = 0; i + 1 < ranges.size(); ++i) {
    EXPECT_EQ(ranges[i].second, ranges[i + 1].first);
    EXPECT_EQ(ranges[i].second % 8, 0);
  }
}

// A thread that is held up does not keep its share: the others take the rest of it from the back,
// while the slow thread's own indices stay in order from the front.
TEST(ThreadPoolTest, StealingTakesTheBackOfASlowThreadsShare) {
  ThreadPool pool(2);
  constexpr int64_t kN = 40;
  std::vector<int> runner(kN, -1);
  std::vector<int64_t> order_of_caller;
  const auto caller = std::this_thread::get_id();
  // The worker starts only once the caller has taken its first index: on a loaded machine the
  // caller can be descheduled right after handing out the job, and the worker would then
  // (rightly) run all 40 before the caller takes one.
  std::atomic<bool> caller_started{false};
  pool.ParallelForStealing(kN, [&](int64_t i) {
    const bool is_caller = std::this_thread::get_id() == caller;
    runner[static_cast<size_t>(i)] = is_caller ? 0 : 1;
    if (is_caller) {
      order_of_caller.push_back(i);
      caller_started.store(true);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the slow thread
    } else {
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (!caller_started.load() && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
    }
  });
  // The caller owns [0, 20) and starts at 0; the worker finishes [20, 40) long before the caller
  // has done a few of its slow indices, then steals the caller's from 19 downwards.
  int stolen = 0;
  for (int64_t i = 0; i < kN / 2; ++i) stolen += runner[static_cast<size_t>(i)] == 1;
  for (int64_t i = kN / 2; i < kN; ++i) EXPECT_EQ(runner[static_cast<size_t>(i)], 1) << i;
  EXPECT_GT(stolen, 10);
  ASSERT_FALSE(order_of_caller.empty());
  EXPECT_EQ(order_of_caller.front(), 0);
  for (size_t k = 1; k < order_of_caller.size(); ++k) EXPECT_EQ(order_of_caller[k], order_of_caller[k - 1] + 1);
}

}  // namespace
}  // namespace qb

namespace qb {
namespace {

// Two threads sharing one pool (a test's reference pass beside a running engine did): each
// ParallelForStealing visits every one of its own indices exactly once.
TEST(ThreadPoolTest, CallersOnTwoThreadsEachGetTheirWholeJob) {
  ThreadPool pool(2);
  auto hammer = [&pool](int64_t n, bool* ok) {
    for (int rep = 0; rep < 300; ++rep) {
      std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
      pool.ParallelForStealing(n, [&](int64_t i) {
        seen[static_cast<size_t>(i)].fetch_add(1);
        std::atomic<int> spin{0};
        while (spin.fetch_add(1, std::memory_order_relaxed) < 200) {
        }
      });
      for (auto& s : seen)
        if (s.load() != 1) *ok = false;
    }
  };
  bool ok_a = true, ok_b = true;
  std::thread a(hammer, 37, &ok_a), b(hammer, 300, &ok_b);
  a.join();
  b.join();
  EXPECT_TRUE(ok_a);
  EXPECT_TRUE(ok_b);
}

}  // namespace
}  // namespace qb
