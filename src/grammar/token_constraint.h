// A grammar applied to a model's tokens. Every token is a byte string (byte-level BPE); a
// token is allowed when the grammar accepts its bytes from the current state. End tokens
// (end-of-sequence, the request's stop ids) are allowed only when the output so far is complete;
// other special tokens never are. Finding every allowed token walks the vocabulary in sorted byte
// order, so tokens sharing a prefix share its steps and a dead prefix skips all tokens under it;
// the sets found are remembered per grammar state (a JSON string's state recurs at every
// character), across the requests that share the grammar.
#pragma once

#include <array>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "grammar/grammar_matcher.h"
#include "sampling/token_filter.h"
#include "tokenizer/tokenizer.h"

namespace qb {

// The vocabulary's byte strings, sorted, with each one's common prefix with the one before.
class TokenBytesIndex {
 public:
  explicit TokenBytesIndex(std::shared_ptr<const Tokenizer> tokenizer);

  struct Entry {
    std::string_view bytes;
    int32_t id;
    uint32_t common;  // bytes shared with the previous entry
  };
  int32_t vocab_size() const { return vocab_size_; }
  const std::vector<Entry>& sorted() const { return sorted_; }
  // The bytes of an ordinary token (nullptr for special tokens and unknown ids).
  const std::string* bytes(int32_t id) const {
    return id >= 0 && id < vocab_size_ ? bytes_[static_cast<size_t>(id)] : nullptr;
  }

 private:
  std::shared_ptr<const Tokenizer> tokenizer_;  // owns the bytes
  int32_t vocab_size_ = 0;
  std::vector<const std::string*> bytes_;
  std::vector<Entry> sorted_;
};

// Allowed-token sets of one grammar's states (ordinary tokens only, as bits), shared by every
// request that uses the grammar: a schema sent again finds its states' sets already walked.
// Thread-safe (requests are sampled in parallel); least recently used sets are dropped.
class TokenSetCache {
 public:
  explicit TokenSetCache(size_t capacity = 64) : capacity_(capacity) {}
  // Copies the set of `key` into `bits`; false when it is not cached.
  bool Find(const std::string& key, std::vector<uint64_t>& bits);
  void Insert(const std::string& key, std::vector<uint64_t> bits);

 private:
  std::mutex mu_;
  size_t capacity_;
  std::list<std::pair<std::string, std::vector<uint64_t>>> sets_;  // most recently used first
  std::unordered_map<std::string, decltype(sets_)::iterator> index_;
};

// TokenSetCaches by grammar, for an engine: grammars compiled once per schema (the server keeps
// them) share one; a grammar no request holds any more is forgotten.
class TokenSetCaches {
 public:
  std::shared_ptr<TokenSetCache> For(const std::shared_ptr<const Grammar>& grammar);

 private:
  std::mutex mu_;
  std::unordered_map<const Grammar*, std::pair<std::weak_ptr<const Grammar>, std::shared_ptr<TokenSetCache>>> caches_;
};

class GrammarConstraint : public TokenFilter {
 public:
  // `sets` may be shared with other requests of the same grammar (nullptr: a private one).
  GrammarConstraint(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenBytesIndex> vocab,
                    std::vector<int32_t> end_ids, std::shared_ptr<TokenSetCache> sets = nullptr);

  bool Allows(int32_t id) override;
  int64_t Allowed(std::vector<uint8_t>& allowed) override;

  // Takes the token that was picked: false (nothing changes) when the grammar refuses it.
  bool Accept(int32_t id);
  bool IsEnd(int32_t id) const;
  bool complete() const { return matcher_.complete(); }
  const GrammarMatcher& matcher() const { return matcher_; }
  int64_t walks() const { return walks_; }  // allowed sets computed (not found in the cache)

 private:
  static std::string Key(const GrammarState& state);
  void Walk(std::vector<uint8_t>& allowed);
  // The walk runs on numbered states with remembered transitions (a DFA built as it is
  // explored): inside a JSON string almost every byte leads back to the same state, so most of
  // the ~10^6 steps of a walk are table lookups.
  int32_t Intern(GrammarState state);
  int32_t Next(int32_t state, uint8_t c);

  GrammarMatcher matcher_;
  std::shared_ptr<const TokenBytesIndex> vocab_;
  std::vector<int32_t> end_ids_;
  static constexpr size_t kMaxStates = 2048;  // (~1 KB each) then the table starts again
  std::vector<GrammarState> states_;
  std::unordered_map<std::string, int32_t> state_ids_;
  std::vector<std::array<int32_t, 256>> next_;  // -2 not yet known, -1 dead
  std::vector<int32_t> path_;                   // the walk's state per prefix length
  std::shared_ptr<TokenSetCache> sets_;
  std::vector<uint64_t> bits_;
  int64_t walks_ = 0;
};

}  // namespace qb
