#include "grammar/grammar_cache.h"

namespace qb {

Result<std::shared_ptr<const Grammar>> GrammarCache::GetOrBuild(const std::string& key, const Build& build) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = index_.find(key); it != index_.end()) {
      grammars_.splice(grammars_.begin(), grammars_, it->second);
      return it->second->second;
    }
  }
  // Built outside the lock (a large schema takes a while); two requests racing build it twice.
  QB_ASSIGN_OR_RETURN(std::shared_ptr<const Grammar> g, build());
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = index_.find(key); it != index_.end()) return it->second->second;
  grammars_.emplace_front(key, g);
  index_[key] = grammars_.begin();
  if (grammars_.size() > capacity_) {
    index_.erase(grammars_.back().first);
    grammars_.pop_back();
  }
  return g;
}

}  // namespace qb
