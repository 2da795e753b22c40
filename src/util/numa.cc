#include "util/numa.h"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace qb {

namespace {

constexpr int kMpolPreferred = 1;  // linux/mempolicy.h
constexpr unsigned kMpolMfMove = 1u << 1;

std::optional<int> ParseInt(std::string_view s) {
  int v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

}  // namespace

std::optional<std::vector<int>> ParseCpuList(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  std::vector<int> cpus;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view part = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const size_t dash = part.find('-');
    const auto first = ParseInt(part.substr(0, dash));
    const auto last = dash == std::string_view::npos ? first : ParseInt(part.substr(dash + 1));
    if (!first || !last || *last < *first) return std::nullopt;
    for (int c = *first; c <= *last; ++c) cpus.push_back(c);
  }
  return cpus;
}

std::vector<NumaNode> DetectNumaNodes(const std::string& root) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  const bool have_mask = sched_getaffinity(0, sizeof(allowed), &allowed) == 0;
  std::vector<NumaNode> nodes;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("node", 0) != 0) continue;
    const auto id = ParseInt(std::string_view(name).substr(4));
    if (!id) continue;
    std::ifstream in(entry.path() / "cpulist");
    std::stringstream text;
    text << in.rdbuf();
    const auto cpus = ParseCpuList(text.str());
    if (!cpus) continue;
    NumaNode node{*id, {}};
    for (int c : *cpus)
      if (!have_mask || (c < CPU_SETSIZE && CPU_ISSET(c, &allowed))) node.cpus.push_back(c);
    if (!node.cpus.empty()) nodes.push_back(std::move(node));
  }
  std::sort(nodes.begin(), nodes.end(), [](const NumaNode& a, const NumaNode& b) { return a.id < b.id; });
  return nodes;
}

std::vector<NumaNode> PlaceRanksOnNodes(const std::vector<NumaNode>& nodes, int world, int threads_per_rank) {
  if (world < 2 || static_cast<int>(nodes.size()) < world) return {};
  std::vector<NumaNode> placed(nodes.begin(), nodes.begin() + world);
  for (const NumaNode& n : placed)
    if (static_cast<int>(n.cpus.size()) < threads_per_rank) return {};
  return placed;
}

Status PinCurrentThread(const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus)
    if (c >= 0 && c < CPU_SETSIZE) CPU_SET(c, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0)
    return Internal(fmt::format("sched_setaffinity: {}", std::strerror(errno)));
  return Status::Ok();
}

std::vector<int> CurrentThreadCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

Status MoveToNode(const void* data, size_t bytes, int node) {
  if (node < 0 || node >= 1024) return InvalidArgument(fmt::format("NUMA node {}", node));
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const auto end = (reinterpret_cast<uintptr_t>(data) + bytes) / page * page;
  if (end <= begin) return Status::Ok();
  unsigned long mask[1024 / (8 * sizeof(unsigned long))] = {};
  mask[static_cast<size_t>(node) / (8 * sizeof(unsigned long))] |= 1ul << (static_cast<unsigned>(node) % (8 * sizeof(unsigned long)));
  if (syscall(SYS_mbind, begin, end - begin, kMpolPreferred, mask, 1024ul, kMpolMfMove) != 0)
    return Internal(fmt::format("mbind to NUMA node {}: {}", node, std::strerror(errno)));
  return Status::Ok();
}

}  // namespace qb
