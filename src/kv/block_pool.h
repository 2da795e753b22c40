// The KV cache's block allocator: fixed-size blocks from one pool, reference-counted, and a
// prefix cache. A full block is published under a hash of (its parent block's hash, its token
// ids); later sequences with the same prefix reuse it instead of recomputing. A cached block
// whose last user finished stays findable until its memory is needed: then the least recently
// used one is evicted. All calls come from the engine thread (no locking).
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

namespace qb {

uint64_t HashBlock(uint64_t parent_hash, std::span<const int32_t> tokens);

struct BlockPoolStats {
  int64_t prefix_hits = 0;    // blocks reused from the prefix cache
  int64_t prefix_misses = 0;  // full blocks looked up and not found
  int64_t evictions = 0;
};

class BlockPool {
 public:
  explicit BlockPool(int32_t num_blocks);

  int32_t num_blocks() const { return static_cast<int32_t>(blocks_.size()); }
  // Blocks that Allocate can hand out (free ones and cached ones nobody uses).
  int32_t num_free() const { return static_cast<int32_t>(free_.size() + lru_.size()); }
  int32_t num_used() const { return num_blocks() - num_free(); }
  int32_t refcount(int32_t b) const { return blocks_[static_cast<size_t>(b)].refs; }
  const BlockPoolStats& stats() const { return stats_; }

  // A block for new contents, refcount 1; -1 when the pool is exhausted.
  int32_t Allocate();
  void Release(int32_t b);
  // The cached block holding exactly these tokens after this parent, with a reference taken;
  // -1 if there is none.
  int32_t Lookup(uint64_t hash, uint64_t parent_hash, std::span<const int32_t> tokens);
  // Block b (in use, full) holds these tokens after this parent: make it findable.
  void Publish(int32_t b, uint64_t hash, uint64_t parent_hash, std::span<const int32_t> tokens);

 private:
  struct Block {
    int32_t refs = 0;
    bool cached = false;
    uint64_t hash = 0;
    uint64_t parent = 0;
    std::vector<int32_t> tokens;       // the cached contents (to rule out hash collisions)
    std::list<int32_t>::iterator lru;  // position in lru_ while cached and unreferenced
  };
  void Uncache(int32_t b);

  std::vector<Block> blocks_;
  std::vector<int32_t> free_;  // never-cached (or evicted) free blocks
  std::list<int32_t> lru_;     // cached blocks with no references, least recently used first
  std::unordered_multimap<uint64_t, int32_t> by_hash_;
  BlockPoolStats stats_;
};

}  // namespace qb
