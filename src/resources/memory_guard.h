// The runtime guard: samples the memory in use against the limit and says when to stop admitting
// requests (429) so the container is never OOM-killed. In use is the cgroup's working set (usage
// less reclaimable page cache) when the limit is the cgroup's, else this process's resident set.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

#include "resources/limits.h"

namespace qb {

struct MemorySample {
  int64_t used_bytes = 0;
  std::optional<int64_t> limit_bytes;
  // limit - used (nullopt without a limit).
  std::optional<int64_t> headroom_bytes() const {
    if (!limit_bytes) return std::nullopt;
    return *limit_bytes - used_bytes;
  }
};

class MemoryGuard {
 public:
  // `limit`: the effective limit (nullopt: the guard never sheds). `from_cgroup`: measure the
  // cgroup's working set (else the process's resident set). Below `reserve_bytes` of headroom new
  // requests are refused.
  MemoryGuard(ResourceLimits limits, std::optional<int64_t> limit, bool from_cgroup, int64_t reserve_bytes);

  // A fresh sample at most every 50 ms (cached in between); thread-safe.
  MemorySample Sample();
  // True when new work should be refused now.
  bool ShouldShed();
  int64_t reserve_bytes() const { return reserve_; }
  std::optional<int64_t> limit() const { return limit_; }
  int64_t shed_count() const { return shed_.load(); }

 private:
  ResourceLimits limits_;
  std::optional<int64_t> limit_;
  bool from_cgroup_;
  int64_t reserve_;
  std::mutex mu_;
  MemorySample last_;
  std::chrono::steady_clock::time_point last_time_{};
  std::atomic<int64_t> shed_{0};
};

}  // namespace qb
