#include "grammar/token_constraint.h"

#include <algorithm>

#include "util/check.h"

namespace qb {

TokenBytesIndex::TokenBytesIndex(std::shared_ptr<const Tokenizer> tokenizer) : tokenizer_(std::move(tokenizer)) {
  vocab_size_ = tokenizer_->vocab_size();
  bytes_.assign(static_cast<size_t>(vocab_size_), nullptr);
  for (int32_t id = 0; id < vocab_size_; ++id) {
    const std::string* b = tokenizer_->TokenBytes(id);
    if (b == nullptr || b->empty() || tokenizer_->IsSpecial(id)) continue;
    bytes_[static_cast<size_t>(id)] = b;
    sorted_.push_back({*b, id, 0});
  }
  std::sort(sorted_.begin(), sorted_.end(), [](const Entry& a, const Entry& b) {
    return a.bytes < b.bytes || (a.bytes == b.bytes && a.id < b.id);
  });
  for (size_t i = 1; i < sorted_.size(); ++i) {
    const std::string_view x = sorted_[i - 1].bytes, y = sorted_[i].bytes;
    uint32_t n = 0;
    while (n < x.size() && n < y.size() && x[n] == y[n]) ++n;
    sorted_[i].common = n;
  }
}

bool TokenSetCache::Find(const std::string& key, std::vector<uint64_t>& bits) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  sets_.splice(sets_.begin(), sets_, it->second);
  bits = it->second->second;
  return true;
}

void TokenSetCache::Insert(const std::string& key, std::vector<uint64_t> bits) {
  std::lock_guard<std::mutex> lock(mu_);
  if (index_.count(key)) return;  // another request walked it meanwhile
  sets_.emplace_front(key, std::move(bits));
  index_[key] = sets_.begin();
  if (sets_.size() > capacity_) {
    index_.erase(sets_.back().first);
    sets_.pop_back();
  }
}

std::shared_ptr<TokenSetCache> TokenSetCaches::For(const std::shared_ptr<const Grammar>& grammar) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = caches_.begin(); it != caches_.end();) {  // forget grammars nobody holds
    if (it->second.first.expired()) it = caches_.erase(it);
    else ++it;
  }
  auto& entry = caches_[grammar.get()];
  if (!entry.second) entry = {grammar, std::make_shared<TokenSetCache>()};
  return entry.second;
}

GrammarConstraint::GrammarConstraint(std::shared_ptr<const Grammar> grammar,
                                     std::shared_ptr<const TokenBytesIndex> vocab, std::vector<int32_t> end_ids,
                                     std::shared_ptr<TokenSetCache> sets)
    : matcher_(std::move(grammar)),
      vocab_(std::move(vocab)),
      end_ids_(std::move(end_ids)),
      sets_(sets ? std::move(sets) : std::make_shared<TokenSetCache>(32)) {}

bool GrammarConstraint::IsEnd(int32_t id) const {
  return std::find(end_ids_.begin(), end_ids_.end(), id) != end_ids_.end();
}

bool GrammarConstraint::Allows(int32_t id) {
  if (IsEnd(id)) return matcher_.complete();
  const std::string* b = vocab_->bytes(id);
  return b != nullptr && matcher_.Allows(*b);
}

bool GrammarConstraint::Accept(int32_t id) {
  if (IsEnd(id)) return matcher_.complete();
  const std::string* b = vocab_->bytes(id);
  if (b == nullptr) return false;
  const bool ok = matcher_.Advance(*b);
  return ok;
}

std::string GrammarConstraint::Key(const GrammarState& state) {
  std::string key;
  for (const auto& stack : state.stacks) {
    key.append(reinterpret_cast<const char*>(stack.data()), stack.size() * sizeof(uint32_t));
    key.append(4, '\xff');  // no position is 0xffffffff
  }
  return key;
}

int32_t GrammarConstraint::Intern(GrammarState state) {
  std::string key = Key(state);
  if (auto it = state_ids_.find(key); it != state_ids_.end()) return it->second;
  const auto id = static_cast<int32_t>(states_.size());
  states_.push_back(std::move(state));
  next_.emplace_back();
  next_.back().fill(-2);
  state_ids_.emplace(std::move(key), id);
  return id;
}

int32_t GrammarConstraint::Next(int32_t state, uint8_t c) {
  int32_t& n = next_[static_cast<size_t>(state)][c];
  if (n != -2) return n;
  GrammarState out;
  matcher_.Step(states_[static_cast<size_t>(state)], c, &out);
  const int32_t id = out.dead() ? -1 : Intern(std::move(out));
  next_[static_cast<size_t>(state)][c] = id;  // (Intern may have moved the table)
  return id;
}

void GrammarConstraint::Walk(std::vector<uint8_t>& allowed) {
  if (states_.size() > kMaxStates) {
    states_.clear();
    state_ids_.clear();
    next_.clear();
  }
  const auto& sorted = vocab_->sorted();
  path_.assign(1, Intern(matcher_.state()));
  size_t valid = 0;        // path_[0..valid] hold the previous token's prefixes
  size_t dead = SIZE_MAX;  // that token's first `dead` bytes cannot occur
  for (const auto& e : sorted) {
    if (e.common >= dead) continue;  // shares the impossible prefix
    dead = SIZE_MAX;
    const std::string_view b = e.bytes;
    if (path_.size() < b.size() + 1) path_.resize(b.size() + 1);
    size_t d = std::min<size_t>(e.common, valid);
    for (; d < b.size(); ++d) {
      const int32_t n = Next(path_[d], static_cast<uint8_t>(b[d]));
      if (n < 0) break;
      path_[d + 1] = n;
    }
    if (d < b.size()) {
      dead = d + 1;
      valid = d;
    } else {
      allowed[static_cast<size_t>(e.id)] = 1;
      valid = b.size();
    }
  }
}

int64_t GrammarConstraint::Allowed(std::vector<uint8_t>& allowed) {
  const auto vocab = static_cast<size_t>(vocab_->vocab_size());
  allowed.assign(vocab, 0);
  const std::string key = Key(matcher_.state());
  if (sets_->Find(key, bits_)) {
    for (size_t id = 0; id < vocab; ++id) allowed[id] = (bits_[id >> 6] >> (id & 63)) & 1;
  } else {
    Walk(allowed);
    ++walks_;
    bits_.assign((vocab + 63) / 64, 0);
    for (size_t id = 0; id < vocab; ++id)
      if (allowed[id]) bits_[id >> 6] |= uint64_t{1} << (id & 63);
    sets_->Insert(key, bits_);
  }
  const bool complete = matcher_.complete();
  for (int32_t id : end_ids_)
    if (id >= 0 && static_cast<size_t>(id) < vocab) allowed[static_cast<size_t>(id)] = complete ? 1 : 0;
  int64_t n = 0;
  for (uint8_t a : allowed) n += a;
  return n;
}

}  // namespace qb
