// Recognizes a Grammar byte by byte (a pushdown recognizer in the manner of llama.cpp's grammar
// stacks). The state is the set of every way the bytes so far can go on: each way a stack of
// element positions, whose top is the byte set the next byte must match and whose lower
// entries are where to resume when the alternative above ends. An empty stack means the bytes
// so far form a complete sentence; no stacks at all means they cannot be continued.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string_view>
#include <vector>

#include "grammar/grammar.h"

namespace qb {

// Stacks kept at most: an ambiguous grammar (two alternatives that go on alike) doubles them
// at each level of nesting; past this many, the rest are dropped. Every stack kept is a valid
// way on, so what is generated still matches the grammar; only some choices are lost.
inline constexpr size_t kMaxGrammarStacks = 4096;

struct GrammarState {
  std::vector<std::vector<uint32_t>> stacks;  // sorted, no duplicates

  bool dead() const { return stacks.empty(); }
  bool complete() const;
  bool operator==(const GrammarState&) const = default;
};

class GrammarMatcher {
 public:
  explicit GrammarMatcher(std::shared_ptr<const Grammar> grammar);

  const Grammar& grammar() const { return *grammar_; }
  const GrammarState& state() const { return state_; }
  bool complete() const { return state_.complete(); }

  // Whether `bytes` may come next (nothing changes).
  bool Allows(std::string_view bytes) const;
  // Takes `bytes` if the grammar allows all of them; otherwise false and nothing changes.
  bool Advance(std::string_view bytes);

  // The state after byte c from `from` (dead when c is not allowed there). `out` may not be
  // `from`; its storage is reused.
  void Step(const GrammarState& from, uint8_t c, GrammarState* out) const;

 private:
  // Replaces rule references on top of `stack` by their alternatives until a byte set (or
  // nothing) is on top of each resulting stack, appended to `out`. `seen` holds the stacks
  // already expanded in this step: a stack reached along two paths is expanded once (without
  // it, a chain of rules each with two alternatives naming the same next rule costs 2^n).
  void Expand(std::vector<uint32_t> stack, std::vector<std::vector<uint32_t>>& out,
              std::set<std::vector<uint32_t>>& seen) const;

  std::shared_ptr<const Grammar> grammar_;
  GrammarState state_;
};

}  // namespace qb
