#include "kv/block_pool.h"

#include <gtest/gtest.h>

#include <vector>

namespace qb {
namespace {

TEST(BlockPoolTest, AllocateReleaseAndExhaust) {
  BlockPool pool(3);
  EXPECT_EQ(pool.num_free(), 3);
  const int32_t a = pool.Allocate(), b = pool.Allocate(), c = pool.Allocate();
  EXPECT_GE(a, 0);
  EXPECT_NE(a, b);
  EXPECT_NE(b, c);
  EXPECT_EQ(pool.Allocate(), -1);
  EXPECT_EQ(pool.num_used(), 3);
  pool.Release(b);
  EXPECT_EQ(pool.num_free(), 1);
  EXPECT_DEATH(pool.Release(b), "releasing free block");  // a double release is a bug
  EXPECT_EQ(pool.Allocate(), b);
}

TEST(BlockPoolTest, PrefixCacheReuseAndEviction) {
  BlockPool pool(2);
  const std::vector<int32_t> t1 = {1, 2, 3, 4}, t2 = {5, 6, 7, 8};
  const uint64_t h1 = HashBlock(0, t1), h2 = HashBlock(h1, t2);
  const int32_t a = pool.Allocate();
  pool.Publish(a, h1, 0, t1);
  // In use: a lookup shares it.
  EXPECT_EQ(pool.Lookup(h1, 0, t1), a);
  EXPECT_EQ(pool.refcount(a), 2);
  pool.Release(a);
  pool.Release(a);
  // Unreferenced but cached: still found, and counted as free.
  EXPECT_EQ(pool.num_free(), 2);
  EXPECT_EQ(pool.Lookup(h1, 0, t1), a);
  pool.Release(a);
  // Same hash, other tokens: not a hit (collisions are checked).
  EXPECT_EQ(pool.Lookup(h1, 0, t2), -1);
  EXPECT_EQ(pool.Lookup(h2, h1, t2), -1);
  // Allocation prefers never-cached blocks, then evicts the least recently used cached one.
  const int32_t b = pool.Allocate();
  EXPECT_NE(b, a);
  const int32_t c = pool.Allocate();
  EXPECT_EQ(c, a);
  EXPECT_EQ(pool.stats().evictions, 1);
  EXPECT_EQ(pool.Lookup(h1, 0, t1), -1);
  EXPECT_EQ(pool.stats().prefix_hits, 2);
}

TEST(BlockPoolTest, HashChainsDependOnTheParent) {
  const std::vector<int32_t> t = {9, 9};
  EXPECT_NE(HashBlock(0, t), HashBlock(1, t));
  EXPECT_EQ(HashBlock(7, t), HashBlock(7, t));
}

}  // namespace
}  // namespace qb
