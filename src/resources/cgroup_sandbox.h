// Runs a command inside a fresh cgroup with a memory limit and a CPU quota (cgroup v2 when its
// memory and cpu controllers are delegated, else v1 memory + cpu): what `qwenbox tune` uses to
// try configurations under the budget a container would give them. Needs root (or a delegated
// cgroup); Create() says why when it cannot.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "util/status.h"

namespace qb {

class CgroupSandbox {
 public:
  // memory_bytes / cpus <= 0: no limit of that kind. `cpuset` ("0-1"): optional pinning.
  static Result<std::unique_ptr<CgroupSandbox>> Create(const std::string& name, int64_t memory_bytes, double cpus,
                                                       const std::string& cpuset = "");
  ~CgroupSandbox();  // kills what still runs inside, then removes the cgroup

  // Starts argv inside the cgroup; stdout and stderr go to `log_path` ("" = /dev/null).
  Result<pid_t> Spawn(const std::vector<std::string>& argv, const std::string& log_path);
  // OOM kills in this cgroup so far.
  int64_t OomKills() const;
  // Peak memory charged (v1 max_usage_in_bytes, v2 memory.peak where the kernel has it; else 0).
  int64_t PeakBytes() const;
  std::string version() const { return v2_ ? "v2" : "v1"; }

 private:
  CgroupSandbox() = default;
  bool v2_ = false;
  std::vector<std::string> dirs_;  // v2: one; v1: memory, cpu (and cpuset)
  std::vector<pid_t> pids_;
};

}  // namespace qb
