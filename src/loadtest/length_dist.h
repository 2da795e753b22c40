// Token-length distributions for synthetic requests: "128" (fixed), "uniform:64:256",
// "normal:128:32" (rounded, at least 1).
#pragma once

#include <cstdint>
#include <random>
#include <string>

#include "util/status.h"

namespace qb::loadtest {

class LengthDist {
 public:
  static Result<LengthDist> Parse(const std::string& spec);
  int64_t Sample(std::mt19937_64& rng) const;
  std::string ToString() const;

 private:
  enum class Kind { kFixed, kUniform, kNormal };
  Kind kind_ = Kind::kFixed;
  double a_ = 1, b_ = 0;
};

}  // namespace qb::loadtest
