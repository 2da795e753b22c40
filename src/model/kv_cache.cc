#include "model/kv_cache.h"

namespace qb {

ContiguousKvCache::ContiguousKvCache(const ModelConfig& config, int64_t capacity) : capacity_(capacity) {
  for (int64_t l = 0; l < config.num_layers; ++l) {
    k_.push_back(Tensor::Empty(DType::kF32, {capacity, config.kv_dim()}));
    v_.push_back(Tensor::Empty(DType::kF32, {capacity, config.kv_dim()}));
  }
}

}  // namespace qb
