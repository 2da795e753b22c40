// QB_CHECK: invariants of qwenbox's own code. A failure is a bug, never bad input: it prints
// where and why, then aborts. Bad input goes through Status (status.h).
#pragma once

#include <fmt/format.h>

namespace qb::detail {
[[noreturn]] void CheckFailed(const char* file, int line, const char* cond, const std::string& msg);
}  // namespace qb::detail

#define QB_CHECK(cond, ...)                                                                  \
  do {                                                                                      \
    if (!(cond)) [[unlikely]]                                                               \
      ::qb::detail::CheckFailed(__FILE__, __LINE__, #cond, ::fmt::format("" __VA_ARGS__)); \
  } while (0)
