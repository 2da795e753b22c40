#include "resources/limits.h"

#include <sched.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace qb {

namespace fs = std::filesystem;

namespace {

std::optional<std::string> ReadText(const fs::path& p) {
  std::ifstream in(p);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The cgroup path of a controller from /proc/self/cgroup ("" for v2's "0::" line).
std::optional<std::string> CgroupPathOf(const std::string& proc_self_cgroup, const std::string& controller) {
  std::ifstream in(proc_self_cgroup);
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string ctrls = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    if (controller.empty() ? ctrls.empty() : ("," + ctrls + ",").find("," + controller + ",") != std::string::npos)
      return path;
  }
  return std::nullopt;
}

// Candidate directories for a cgroup: the path from /proc/self/cgroup under the mount, and the
// mount root itself (a container sees its own cgroup there while /proc shows the host path).
std::vector<fs::path> Candidates(const fs::path& mount, const std::optional<std::string>& path) {
  std::vector<fs::path> out;
  if (path && *path != "/") out.push_back(mount / path->substr(path->front() == '/' ? 1 : 0));
  out.push_back(mount);
  return out;
}

// The smallest limit in `file` from `dir` up to the mount (ancestors limit their children).
std::optional<int64_t> MinUpwards(fs::path dir, const fs::path& mount, const std::string& file) {
  std::optional<int64_t> best;
  while (true) {
    if (auto t = ReadText(dir / file)) {
      if (auto v = ParseLimitValue(*t)) best = best ? std::min(*best, *v) : *v;
    }
    if (dir == mount || !dir.has_parent_path() || dir.parent_path() == dir) break;
    if (dir.string().size() <= mount.string().size()) break;
    dir = dir.parent_path();
  }
  return best;
}

int64_t MeminfoField(const std::string& meminfo, const std::string& field) {
  std::ifstream in(meminfo);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string key;
    int64_t kb = 0;
    if (ss >> key >> kb && key == field) return kb * 1024;
  }
  return 0;
}

// A "key value" line of a memory.stat file.
std::optional<int64_t> StatField(const fs::path& file, const std::string& field) {
  std::ifstream in(file);
  std::string key;
  int64_t value = 0;
  while (in >> key >> value)
    if (key == field) return value;
  return std::nullopt;
}

}  // namespace

