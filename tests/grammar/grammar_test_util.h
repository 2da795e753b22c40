// What the grammar test files share.
#pragma once

#include <memory>
#include <string_view>

#include "grammar/grammar_matcher.h"

namespace qb::test {

// Whether the grammar accepts exactly this text (all of it, and in a complete state).
inline bool Accepts(const std::shared_ptr<const Grammar>& g, std::string_view text) {
  GrammarMatcher m(g);
  return m.Advance(text) && m.complete();
}

}  // namespace qb::test
