// NUMA placement for tensor-parallel ranks on a multi-socket host: which CPUs belong to which
// memory node (sysfs), pinning a thread to a node's CPUs, and moving memory to a node. On such
// a host each rank's threads read its slice of the weights from their own node's memory, which
// is where splitting the model pays on a CPU.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace qb {

struct NumaNode {
  int id = 0;
  std::vector<int> cpus;  // those this process may run on
};

// "0-3,8,10-11" -> {0,1,2,3,8,10,11}; nullopt when malformed.
std::optional<std::vector<int>> ParseCpuList(std::string_view text);

// The memory nodes that have CPUs this process may use (sysfs under `root`, intersected with the
// thread's affinity mask), in id order. Empty when the kernel reports none.
std::vector<NumaNode> DetectNumaNodes(const std::string& root = "/sys/devices/system/node");

// Where each of `world` ranks runs: rank r on node r, when there are at least `world` nodes with
// `threads_per_rank` allowed CPUs each; otherwise empty (no placement: the ranks share the CPUs).
std::vector<NumaNode> PlaceRanksOnNodes(const std::vector<NumaNode>& nodes, int world, int threads_per_rank);

// Restricts the calling thread to `cpus`.
Status PinCurrentThread(const std::vector<int>& cpus);
// The CPUs the calling thread may run on (to restore after pinning it for a while).
std::vector<int> CurrentThreadCpus();

// Moves the pages of [data, data + bytes) to `node` and keeps them there (mbind with
// MPOL_PREFERRED and MPOL_MF_MOVE; only whole pages inside the range). Containers without
// CAP_SYS_NICE may be refused (EPERM): the caller warns and goes on.
Status MoveToNode(const void* data, size_t bytes, int node);

}  // namespace qb