std::optional<int64_t> ParseLimitValue(const std::string& text) {
  if (text.empty() || text == "max") return std::nullopt;
  try {
    const long long v = std::stoll(text);
    if (v < 0 || v >= (int64_t{1} << 62)) return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<int64_t> ResourceLimits::MemoryLimit() const {
  if (memory_max && memory_high) return std::min(*memory_max, *memory_high);
  return memory_max ? memory_max : memory_high;
}

int ResourceLimits::Threads() const {
  int cap = std::max(1, std::min(cpuset_cpus > 0 ? cpuset_cpus : host_cores, host_cores > 0 ? host_cores : 1));
  if (!cpu_quota) return cap;
  return std::clamp(static_cast<int>(std::floor(*cpu_quota + 1e-9)), 1, cap);
}

ResourceLimits DetectLimits(const CgroupPaths& p) {
  ResourceLimits r;
  r.host_cores = static_cast<int>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
  r.host_memory_bytes = MeminfoField(p.meminfo, "MemTotal:");
  cpu_set_t set;
  r.cpuset_cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : r.host_cores;
  struct statvfs vfs {};
  if (statvfs(p.shm.c_str(), &vfs) == 0) r.shm_bytes = static_cast<int64_t>(vfs.f_blocks) * static_cast<int64_t>(vfs.f_frsize);
  const fs::path root(p.root);
  std::error_code ec;
  // cgroup v2: one hierarchy with cgroup.controllers at the root of the mount.
  if (fs::exists(root / "cgroup.controllers", ec)) {
    r.cgroup_version = "v2";
    const auto path = CgroupPathOf(p.proc_self_cgroup, "");
    for (const fs::path& dir : Candidates(root, path)) {
      if (!fs::exists(dir / "memory.max", ec) && !fs::exists(dir / "cpu.max", ec)) continue;
      r.memory_cgroup = dir.string();
      r.memory_max = MinUpwards(dir, root, "memory.max");
      r.memory_high = MinUpwards(dir, root, "memory.high");
      if (auto cpu = ReadText(dir / "cpu.max")) {
        std::istringstream ss(*cpu);
        std::string quota;
        int64_t period = 100000;
        ss >> quota >> period;
        if (auto q = ParseLimitValue(quota); q && period > 0) r.cpu_quota = static_cast<double>(*q) / static_cast<double>(period);
      }
      break;
    }
    return r;
  }
  // cgroup v1: one mount per controller (memory, cpu or "cpu,cpuacct").
  const fs::path mem_mount = root / "memory";
  if (fs::exists(mem_mount, ec)) {
    r.cgroup_version = "v1";
    for (const fs::path& dir : Candidates(mem_mount, CgroupPathOf(p.proc_self_cgroup, "memory"))) {
      if (!fs::exists(dir / "memory.limit_in_bytes", ec)) continue;
      r.memory_cgroup = dir.string();
      r.memory_max = MinUpwards(dir, mem_mount, "memory.limit_in_bytes");
      // memory.stat's hierarchical_memory_limit includes the ancestors' limits.
      if (auto stat = ReadText(dir / "memory.stat")) {
        std::istringstream ss(*stat);
        std::string key;
        std::string value;
        while (ss >> key >> value)
          if (key == "hierarchical_memory_limit")
            if (auto v = ParseLimitValue(value)) r.memory_max = r.memory_max ? std::min(*r.memory_max, *v) : *v;
      }
      break;
    }
  }
  for (const char* name : {"cpu", "cpu,cpuacct", "cpuacct,cpu"}) {
    const fs::path cpu_mount = root / name;
    if (!fs::exists(cpu_mount, ec)) continue;
    if (r.cgroup_version == "none") r.cgroup_version = "v1";
    for (const fs::path& dir : Candidates(cpu_mount, CgroupPathOf(p.proc_self_cgroup, "cpu"))) {
      auto quota = ReadText(dir / "cpu.cfs_quota_us");
      auto period = ReadText(dir / "cpu.cfs_period_us");
      if (!quota || !period) continue;
      const auto q = ParseLimitValue(*quota), per = ParseLimitValue(*period);
      if (q && per && *per > 0) r.cpu_quota = static_cast<double>(*q) / static_cast<double>(*per);
      break;
    }
    break;
  }
  return r;
}

std::optional<int64_t> CgroupMemoryUsage(const ResourceLimits& l) {
  if (l.memory_cgroup.empty()) return std::nullopt;
  const fs::path dir(l.memory_cgroup);
  auto t = ReadText(dir / (l.cgroup_version == "v2" ? "memory.current" : "memory.usage_in_bytes"));
  if (!t) return std::nullopt;
  return ParseLimitValue(*t);
}

std::optional<int64_t> CgroupWorkingSet(const ResourceLimits& l) {
  auto usage = CgroupMemoryUsage(l);
  if (!usage) return std::nullopt;
  const bool v2 = l.cgroup_version == "v2";
  const auto inactive = StatField(fs::path(l.memory_cgroup) / "memory.stat", v2 ? "inactive_file" : "total_inactive_file");
  return std::max<int64_t>(0, *usage - inactive.value_or(0));
}

int64_t ProcessResidentBytes() {
  long pages = 0, resident = 0;
  std::ifstream in("/proc/self/statm");
  if (!(in >> pages >> resident)) return 0;
  return static_cast<int64_t>(resident) * ::sysconf(_SC_PAGESIZE);
}

int64_t HostAvailableMemory(const std::string& meminfo) { return MeminfoField(meminfo, "MemAvailable:"); }

}  // namespace qb
