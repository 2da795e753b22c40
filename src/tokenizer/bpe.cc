#include "tokenizer/bpe.h"

#include <fmt/format.h>

#include <limits>
#include <mutex>
#include <queue>

#include "tokenizer/byte_level.h"

namespace qb {

namespace {
constexpr size_t kMaxCacheEntries = 1 << 18;
constexpr size_t kMaxCachedPieceBytes = 64;
}  // namespace

Result<BpeModel> BpeModel::Build(std::vector<std::string> tokens,
                                 const std::vector<std::pair<std::string, std::string>>& merges) {
  BpeModel m;
  m.bytes_.resize(tokens.size());
  *m.texts_ = std::move(tokens);
  m.index_ = FlatStringIndex(m.texts_.get());
  m.index_.Reserve(m.texts_->size());
  for (size_t id = 0; id < m.texts_->size(); ++id) {
    const std::string& text = (*m.texts_)[id];
    if (text.empty()) continue;
    if (!byte_level::Decode(text, &m.bytes_[id]))
      return DataLoss(fmt::format("token {} (\"{}\") has characters outside the byte-level alphabet", id, text));
    m.index_.Insert(static_cast<int32_t>(id));
  }
  for (int b = 0; b < 256; ++b) {
    std::string s;
    s.push_back(static_cast<char>(b));
    const int32_t id = m.Find(byte_level::Encode(s));
    if (id < 0) return DataLoss(fmt::format("the vocabulary has no token for byte 0x{:02x}", b));
    m.byte_id_[b] = id;
  }
  m.merges_.Reserve(merges.size());
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [l, r] = merges[rank];
    joined.assign(l).append(r);
    const int32_t a = m.Find(l), b = m.Find(r), c = m.Find(joined);
    if (a < 0 || b < 0 || c < 0)
      return DataLoss(fmt::format("merge {} \"{} {}\" uses tokens missing from the vocabulary", rank, l, r));
    const uint64_t key = (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b);
    m.merges_.Insert(key, (static_cast<uint64_t>(rank) << 32) | static_cast<uint32_t>(c));  // first rank wins
  }
  return m;
}

int32_t BpeModel::Find(std::string_view token) const {
  return index_.Find(token);
}

void BpeModel::Encode(std::string_view piece, std::vector<int32_t>& ids) const {
  if (piece.size() == 1) {
    ids.push_back(byte_id_[static_cast<uint8_t>(piece[0])]);
    return;
  }
  const bool cacheable = piece.size() <= kMaxCachedPieceBytes;
  if (cacheable) {
    std::shared_lock lock(cache_->mu);
    auto it = cache_->map.find(std::string(piece));
    if (it != cache_->map.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = ids.size();
  EncodeUncached(piece, ids);
  if (cacheable) {
    std::unique_lock lock(cache_->mu);
    if (cache_->map.size() >= kMaxCacheEntries) cache_->map.clear();
    cache_->map.emplace(std::string(piece), std::vector<int32_t>(ids.begin() + static_cast<std::ptrdiff_t>(start), ids.end()));
  }
}

// Symbols in a doubly linked list; candidate merges in a min-heap of (rank, position), checked
// for staleness when popped.
void BpeModel::EncodeUncached(std::string_view piece, std::vector<int32_t>& ids) const {
  const size_t n = piece.size();
  std::vector<int32_t> sym(n);
  std::vector<int32_t> prev(n), next(n);
  for (size_t i = 0; i < n; ++i) {
    sym[i] = byte_id_[static_cast<uint8_t>(piece[i])];
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  struct Cand {
    uint32_t rank;
    int32_t pos;
    int32_t left, right;  // the symbols when pushed (to detect stale entries)
    int32_t result;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<>> heap;
  auto push = [&](int32_t i) {
    if (i < 0 || next[static_cast<size_t>(i)] < 0) return;
    const int32_t a = sym[static_cast<size_t>(i)], b = sym[static_cast<size_t>(next[static_cast<size_t>(i)])];
    if (const uint64_t* v = merges_.Find((static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b)))
      heap.push({static_cast<uint32_t>(*v >> 32), i, a, b, static_cast<int32_t>(*v & 0xffffffffu)});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    const auto i = static_cast<size_t>(c.pos);
    if (sym[i] != c.left || next[i] < 0 || sym[static_cast<size_t>(next[i])] != c.right) continue;  // stale
    const auto j = static_cast<size_t>(next[i]);
    sym[i] = c.result;
    sym[j] = -1;
    next[i] = next[j];
    if (next[j] >= 0) prev[static_cast<size_t>(next[j])] = static_cast<int32_t>(i);
    push(prev[i]);
    push(static_cast<int32_t>(i));
  }
  for (int32_t i = 0; i >= 0; i = next[static_cast<size_t>(i)]) ids.push_back(sym[static_cast<size_t>(i)]);
}

}  // namespace qb
