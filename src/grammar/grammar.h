// A context-free grammar over bytes, the form every output constraint takes (JSON mode, a JSON
// schema, a fixed list of choices). A rule is a list of alternatives; an alternative is a
// sequence of elements, each matching one byte from a set or a whole rule. Alternatives are
// stored flat: element positions run through every alternative, each ended by a kEnd element,
// so "the rest of an alternative" is just a position (the recognizer's stacks hold positions).
// Left recursion is refused when the grammar is built, so expanding a rule always terminates.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace qb {

// A set of byte values.
class ByteSet {
 public:
  ByteSet& Add(uint8_t c) {
    bits_[c >> 6] |= uint64_t{1} << (c & 63);
    return *this;
  }
  ByteSet& AddRange(uint8_t lo, uint8_t hi) {
    for (int c = lo; c <= hi; ++c) Add(static_cast<uint8_t>(c));
    return *this;
  }
  bool Contains(uint8_t c) const { return (bits_[c >> 6] >> (c & 63)) & 1; }
  bool operator==(const ByteSet&) const = default;

 private:
  std::array<uint64_t, 4> bits_{};
};

struct GrammarElement {
  enum class Kind : uint8_t { kEnd, kBytes, kRule };
  Kind kind = Kind::kEnd;
  uint32_t index = 0;  // kBytes: a byte set; kRule: a rule
};

class Grammar {
 public:
  uint32_t root() const { return root_; }
  const GrammarElement& element(uint32_t pos) const { return elements_[pos]; }
  const ByteSet& byte_set(uint32_t i) const { return byte_sets_[i]; }
  // Where each alternative of a rule starts (a position whose element may be kEnd: empty).
  std::span<const uint32_t> alternatives(uint32_t rule) const { return rules_[rule]; }
  size_t rule_count() const { return rules_.size(); }

 private:
  friend class GrammarBuilder;
  uint32_t root_ = 0;
  std::vector<GrammarElement> elements_;
  std::vector<ByteSet> byte_sets_;
  std::vector<std::vector<uint32_t>> rules_;
};

// Builds a Grammar. Rules are declared (NewRule) before they are defined, so they can refer to
// each other and to themselves.
class GrammarBuilder {
 public:
  using Sequence = std::vector<GrammarElement>;

  uint32_t NewRule();
  void Define(uint32_t rule, std::vector<Sequence> alternatives);

  GrammarElement Bytes(const ByteSet& set);
  GrammarElement Byte(uint8_t c) { return Bytes(ByteSet().Add(c)); }
  static GrammarElement Rule(uint32_t rule) { return {GrammarElement::Kind::kRule, rule}; }
  Sequence Literal(std::string_view text);

  // New rules for the usual operators; each returns an element that refers to its rule.
  GrammarElement AnyOf(std::vector<Sequence> alternatives);
  GrammarElement Optional(Sequence s) { return AnyOf({std::move(s), {}}); }
  // s repeated min..max times (max < 0: without bound). A bounded repeat costs max rules.
  GrammarElement Repeat(const Sequence& s, int64_t min, int64_t max);

  // Copies every rule of `g` into this builder; returns an element that matches what `g` does.
  GrammarElement Include(const Grammar& g);

  size_t size() const { return rules_.size(); }  // rules so far

  // Checks that every rule is defined and none is left-recursive (directly or through rules
  // that can match nothing).
  Result<std::shared_ptr<const Grammar>> Build(uint32_t root);

 private:
  std::vector<std::vector<Sequence>> rules_;
  std::vector<bool> defined_;
  std::vector<ByteSet> byte_sets_;
};

// What `a` matches, or `b_prefix` followed by what `b` matches (structured output beside tools:
// the document, or "<tool_call>\n" and the calls).
Result<std::shared_ptr<const Grammar>> UnionGrammar(const Grammar& a, const Grammar& b, std::string_view b_prefix = "");

}  // namespace qb
