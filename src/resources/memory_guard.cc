#include "resources/memory_guard.h"

namespace qb {

MemoryGuard::MemoryGuard(ResourceLimits limits, std::optional<int64_t> limit, bool from_cgroup, int64_t reserve_bytes)
    : limits_(std::move(limits)), limit_(limit), from_cgroup_(from_cgroup), reserve_(reserve_bytes) {}

MemorySample MemoryGuard::Sample() {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (last_time_ != std::chrono::steady_clock::time_point{} && now - last_time_ < std::chrono::milliseconds(50))
    return last_;
  MemorySample s;
  s.limit_bytes = limit_;
  std::optional<int64_t> used;
  if (from_cgroup_) used = CgroupWorkingSet(limits_);
  s.used_bytes = used ? *used : ProcessResidentBytes();
  last_ = s;
  last_time_ = now;
  return s;
}

bool MemoryGuard::ShouldShed() {
  if (!limit_) return false;
  const auto headroom = Sample().headroom_bytes();
  if (headroom && *headroom < reserve_) {
    shed_.fetch_add(1);
    return true;
  }
  return false;
}

}  // namespace qb
