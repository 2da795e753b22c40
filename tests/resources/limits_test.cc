// Detection of container limits from cgroup files: fixture trees laid out as cgroup v1 and v2
// mounts (with the paths /proc/self/cgroup would give), so every branch runs on any machine.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/test_paths.h"
#include "resources/limits.h"

namespace qb {
namespace {

namespace fs = std::filesystem;
using test::WriteBytes;

struct Fixture {
  std::string dir = test::ScratchDir();
  CgroupPaths paths;
  Fixture() {
    paths.root = dir + "/cgroup";
    paths.proc_self_cgroup = dir + "/proc_self_cgroup";
    paths.meminfo = dir + "/meminfo";
    paths.shm = dir;
    WriteBytes(paths.meminfo, "MemTotal:       16384000 kB\nMemFree:  1000 kB\nMemAvailable:   8192000 kB\n");
  }
  void File(const std::string& rel, const std::string& text) {
    const fs::path p = fs::path(paths.root) / rel;
    fs::create_directories(p.parent_path());
    WriteBytes(p.string(), text + "\n");
  }
};

TEST(ParseLimitValue, UnlimitedSpellings) {
  EXPECT_FALSE(ParseLimitValue("max"));
  EXPECT_FALSE(ParseLimitValue("-1"));
  EXPECT_FALSE(ParseLimitValue("9223372036854771712"));  // v1's "no limit"
  EXPECT_FALSE(ParseLimitValue(""));
  EXPECT_FALSE(ParseLimitValue("lots"));
  EXPECT_EQ(ParseLimitValue("268435456"), 268435456);
  EXPECT_EQ(ParseLimitValue("0"), 0);
}

TEST(DetectLimits, CgroupV2NestedLimitsTakeTheSmallest) {
  Fixture f;
  f.File("cgroup.controllers", "cpuset cpu io memory pids");
  f.File("kubepods/memory.max", "1073741824");  // the pod: 1 GiB
  f.File("kubepods/pod1/memory.max", "max");
  f.File("kubepods/pod1/ctr/memory.max", "2147483648");  // the container says 2 GiB, the pod wins
  f.File("kubepods/pod1/ctr/memory.high", "max");
  f.File("kubepods/pod1/ctr/cpu.max", "150000 100000");
  f.File("kubepods/pod1/ctr/memory.current", "104857600");
  f.File("kubepods/pod1/ctr/memory.stat", "anon 50000000\ninactive_file 4857600\nactive_file 1000\n");
  WriteBytes(f.paths.proc_self_cgroup, "0::/kubepods/pod1/ctr\n");
  const ResourceLimits l = DetectLimits(f.paths);
  EXPECT_EQ(l.cgroup_version, "v2");
  EXPECT_EQ(l.memory_max, int64_t{1} << 30);
  EXPECT_FALSE(l.memory_high);
  EXPECT_EQ(l.MemoryLimit(), int64_t{1} << 30);
  ASSERT_TRUE(l.cpu_quota);
  EXPECT_DOUBLE_EQ(*l.cpu_quota, 1.5);
  EXPECT_EQ(l.host_memory_bytes, int64_t{16384000} * 1024);
  EXPECT_EQ(CgroupMemoryUsage(l), 104857600);
  EXPECT_EQ(CgroupWorkingSet(l), 104857600 - 4857600);
  EXPECT_EQ(HostAvailableMemory(f.paths.meminfo), int64_t{8192000} * 1024);
}

TEST(DetectLimits, CgroupV2MemoryHighAndUnlimitedCpu) {
  Fixture f;
  f.File("cgroup.controllers", "cpu memory");
  f.File("memory.max", "max");
  f.File("memory.high", "805306368");
  f.File("cpu.max", "max 100000");
  WriteBytes(f.paths.proc_self_cgroup, "0::/\n");  // inside a container: its cgroup is the root
  const ResourceLimits l = DetectLimits(f.paths);
  EXPECT_EQ(l.cgroup_version, "v2");
  EXPECT_FALSE(l.memory_max);
  EXPECT_EQ(l.MemoryLimit(), 805306368);
  EXPECT_FALSE(l.cpu_quota);
}

TEST(DetectLimits, CgroupV1WithHierarchicalLimit) {
  Fixture f;
  f.File("memory/docker/abc/memory.limit_in_bytes", "9223372036854771712");
  f.File("memory/docker/abc/memory.stat", "cache 0\nrss 1000\nhierarchical_memory_limit 536870912\ntotal_inactive_file 300\n");
  f.File("memory/docker/abc/memory.usage_in_bytes", "1300");
  f.File("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "50000");
  f.File("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000");
  WriteBytes(f.paths.proc_self_cgroup, "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n");
  const ResourceLimits l = DetectLimits(f.paths);
  EXPECT_EQ(l.cgroup_version, "v1");
  EXPECT_EQ(l.memory_max, 536870912);
  ASSERT_TRUE(l.cpu_quota);
  EXPECT_DOUBLE_EQ(*l.cpu_quota, 0.5);
  EXPECT_EQ(CgroupWorkingSet(l), 1000);
}

TEST(DetectLimits, CgroupV1FallsBackToTheMountRoot) {
  // Inside a podman container on v1: /proc/self/cgroup names the host's path, but only the
  // container's own cgroup is mounted.
  Fixture f;
  f.File("memory/memory.limit_in_bytes", "268435456");
  f.File("cpu/cpu.cfs_quota_us", "-1");
  f.File("cpu/cpu.cfs_period_us", "100000");
  WriteBytes(f.paths.proc_self_cgroup, "4:memory:/machine.slice/libpod-123.scope\n1:cpu:/machine.slice/libpod-123.scope\n");
  const ResourceLimits l = DetectLimits(f.paths);
  EXPECT_EQ(l.cgroup_version, "v1");
  EXPECT_EQ(l.memory_max, 268435456);
  EXPECT_FALSE(l.cpu_quota);
  EXPECT_EQ(l.memory_cgroup, fs::path(f.paths.root + "/memory").string());
}

TEST(DetectLimits, NoCgroupsAtAll) {
  Fixture f;
  fs::create_directories(f.paths.root);
  WriteBytes(f.paths.proc_self_cgroup, "");
  const ResourceLimits l = DetectLimits(f.paths);
  EXPECT_EQ(l.cgroup_version, "none");
  EXPECT_FALSE(l.MemoryLimit());
  EXPECT_FALSE(CgroupMemoryUsage(l));
  EXPECT_GE(l.Threads(), 1);
}

TEST(ResourceLimits, ThreadsFollowTheQuota) {
  ResourceLimits l;
  l.host_cores = 16;
  l.cpuset_cpus = 16;
  EXPECT_EQ(l.Threads(), 16);
  l.cpu_quota = 0.5;
  EXPECT_EQ(l.Threads(), 1);  // never zero
  l.cpu_quota = 2.0;
  EXPECT_EQ(l.Threads(), 2);
  l.cpu_quota = 3.9;
  EXPECT_EQ(l.Threads(), 3);  // floor: a fourth thread would be throttled
  l.cpu_quota = 64;
  EXPECT_EQ(l.Threads(), 16);  // at most the cores
  l.cpuset_cpus = 4;
  EXPECT_EQ(l.Threads(), 4);  // and the cpuset
}

TEST(ResourceLimits, MemoryLimitIsTheSmallerOfMaxAndHigh) {
  ResourceLimits l;
  EXPECT_FALSE(l.MemoryLimit());
  l.memory_max = 1000;
  EXPECT_EQ(l.MemoryLimit(), 1000);
  l.memory_high = 800;
  EXPECT_EQ(l.MemoryLimit(), 800);
}

TEST(ProcessResidentBytes, SeesItsOwnAllocations) {
  const int64_t before = ProcessResidentBytes();
  EXPECT_GT(before, 0);
  std::vector<char> block(64 << 20, 1);  // touched: resident
  EXPECT_GE(ProcessResidentBytes(), before + (48 << 20));
  EXPECT_EQ(block[12345], 1);
}

}  // namespace
}  // namespace qb
