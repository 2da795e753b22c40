// The Collective for tensor-parallel ranks that are threads of one process (the CPU backend):
// the ranks' buffers are in one address space, so an all-reduce is a barrier, each rank adding
// up its share of the elements from every rank's buffer and writing the sum back to all of them,
// and a second barrier. Barriers spin briefly, then yield (ranks may share cores).
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "kernels/collective.h"

namespace qb::kernels {

class HostCollectiveGroup {
 public:
  explicit HostCollectiveGroup(int world);
  ~HostCollectiveGroup();
  HostCollectiveGroup(const HostCollectiveGroup&) = delete;
  HostCollectiveGroup& operator=(const HostCollectiveGroup&) = delete;

  int world() const { return world_; }
  // Rank r's endpoint, used only by the thread running rank r.
  Collective* rank(int r) const { return ranks_[static_cast<size_t>(r)].get(); }

 private:
  class Rank;
  void Barrier();

  const int world_;
  std::vector<std::unique_ptr<Collective>> ranks_;
  // Published by each rank before the first barrier of an operation.
  std::vector<float*> buffers_;
  std::vector<const float*> parts_;
  std::vector<int64_t> cols_;
  float* full_ = nullptr;
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<uint64_t> generation_{0};
};

}  // namespace qb::kernels
