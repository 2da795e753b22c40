// A contiguous f32 key/value cache for one sequence: per layer K and V of [capacity, kv_dim].
// (The paged, multi-sequence cache of the serving engine lives in kv/.)
#pragma once

#include <vector>

#include "model/config.h"
#include "tensor/tensor.h"

namespace qb {

class ContiguousKvCache {
 public:
  ContiguousKvCache(const ModelConfig& config, int64_t capacity);

  int64_t capacity() const { return capacity_; }
  Tensor& keys(int64_t layer) { return k_[static_cast<size_t>(layer)]; }
  Tensor& values(int64_t layer) { return v_[static_cast<size_t>(layer)]; }

 private:
  int64_t capacity_;
  std::vector<Tensor> k_, v_;
};

}  // namespace qb
