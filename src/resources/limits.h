// What this process may use: the cgroup memory limit and CPU quota (v1 or v2; inside a
// container, whose own cgroup is mounted at the root, or outside, found from /proc/self/cgroup),
// the cpuset, /dev/shm, host memory and cores.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "util/status.h"

namespace qb {

struct ResourceLimits {
  std::string cgroup_version = "none";       // "v1", "v2" or "none"
  std::optional<int64_t> memory_max;         // bytes; nullopt = unlimited
  std::optional<int64_t> memory_high;        // v2 throttling threshold
  std::optional<double> cpu_quota;           // CPUs (quota / period); nullopt = unlimited
  int cpuset_cpus = 0;                       // CPUs in the affinity mask
  int host_cores = 0;
  int64_t host_memory_bytes = 0;
  int64_t shm_bytes = 0;                     // size of /dev/shm
  std::string memory_cgroup;                 // the directory read (for usage)

  // The effective memory limit: the smaller of memory.max / memory.high, else nullopt.
  std::optional<int64_t> MemoryLimit() const;
  // Compute threads the quota allows: floor(quota), at least 1, at most the cpuset and cores.
  int Threads() const;
};

// Where to look (tests point these at fixture directories).
struct CgroupPaths {
  std::string root = "/sys/fs/cgroup";
  std::string proc_self_cgroup = "/proc/self/cgroup";
  std::string meminfo = "/proc/meminfo";
  std::string shm = "/dev/shm";
};

ResourceLimits DetectLimits(const CgroupPaths& paths = {});
// Memory the cgroup charges now (v2 memory.current / v1 memory.usage_in_bytes); nullopt when
// unknown. Includes reclaimable page cache.
std::optional<int64_t> CgroupMemoryUsage(const ResourceLimits& limits);
// The cgroup's working set: usage less its inactive file pages (page cache the kernel reclaims
// before it OOM-kills), as the kubelet counts it; nullopt when unknown.
std::optional<int64_t> CgroupWorkingSet(const ResourceLimits& limits);
// This process's resident set (anonymous and mapped file pages), from /proc/self/statm.
int64_t ProcessResidentBytes();
// MemAvailable from /proc/meminfo (bytes; 0 when unknown).
int64_t HostAvailableMemory(const std::string& meminfo = "/proc/meminfo");
// A value from a limit file: "max", "-1" and anything >= 2^62 are unlimited (nullopt).
std::optional<int64_t> ParseLimitValue(const std::string& text);

}  // namespace qb
