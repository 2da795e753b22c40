// The in-process collective of tensor-parallel ranks (kernels/cpu/host_collective.h): ranks as
// threads, sums and joins checked against the same arithmetic done serially, many rounds in a
// row (a barrier that let a rank run ahead would mix rounds).
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "kernels/cpu/host_collective.h"

namespace qb::kernels {
namespace {

// Runs fn(rank) on `world` threads at once.
template <typename Fn>
void OnRanks(int world, Fn fn) {
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) threads.emplace_back(fn, r);
  for (auto& t : threads) t.join();
}

float Value(int round, int rank, int64_t i) { return static_cast<float>((round * 7 + rank * 13 + i) % 101) * 0.25f; }

TEST(HostCollectiveTest, AllReduceGivesEveryRankTheSumInRankOrder) {
  for (int world : {1, 2, 3}) {
    HostCollectiveGroup group(world);
    constexpr int kRounds = 200;
    const int64_t n = 20011;  // not a multiple of the ranks; shares large enough for a pool to split
    std::vector<int> wrong(static_cast<size_t>(world), 0);
    OnRanks(world, [&](int r) {
      Collective* c = group.rank(r);
      ASSERT_EQ(c->rank(), r);
      ASSERT_EQ(c->world(), world);
      ThreadPool pool(r == 1 ? 2 : 1);  // ranks with and without helper threads
      std::vector<float> buf(static_cast<size_t>(n));
      for (int round = 0; round < kRounds; ++round) {
        for (int64_t i = 0; i < n; ++i) buf[static_cast<size_t>(i)] = Value(round, r, i);
        c->AllReduceSum(buf.data(), round % 2 == 0 ? n : 17, round % 3 == 0 ? nullptr : &pool);
        const int64_t m = round % 2 == 0 ? n : 17;
        for (int64_t i = 0; i < m; ++i) {
          float want = Value(round, 0, i);
          for (int k = 1; k < world; ++k) want += Value(round, k, i);
          wrong[static_cast<size_t>(r)] += buf[static_cast<size_t>(i)] != want;  // bit-exact: rank order
        }
      }
    });
    for (int r = 0; r < world; ++r) EXPECT_EQ(wrong[static_cast<size_t>(r)], 0) << "rank " << r << " of " << world;
  }
}

TEST(HostCollectiveTest, GatherColumnsJoinsUnevenPartsOnRankZero) {
  constexpr int kWorld = 3;
  HostCollectiveGroup group(kWorld);
  const int64_t rows = 4;
  const int64_t cols[kWorld] = {3, 5, 2};
  std::vector<float> full(static_cast<size_t>(rows * 10), -1.f);
  OnRanks(kWorld, [&](int r) {
    for (int round = 0; round < 50; ++round) {
      std::vector<float> part(static_cast<size_t>(rows * cols[r]));
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols[r]; ++j)
          part[static_cast<size_t>(i * cols[r] + j)] = static_cast<float>(round * 1000 + r * 100 + i * 10 + j);
      group.rank(r)->GatherColumns(part.data(), rows, cols[r], r == 0 ? full.data() : nullptr);
      if (r != 0) continue;
      for (int64_t i = 0; i < rows; ++i) {
        int64_t at = 0;
        for (int k = 0; k < kWorld; ++k)
          for (int64_t j = 0; j < cols[k]; ++j, ++at)
            ASSERT_EQ(full[static_cast<size_t>(i * 10 + at)], static_cast<float>(round * 1000 + k * 100 + i * 10 + j))
                << "round " << round << " row " << i << " col " << at;
      }
    }
  });
}

}  // namespace
}  // namespace qb::kernels
