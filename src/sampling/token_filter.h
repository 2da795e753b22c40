// Restricts which tokens a sampler may pick (structured output: a grammar decides). The sampler
// asks about its first pick (cheap) and only when that is refused asks for the whole set.
#pragma once

#include <cstdint>
#include <vector>

namespace qb {

class TokenFilter {
 public:
  virtual ~TokenFilter() = default;
  virtual bool Allows(int32_t id) = 0;
  // Sets allowed[id] to 1 for every allowed id and 0 for the others (resized to the
  // vocabulary); returns how many are allowed.
  virtual int64_t Allowed(std::vector<uint8_t>& allowed) = 0;
};

}  // namespace qb
