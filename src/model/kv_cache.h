// A contiguous f32 key/value cache for one sequence (the correctness tools and single-stream
// generation): KvStorage with one block as long as the capacity. The serving engine uses paged
// KvStorage directly.
#pragma once

#include "kv/kv_storage.h"
#include "model/config.h"

namespace qb {

class ContiguousKvCache {
 public:
  ContiguousKvCache(const ModelConfig& config, int64_t capacity, DType dtype = DType::kF32)
      : storage_(config.num_layers, config.kv_dim(), KvLayout{1, capacity, dtype}) {}

  int64_t capacity() const { return storage_.layout().block_size; }
  KvStorage& storage() { return storage_; }

 private:
  KvStorage storage_;
};

}  // namespace qb
