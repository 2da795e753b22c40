// What the row-interleaving repackings share (interleave.cc, interleave_kquants.cc): internal to
// src/tensor.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"
#include "util/thread_pool.h"

namespace qb::interleave_detail {

// The repacking loop every layout shares: for each group of 8 rows and each block column,
// fill(out block, row r's block, r) for r = 0..7 (the caller's `fill` places row r's values).
// Groups of rows are independent: split over `pool`'s threads when there is one.
template <typename In, typename Out, typename Fill>
Tensor InterleaveRows(const Tensor& t, DType out_type, Fill fill, ThreadPool* pool) {
  const int64_t rows = t.dim(0), nb = t.dim(1) / Info(t.dtype()).block_size;
  Tensor out = Tensor::EmptyLongLived(out_type, t.shape());
  auto* dst = static_cast<Out*>(out.mutable_raw());
  const auto* src = static_cast<const In*>(t.raw());
  auto groups = [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g)
      for (int64_t b = 0; b < nb; ++b)
        for (int r = 0; r < 8; ++r) fill(dst[g * nb + b], src[(g * 8 + r) * nb + b], r);
  };
  if (pool != nullptr) pool->ParallelFor(rows / 8, groups, 8);
  else groups(0, rows / 8);
  return out;
}

// The value of element e (0..31) of a Q4_0 / Q5_0 block's byte layout and of the x8 layout:
// byte group c, lane byte k, nibble half h (0 low, 1 high) hold element 16h + 4c + k.
inline int ElementOf(int c, int k, int h) { return 16 * h + 4 * c + k; }

}  // namespace qb::interleave_detail
