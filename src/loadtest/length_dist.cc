#include "loadtest/length_dist.h"

#include <cmath>
#include <sstream>
#include <vector>

#include <fmt/format.h>

namespace qb::loadtest {

Result<LengthDist> LengthDist::Parse(const std::string& spec) {
  std::vector<std::string> parts;
  std::stringstream ss(spec);
  for (std::string p; std::getline(ss, p, ':');) parts.push_back(p);
  auto bad = [&] {
    return InvalidArgument(fmt::format("\"{}\": a length is N, uniform:MIN:MAX or normal:MEAN:STDDEV", spec));
  };
  auto num = [](const std::string& s, double* v) {
    try {
      size_t used = 0;
      *v = std::stod(s, &used);
      return used == s.size() && std::isfinite(*v);
    } catch (...) {
      return false;
    }
  };
  LengthDist d;
  if (parts.size() == 1) {
    if (!num(parts[0], &d.a_) || d.a_ < 1 || d.a_ != std::floor(d.a_)) return bad();
    d.kind_ = Kind::kFixed;
  } else if (parts.size() == 3 && (parts[0] == "uniform" || parts[0] == "normal")) {
    if (!num(parts[1], &d.a_) || !num(parts[2], &d.b_)) return bad();
    d.kind_ = parts[0] == "uniform" ? Kind::kUniform : Kind::kNormal;
    if (d.kind_ == Kind::kUniform && (d.a_ < 1 || d.b_ < d.a_)) return bad();
    if (d.kind_ == Kind::kNormal && (d.a_ < 1 || d.b_ < 0)) return bad();
  } else {
    return bad();
  }
  return d;
}

int64_t LengthDist::Sample(std::mt19937_64& rng) const {
  switch (kind_) {
    case Kind::kFixed:
      return static_cast<int64_t>(a_);
    case Kind::kUniform:
      return std::uniform_int_distribution<int64_t>(static_cast<int64_t>(a_), static_cast<int64_t>(b_))(rng);
    case Kind::kNormal:
      return std::max<int64_t>(1, std::llround(std::normal_distribution<double>(a_, b_)(rng)));
  }
  return 1;
}

std::string LengthDist::ToString() const {
  switch (kind_) {
    case Kind::kFixed:
      return fmt::format("{:g}", a_);
    case Kind::kUniform:
      return fmt::format("uniform:{:g}:{:g}", a_, b_);
    case Kind::kNormal:
      return fmt::format("normal:{:g}:{:g}", a_, b_);
  }
  return "";
}

}  // namespace qb::loadtest
