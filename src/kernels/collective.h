// Communication between the ranks of a tensor-parallel group. Each rank runs the forward pass
// on its slice of the weights (model/tensor_parallel.h); the ranks meet twice a layer to add up
// their partial outputs and once a step to join the logits. The two operations are the ones
// NCCL has (all-reduce, all-gather), so a device backend can implement this interface too;
// kernels/cpu/host_collective.h is the one for ranks that are threads of one process.
#pragma once

#include <cstdint>

#include "util/thread_pool.h"

namespace qb::kernels {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // Sums `data` (n floats, the same n on every rank) over the ranks, in place: every rank ends
  // with the same values, the ranks' parts added in rank order. `pool` (may be null) is this
  // rank's threads, which share its part of the work.
  virtual void AllReduceSum(float* data, int64_t n, ThreadPool* pool) = 0;
  // Joins the ranks' column blocks: each rank's `part` [rows, cols] (rows the same on every
  // rank, cols its own) goes, in rank order, into `full` [rows, sum of the ranks' cols]. Only
  // rank 0 receives (`full` is ignored elsewhere).
  virtual void GatherColumns(const float* part, int64_t rows, int64_t cols, float* full) = 0;
};

}  // namespace qb::kernels
