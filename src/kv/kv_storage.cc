#include "kv/kv_storage.h"

namespace qb {

KvStorage::KvStorage(int64_t num_layers, int64_t kv_dim, const KvLayout& layout) : layout_(layout) {
  const int64_t rows = layout.num_blocks * layout.block_size;
  for (int64_t l = 0; l < num_layers; ++l) {
    k_.push_back(Tensor::Empty(layout.dtype, {rows, kv_dim}));
    v_.push_back(Tensor::Empty(layout.dtype, {rows, kv_dim}));
  }
}

int64_t KvStorage::bytes() const {
  int64_t b = 0;
  for (const auto& t : k_) b += static_cast<int64_t>(t.nbytes());
  for (const auto& t : v_) b += static_cast<int64_t>(t.nbytes());
  return b;
}

}  // namespace qb
