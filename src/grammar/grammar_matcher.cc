#include "grammar/grammar_matcher.h"

#include <algorithm>

namespace qb {

bool GrammarState::complete() const {
  return std::any_of(stacks.begin(), stacks.end(), [](const auto& s) { return s.empty(); });
}

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar) : grammar_(std::move(grammar)) {
  const uint32_t root = grammar_->root();
  std::set<std::vector<uint32_t>> seen;
  for (uint32_t alt : grammar_->alternatives(root)) {
    std::vector<uint32_t> s;
    if (grammar_->element(alt).kind != GrammarElement::Kind::kEnd) s.push_back(alt);
    Expand(std::move(s), state_.stacks, seen);
  }
  std::sort(state_.stacks.begin(), state_.stacks.end());
  state_.stacks.erase(std::unique(state_.stacks.begin(), state_.stacks.end()), state_.stacks.end());
}

void GrammarMatcher::Expand(std::vector<uint32_t> stack, std::vector<std::vector<uint32_t>>& out,
                            std::set<std::vector<uint32_t>>& seen) const {
  const Grammar& g = *grammar_;
  if (out.size() >= kMaxGrammarStacks) return;
  if (stack.empty() || g.element(stack.back()).kind == GrammarElement::Kind::kBytes) {
    out.push_back(std::move(stack));
    return;
  }
  if (!seen.insert(stack).second) return;  // expanded already along another path
  const uint32_t pos = stack.back();
  const uint32_t rule = g.element(pos).index;
  stack.pop_back();
  if (g.element(pos + 1).kind != GrammarElement::Kind::kEnd) stack.push_back(pos + 1);  // resume here
  const auto alts = g.alternatives(rule);
  for (size_t i = 0; i < alts.size(); ++i) {
    std::vector<uint32_t> s = i + 1 < alts.size() ? stack : std::move(stack);
    if (g.element(alts[i]).kind != GrammarElement::Kind::kEnd) s.push_back(alts[i]);
    Expand(std::move(s), out, seen);
  }
}

void GrammarMatcher::Step(const GrammarState& from, uint8_t c, GrammarState* out) const {
  const Grammar& g = *grammar_;
  out->stacks.clear();
  std::set<std::vector<uint32_t>> seen;
  for (const auto& s : from.stacks) {
    if (s.empty()) continue;
    const uint32_t pos = s.back();
    if (!g.byte_set(g.element(pos).index).Contains(c)) continue;
    std::vector<uint32_t> next(s.begin(), s.end() - 1);
    if (g.element(pos + 1).kind != GrammarElement::Kind::kEnd) next.push_back(pos + 1);
    Expand(std::move(next), out->stacks, seen);
  }
  if (out->stacks.size() > 1) {
    std::sort(out->stacks.begin(), out->stacks.end());
    out->stacks.erase(std::unique(out->stacks.begin(), out->stacks.end()), out->stacks.end());
  }
}

bool GrammarMatcher::Allows(std::string_view bytes) const {
  GrammarState a = state_, b;
  for (char c : bytes) {
    Step(a, static_cast<uint8_t>(c), &b);
    if (b.dead()) return false;
    std::swap(a, b);
  }
  return true;
}

bool GrammarMatcher::Advance(std::string_view bytes) {
  GrammarState a = state_, b;
  for (char c : bytes) {
    Step(a, static_cast<uint8_t>(c), &b);
    if (b.dead()) return false;
    std::swap(a, b);
  }
  state_ = std::move(a);
  return true;
}

}  // namespace qb
