#include "grammar/grammar.h"

#include <fmt/format.h>

#include "util/check.h"

namespace qb {

uint32_t GrammarBuilder::NewRule() {
  rules_.emplace_back();
  defined_.push_back(false);
  return static_cast<uint32_t>(rules_.size() - 1);
}

void GrammarBuilder::Define(uint32_t rule, std::vector<Sequence> alternatives) {
  QB_CHECK(rule < rules_.size() && !defined_[rule], "rule {} is unknown or defined twice", rule);
  QB_CHECK(!alternatives.empty(), "rule {} has no alternative", rule);
  rules_[rule] = std::move(alternatives);
  defined_[rule] = true;
}

GrammarElement GrammarBuilder::Bytes(const ByteSet& set) {
  for (size_t i = 0; i < byte_sets_.size(); ++i)
    if (byte_sets_[i] == set) return {GrammarElement::Kind::kBytes, static_cast<uint32_t>(i)};
  byte_sets_.push_back(set);
  return {GrammarElement::Kind::kBytes, static_cast<uint32_t>(byte_sets_.size() - 1)};
}

GrammarBuilder::Sequence GrammarBuilder::Literal(std::string_view text) {
  Sequence s;
  for (char c : text) s.push_back(Byte(static_cast<uint8_t>(c)));
  return s;
}

GrammarElement GrammarBuilder::AnyOf(std::vector<Sequence> alternatives) {
  const uint32_t r = NewRule();
  Define(r, std::move(alternatives));
  return Rule(r);
}

GrammarElement GrammarBuilder::Repeat(const Sequence& s, int64_t min, int64_t max) {
  QB_CHECK(min >= 0 && (max < 0 || max >= min), "bad repeat bounds {}..{}", min, max);
  Sequence all;
  for (int64_t i = 0; i < min; ++i) all.insert(all.end(), s.begin(), s.end());
  if (max < 0) {
    const uint32_t star = NewRule();  // star := s star | (nothing)
    Sequence again = s;
    again.push_back(Rule(star));
    Define(star, {std::move(again), {}});
    all.push_back(Rule(star));
  } else if (max > min) {
    // opt_1 := s | (nothing); opt_k := s opt_{k-1} | (nothing)
    GrammarElement tail = Optional(s);
    for (int64_t k = 2; k <= max - min; ++k) {
      Sequence more = s;
      more.push_back(tail);
      tail = Optional(std::move(more));
    }
    all.push_back(tail);
  }
  return AnyOf({std::move(all)});
}

GrammarElement GrammarBuilder::Include(const Grammar& g) {
  const auto offset = static_cast<uint32_t>(rules_.size());
  for (size_t r = 0; r < g.rule_count(); ++r) NewRule();
  for (size_t r = 0; r < g.rule_count(); ++r) {
    std::vector<Sequence> alternatives;
    for (uint32_t pos : g.alternatives(static_cast<uint32_t>(r))) {
      Sequence seq;
      for (; g.element(pos).kind != GrammarElement::Kind::kEnd; ++pos) {
        const GrammarElement& e = g.element(pos);
        seq.push_back(e.kind == GrammarElement::Kind::kRule ? Rule(offset + e.index) : Bytes(g.byte_set(e.index)));
      }
      alternatives.push_back(std::move(seq));
    }
    Define(offset + static_cast<uint32_t>(r), std::move(alternatives));
  }
  return Rule(offset + g.root());
}

Result<std::shared_ptr<const Grammar>> UnionGrammar(const Grammar& a, const Grammar& b, std::string_view b_prefix) {
  GrammarBuilder gb;
  const GrammarElement ea = gb.Include(a), eb = gb.Include(b);
  GrammarBuilder::Sequence second = gb.Literal(b_prefix);
  second.push_back(eb);
  const uint32_t root = gb.NewRule();
  gb.Define(root, {{ea}, second});
  return gb.Build(root);
}

Result<std::shared_ptr<const Grammar>> GrammarBuilder::Build(uint32_t root) {
  const size_t n = rules_.size();
  if (root >= n) return InvalidArgument("grammar: the root rule does not exist");
  for (size_t r = 0; r < n; ++r)
    if (!defined_[r]) return InvalidArgument(fmt::format("grammar: rule {} is used but never defined", r));
  // Rules that can match the empty string (a fixpoint over the alternatives).
  std::vector<bool> nullable(n, false);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < n; ++r) {
      if (nullable[r]) continue;
      for (const Sequence& alt : rules_[r]) {
        bool all = true;
        for (const GrammarElement& e : alt)
          if (e.kind != GrammarElement::Kind::kRule || !nullable[e.index]) {
            all = false;
            break;
          }
        if (all) {
          nullable[r] = changed = true;
          break;
        }
      }
    }
  }
  // Left corners: r -> s when s can start an alternative of r with nothing matched before it.
  std::vector<std::vector<uint32_t>> corners(n);
  for (size_t r = 0; r < n; ++r)
    for (const Sequence& alt : rules_[r])
      for (const GrammarElement& e : alt) {
        if (e.kind != GrammarElement::Kind::kRule) break;
        corners[r].push_back(e.index);
        if (!nullable[e.index]) break;
      }
  // A cycle among left corners is left recursion: expanding it would never end.
  std::vector<uint8_t> mark(n, 0);  // 0 new, 1 on the path, 2 done
  std::vector<std::pair<uint32_t, size_t>> path;
  for (uint32_t start = 0; start < n; ++start) {
    if (mark[start]) continue;
    path.push_back({start, 0});
    mark[start] = 1;
    while (!path.empty()) {
      auto& [r, next] = path.back();
      if (next < corners[r].size()) {
        const uint32_t s = corners[r][next++];
        if (mark[s] == 1) return InvalidArgument(fmt::format("grammar: rule {} is left-recursive", s));
        if (mark[s] == 0) {
          mark[s] = 1;
          path.push_back({s, 0});
        }
      } else {
        mark[r] = 2;
        path.pop_back();
      }
    }
  }
  auto g = std::make_shared<Grammar>();
  g->root_ = root;
  g->byte_sets_ = byte_sets_;
  g->rules_.resize(n);
  for (size_t r = 0; r < n; ++r)
    for (const Sequence& alt : rules_[r]) {
      g->rules_[r].push_back(static_cast<uint32_t>(g->elements_.size()));
      g->elements_.insert(g->elements_.end(), alt.begin(), alt.end());
      g->elements_.push_back({GrammarElement::Kind::kEnd, 0});
    }
  return std::shared_ptr<const Grammar>(std::move(g));
}

}  // namespace qb
