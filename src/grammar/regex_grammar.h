// Regular expressions as grammars: TGI's regex grammar, vLLM's guided_regex (the whole output
// must match) and JSON Schema's `pattern` (a string whose value contains a match; the
// characters are written JSON-escaped). The common subset: literals (UTF-8 too), `.`, classes
// `[a-z\d_]` and `[^...]`, `\d \w \s \D \W \S`, escapes, groups `(...)`, `(?:...)`,
// `(?P<name>...)`, alternation, `* + ? {n} {n,} {n,m}` (lazy forms too), `^` at the start and
// `$` at the end. Refused with a message: backreferences, lookaround, word boundaries, and
// negated classes that list non-ASCII characters.
#pragma once

#include <memory>
#include <string_view>

#include "grammar/grammar.h"
#include "util/status.h"

namespace qb {

enum class RegexTarget {
  kRaw,         // the text itself must match, whole
  kJsonString,  // the inside of a JSON string (escaped) whose value contains a match
};

// Adds the pattern's rules to `b` and returns an element matching it.
Result<GrammarElement> AddRegex(GrammarBuilder& b, std::string_view pattern, RegexTarget target);

Result<std::shared_ptr<const Grammar>> RegexGrammar(std::string_view pattern);

// One well-formed multi-byte UTF-8 sequence (no overlong forms, no surrogates).
GrammarElement Utf8NonAscii(GrammarBuilder& b);

}  // namespace qb
