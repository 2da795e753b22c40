#include <vector>

#include "kernels/ref/ref_ops.h"
#include "tensor/dequantize.h"

namespace qb::kernels::ref {

void Linear(const float* x, int64_t n, int64_t in, const void* w, DType w_type, int64_t out,
            const float* bias, float* y) {
  const int64_t row_bytes = RowBytes(w_type, in);
  std::vector<float> row(static_cast<size_t>(in));
  for (int64_t o = 0; o < out; ++o) {
    DequantizeRow(w_type, static_cast<const uint8_t*>(w) + o * row_bytes, row.data(), in);
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
