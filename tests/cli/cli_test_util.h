// What the CLI test files share: the qwenbox binary under test (its path set by CMake).
#pragma once

#include <string>

namespace qb::test {

inline const std::string kQwenbox = QB_BINARY;

}  // namespace qb::test
