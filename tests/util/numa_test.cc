// util/numa.h: cpulist parsing, node detection from a sysfs-like tree, rank placement, and the
// two system calls on this machine's own node(s).
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "util/numa.h"

namespace qb {
namespace {

constexpr unsigned long kMpolFNode = 1, kMpolFAddr = 2;  // linux/mempolicy.h (no libnuma needed)

std::vector<int> AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

TEST(NumaTest, ParsesCpuLists) {
  EXPECT_EQ(ParseCpuList("0-3,8,10-11\n"), (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(ParseCpuList("5"), (std::vector<int>{5}));
  EXPECT_EQ(ParseCpuList(""), std::vector<int>{});
  EXPECT_FALSE(ParseCpuList("3-1"));
  EXPECT_FALSE(ParseCpuList("a-b"));
  EXPECT_FALSE(ParseCpuList("1,,2"));
}

TEST(NumaTest, DetectsNodesWithTheCpusThisProcessMayUse) {
  const std::vector<int> allowed = AllowedCpus();
  ASSERT_FALSE(allowed.empty());
  const auto root = std::filesystem::temp_directory_path() / ("qb_numa_" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  auto node = [&root](const std::string& name, const std::string& cpulist) {
    std::filesystem::create_directories(root / name);
    std::ofstream(root / name / "cpulist") << cpulist << "\n";
  };
  // node1 holds the first allowed CPU, node0 the rest (if any), node7 only CPUs no one may use.
  node("node1", std::to_string(allowed[0]));
  std::string rest;
  for (size_t i = 1; i < allowed.size(); ++i) {
    if (!rest.empty()) rest += ',';
    rest += std::to_string(allowed[i]);
  }
  node("node0", rest);
  node("node7", "4000-4001");
  node("power", "0");
  const std::vector<NumaNode> nodes = DetectNumaNodes(root.string());
  std::filesystem::remove_all(root);
  ASSERT_EQ(nodes.size(), allowed.size() > 1 ? 2u : 1u);
  EXPECT_EQ(nodes.back().id, 1);
  EXPECT_EQ(nodes.back().cpus, std::vector<int>{allowed[0]});
  if (allowed.size() > 1) {
    EXPECT_EQ(nodes.front().cpus, std::vector<int>(allowed.begin() + 1, allowed.end()));
  }
  EXPECT_TRUE(DetectNumaNodes("/nonexistent/sysfs").empty());
}

TEST(NumaTest, PlacesOneRankPerNodeOnlyWhenEveryRankFitsANode) {
  const std::vector<NumaNode> nodes = {{0, {0, 1, 2, 3}}, {1, {4, 5, 6, 7}}, {2, {8, 9}}};
  const auto two = PlaceRanksOnNodes(nodes, 2, 4);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[1].id, 1);
  EXPECT_EQ(two[1].cpus, (std::vector<int>{4, 5, 6, 7}));
  EXPECT_TRUE(PlaceRanksOnNodes(nodes, 3, 4).empty());  // node 2 has 2 CPUs for 4 threads
  EXPECT_EQ(PlaceRanksOnNodes(nodes, 3, 2).size(), 3u);
  EXPECT_TRUE(PlaceRanksOnNodes(nodes, 4, 1).empty());  // more ranks than nodes
  EXPECT_TRUE(PlaceRanksOnNodes(nodes, 1, 1).empty());  // one rank: nothing to place
}

TEST(NumaTest, PinsAThreadAndMovesMemoryOnThisMachine) {
  const std::vector<int> allowed = AllowedCpus();
  int cpu = -1;
  std::thread t([&] {
    ASSERT_TRUE(PinCurrentThread({allowed.back()}).ok());
    cpu = sched_getcpu();
  });
  t.join();
  EXPECT_EQ(cpu, allowed.back());

  const std::vector<NumaNode> nodes = DetectNumaNodes();
  if (nodes.empty()) GTEST_SKIP() << "no NUMA nodes in sysfs";
  const size_t bytes = 4 << 20;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  std::memset(p, 1, bytes);
  const Status s = MoveToNode(p, bytes, nodes.back().id);
  if (!s.ok() && s.message().find("Operation not permitted") != std::string::npos) {
    munmap(p, bytes);
    GTEST_SKIP() << s.message();
  }
  EXPECT_TRUE(s.ok()) << s.message();
  int node = -1;
  EXPECT_EQ(syscall(SYS_get_mempolicy, &node, nullptr, 0ul, static_cast<char*>(p) + bytes / 2, kMpolFNode | kMpolFAddr),
            0);
  EXPECT_EQ(node, nodes.back().id);
  EXPECT_FALSE(MoveToNode(p, bytes, -1).ok());
  munmap(p, bytes);
}

}  // namespace
}  // namespace qb
