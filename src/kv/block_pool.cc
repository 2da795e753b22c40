#include "kv/block_pool.h"

#include <algorithm>

#include "util/check.h"

namespace qb {

uint64_t HashBlock(uint64_t parent_hash, std::span<const int32_t> tokens) {
  // FNV-1a over the parent hash and the ids, then a 64-bit finaliser.
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 0x100000001b3ull;
    }
  };
  mix(parent_hash);
  for (int32_t t : tokens) mix(static_cast<uint32_t>(t));
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

BlockPool::BlockPool(int32_t num_blocks) : blocks_(static_cast<size_t>(num_blocks)) {
  free_.reserve(static_cast<size_t>(num_blocks));
  for (int32_t b = num_blocks - 1; b >= 0; --b) free_.push_back(b);
}

int32_t BlockPool::Allocate() {
  int32_t b = -1;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    b = lru_.front();
    lru_.pop_front();
    Uncache(b);
    ++stats_.evictions;
  } else {
    return -1;
  }
  Block& blk = blocks_[static_cast<size_t>(b)];
  QB_CHECK(blk.refs == 0, "allocating block {} with {} references", b, blk.refs);
  blk.refs = 1;
  return b;
}

void BlockPool::Release(int32_t b) {
  Block& blk = blocks_[static_cast<size_t>(b)];
  QB_CHECK(blk.refs > 0, "releasing free block {}", b);
  if (--blk.refs > 0) return;
  if (blk.cached) {
    lru_.push_back(b);
    blk.lru = std::prev(lru_.end());
  } else {
    free_.push_back(b);
  }
}

int32_t BlockPool::Lookup(uint64_t hash, uint64_t parent_hash, std::span<const int32_t> tokens) {
  auto [it, end] = by_hash_.equal_range(hash);
  for (; it != end; ++it) {
    Block& blk = blocks_[static_cast<size_t>(it->second)];
    if (blk.parent != parent_hash || !std::equal(blk.tokens.begin(), blk.tokens.end(), tokens.begin(), tokens.end()))
      continue;
    if (blk.refs == 0) lru_.erase(blk.lru);
    ++blk.refs;
    ++stats_.prefix_hits;
    return it->second;
  }
  ++stats_.prefix_misses;
  return -1;
}

void BlockPool::Publish(int32_t b, uint64_t hash, uint64_t parent_hash, std::span<const int32_t> tokens) {
  Block& blk = blocks_[static_cast<size_t>(b)];
  QB_CHECK(blk.refs > 0, "publishing unused block {}", b);
  if (blk.cached) return;
  // Another block may already hold the same contents (two sequences computed it at once):
  // keep the first, this one stays private.
  auto [it, end] = by_hash_.equal_range(hash);
  for (; it != end; ++it) {
    const Block& other = blocks_[static_cast<size_t>(it->second)];
    if (other.parent == parent_hash && std::equal(other.tokens.begin(), other.tokens.end(), tokens.begin(), tokens.end()))
      return;
  }
  blk.cached = true;
  blk.hash = hash;
  blk.parent = parent_hash;
  blk.tokens.assign(tokens.begin(), tokens.end());
  by_hash_.emplace(hash, b);
}

void BlockPool::Uncache(int32_t b) {
  Block& blk = blocks_[static_cast<size_t>(b)];
  auto [it, end] = by_hash_.equal_range(blk.hash);
  for (; it != end; ++it)
    if (it->second == b) {
      by_hash_.erase(it);
      break;
    }
  blk.cached = false;
  blk.tokens.clear();
}

}  // namespace qb
