// The KV cache's memory: per layer, K and V for every slot of every block, each a tensor
// [num_blocks * block_size, kv_dim] (f32, f16, bf16 or q8_0). Pool slot b * block_size + s is
// slot s of block b; inside a block the values lie head by head (kernels::KvHeadElement), so
// one head's keys of a block are contiguous.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace qb {

struct KvLayout {
  int64_t num_blocks = 0;
  int64_t block_size = 16;
  DType dtype = DType::kF16;

  // Bytes of K and V for one token across all layers.
  static int64_t BytesPerToken(int64_t num_layers, int64_t kv_dim, DType dtype) {
    return 2 * num_layers * RowBytes(dtype, kv_dim);
  }
};

class KvStorage {
 public:
  KvStorage(int64_t num_layers, int64_t kv_dim, const KvLayout& layout);

  const KvLayout& layout() const { return layout_; }
  Tensor& keys(int64_t layer) { return k_[static_cast<size_t>(layer)]; }
  Tensor& values(int64_t layer) { return v_[static_cast<size_t>(layer)]; }
  int64_t bytes() const;

 private:
  KvLayout layout_;
  std::vector<Tensor> k_, v_;
};

}  // namespace qb
