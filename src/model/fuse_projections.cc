#include "model/fuse_projections.h"

#include <cstring>
#include <initializer_list>

#include "util/mapped_file.h"

namespace qb {

namespace {

bool CanJoin(std::initializer_list<const Tensor*> ms, std::initializer_list<const Tensor*> perms) {
  for (const Tensor* p : perms)
    if (p->defined()) return false;
  const Tensor& first = **ms.begin();
  for (const Tensor* m : ms) {
    if (!m->defined() || m->device() != Device::kCpu || m->rank() != 2) return false;
    if (m->dtype() != first.dtype() || m->cols() != first.cols()) return false;
    if (m->rows() % Info(m->dtype()).row_group != 0) return false;
  }
  return true;
}

// The rows of `parts`, one after the other, in one new tensor; each part becomes a view of its
// rows there.
Tensor Join(std::initializer_list<Tensor*> parts) {
  const Tensor& first = **parts.begin();
  int64_t rows = 0;
  for (const Tensor* p : parts) rows += p->rank() == 1 ? p->numel() : p->rows();
  Shape shape = first.shape();
  shape[0] = rows;
  Tensor joined = first.rank() == 1 ? Tensor::Empty(first.dtype(), shape) : Tensor::EmptyLongLived(first.dtype(), shape);
  auto* dst = static_cast<uint8_t*>(joined.mutable_raw());
  int64_t row = 0;
  for (Tensor* p : parts) {
    const int64_t n = p->rank() == 1 ? p->numel() : p->rows();
    std::memcpy(dst, p->raw(), p->nbytes());
    if (!p->writable()) ReleaseMappedRange(p->raw(), p->nbytes());  // mapped from the file: not held twice
    dst += p->nbytes();
    *p = joined.Slice(row, row + n);
    row += n;
  }
  return joined;
}

}  // namespace

void FuseProjections(Qwen2Weights& w) {
  for (LayerWeights& l : w.layers) {
    const bool biases = l.bq.defined() && l.bk.defined() && l.bv.defined();
    const bool no_biases = !l.bq.defined() && !l.bk.defined() && !l.bv.defined();
    if ((biases || no_biases) && CanJoin({&l.wq, &l.wk, &l.wv}, {&l.wq_perm, &l.wk_perm, &l.wv_perm})) {
      l.wqkv = Join({&l.wq, &l.wk, &l.wv});
      if (biases) l.bqkv = Join({&l.bq, &l.bk, &l.bv});
    }
    if (CanJoin({&l.w_gate, &l.w_up}, {&l.gate_perm, &l.up_perm})) l.w_gate_up = Join({&l.w_gate, &l.w_up});
  }
}

}  // namespace qb
