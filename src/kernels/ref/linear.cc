#include <vector>

#include "kernels/ref/ref_ops.h"
#include "tensor/interleave.h"

namespace qb::kernels::ref {

void Linear(const float* x, int64_t n, int64_t in, const void* w, DType w_type, int64_t out,
            const float* bias, float* y) {
  std::vector<float> row(static_cast<size_t>(in));
  for (int64_t o = 0; o < out; ++o) {
    DequantizeMatrixRow(w, w_type, in, o, row.data());
    for (int64_t t = 0; t < n; ++t) {
      const float* xt = x + t * in;
      double acc = 0.0;
      for (int64_t i = 0; i < in; ++i) acc += static_cast<double>(xt[i]) * row[static_cast<size_t>(i)];
      if (bias != nullptr) acc += bias[o];
      y[t * out + o] = static_cast<float>(acc);
    }
  }
}

}  // namespace qb::kernels::ref
