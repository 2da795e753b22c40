#include "resources/cgroup_sandbox.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

namespace qb {

namespace fs = std::filesystem;

namespace {

const fs::path kRoot = "/sys/fs/cgroup";

bool WriteFile(const fs::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
  out.flush();
  return static_cast<bool>(out);
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int64_t StatValue(const std::string& text, const std::string& key) {
  std::istringstream ss(text);
  std::string k;
  int64_t v = 0;
  while (ss >> k >> v)
    if (k == key) return v;
  return 0;
}

}  // namespace

Result<std::unique_ptr<CgroupSandbox>> CgroupSandbox::Create(const std::string& name, int64_t memory_bytes, double cpus,
                                                             const std::string& cpuset) {
  std::unique_ptr<CgroupSandbox> s(new CgroupSandbox());
  std::error_code ec;
  const std::string controllers = ReadFile(kRoot / "cgroup.subtree_control");
  if (fs::exists(kRoot / "cgroup.controllers", ec) && controllers.find("memory") != std::string::npos &&
      controllers.find("cpu") != std::string::npos) {
    s->v2_ = true;
    const fs::path dir = kRoot / name;
    if (!fs::create_directory(dir, ec)) return IoError(fmt::format("cannot create the cgroup {}: {}", dir.string(), ec.message()));
    s->dirs_.push_back(dir.string());
    if (memory_bytes > 0 && (!WriteFile(dir / "memory.max", std::to_string(memory_bytes)) ||
                             !WriteFile(dir / "memory.swap.max", "0")))
      return IoError(fmt::format("cannot set {}/memory.max", dir.string()));
    if (cpus > 0 && !WriteFile(dir / "cpu.max", fmt::format("{} 100000", static_cast<int64_t>(cpus * 100000))))
      return IoError(fmt::format("cannot set {}/cpu.max", dir.string()));
    if (!cpuset.empty()) WriteFile(dir / "cpuset.cpus", cpuset);
    return s;
  }
  for (const char* controller : {"memory", "cpu"}) {
    const fs::path dir = kRoot / controller / name;
    if (!fs::exists(kRoot / controller, ec))
      return Unimplemented(fmt::format("no cgroup v1 {} controller at {} and no delegated v2 memory/cpu controllers",
                                       controller, (kRoot / controller).string()));
    if (!fs::create_directory(dir, ec))
      return IoError(fmt::format("cannot create the cgroup {} ({}; tune needs root or a delegated cgroup)", dir.string(),
                                 ec ? ec.message() : "it exists"));
    s->dirs_.push_back(dir.string());
  }
  const fs::path mem = s->dirs_[0], cpu = s->dirs_[1];
  if (memory_bytes > 0) {
    if (!WriteFile(mem / "memory.limit_in_bytes", std::to_string(memory_bytes)))
      return IoError(fmt::format("cannot set {}/memory.limit_in_bytes", mem.string()));
    WriteFile(mem / "memory.memsw.limit_in_bytes", std::to_string(memory_bytes));  // no swap, where counted
  }
  if (cpus > 0 && (!WriteFile(cpu / "cpu.cfs_period_us", "100000") ||
                   !WriteFile(cpu / "cpu.cfs_quota_us", std::to_string(static_cast<int64_t>(cpus * 100000)))))
    return IoError(fmt::format("cannot set the CPU quota in {}", cpu.string()));
  if (!cpuset.empty() && fs::exists(kRoot / "cpuset", ec)) {
    const fs::path cs = kRoot / "cpuset" / name;
    if (fs::create_directory(cs, ec)) {
      s->dirs_.push_back(cs.string());
      WriteFile(cs / "cpuset.mems", ReadFile(kRoot / "cpuset" / "cpuset.mems"));
      WriteFile(cs / "cpuset.cpus", cpuset);
    }
  }
  return s;
}

CgroupSandbox::~CgroupSandbox() {
  for (pid_t pid : pids_) {
    if (::kill(pid, 0) == 0) {
      ::kill(pid, SIGKILL);
    }
    ::waitpid(pid, nullptr, WNOHANG);
  }
  // rmdir succeeds only once every task has left; give killed ones a moment.
  for (const std::string& d : dirs_) {
    std::error_code ec;
    for (int i = 0; i < 50 && !fs::remove(d, ec); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<pid_t> CgroupSandbox::Spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  if (argv.empty()) return InvalidArgument("nothing to run");
  std::vector<std::string> procs;
  for (const std::string& d : dirs_) procs.push_back((fs::path(d) / "cgroup.procs").string());
  const pid_t pid = ::fork();
  if (pid < 0) return IoError("fork failed");
  if (pid == 0) {
    // The child joins the cgroups before exec, so everything it allocates is charged there.
    const std::string self = std::to_string(::getpid());
    for (const std::string& p : procs) {
      const int fd = ::open(p.c_str(), O_WRONLY);
      if (fd < 0 || ::write(fd, self.data(), self.size()) < 0) ::_exit(126);
      ::close(fd);
    }
    const int out = ::open(log_path.empty() ? "/dev/null" : log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out >= 0) {
      ::dup2(out, 1);
      ::dup2(out, 2);
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  pids_.push_back(pid);
  return pid;
}

int64_t CgroupSandbox::OomKills() const {
  const fs::path mem = dirs_[0];
  if (v2_) return StatValue(ReadFile(mem / "memory.events"), "oom_kill");
  return StatValue(ReadFile(mem / "memory.oom_control"), "oom_kill");
}

int64_t CgroupSandbox::PeakBytes() const {
  const fs::path mem = dirs_[0];
  const std::string t = ReadFile(mem / (v2_ ? "memory.peak" : "memory.max_usage_in_bytes"));
  try {
    return t.empty() ? 0 : std::stoll(t);
  } catch (...) {
    return 0;
  }
}

}  // namespace qb
