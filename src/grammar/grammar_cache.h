// Compiled grammars by their source (kind and canonical text), least recently used dropped: a
// schema sent again gets the same Grammar, compiled once, and with it the engine's allowed-token
// sets of that grammar (token_constraint.h). Thread-safe. Failures are not cached.
#pragma once

#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "grammar/grammar.h"
#include "util/status.h"

namespace qb {

class GrammarCache {
 public:
  explicit GrammarCache(size_t capacity = 128) : capacity_(capacity) {}

  using Build = std::function<Result<std::shared_ptr<const Grammar>>()>;
  Result<std::shared_ptr<const Grammar>> GetOrBuild(const std::string& key, const Build& build);

 private:
  std::mutex mu_;
  size_t capacity_;
  std::list<std::pair<std::string, std::shared_ptr<const Grammar>>> grammars_;  // most recent first
  std::unordered_map<std::string, decltype(grammars_)::iterator> index_;
};

}  // namespace qb
