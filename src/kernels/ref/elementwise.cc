// Row-wise and elementwise ops: RMSNorm, SiLU-mul, add, embedding lookup.
#include <cmath>

#include "kernels/ref/ref_ops.h"
#include "tensor/interleave.h"

namespace qb::kernels::ref {

void RmsNorm(const float* x, int64_t n, int64_t d, const float* weight, float eps, float* y) {
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x + t * d;
    double ss = 0.0;
    for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(xt[i]) * xt[i];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(d) + eps);
    float* yt = y + t * d;
    for (int64_t i = 0; i < d; ++i) yt[i] = static_cast<float>(xt[i] * inv * weight[i]);
  }
}

void SiluMul(const float* gate, const float* up, int64_t count, float* out) {
  for (int64_t i = 0; i < count; ++i) {
    const double g = gate[i];
    out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

void Add(float* acc, const float* x, int64_t count) {
  for (int64_t i = 0; i < count; ++i) acc[i] += x[i];
}

void AddLowRankRow(float* y, const float* low, const float* bt, int64_t r, int64_t width, int64_t stride) {
  for (int64_t j = 0; j < width; ++j) {
    double acc = y[j];
    for (int64_t k = 0; k < r; ++k) acc += static_cast<double>(low[k]) * bt[k * stride + j];
    y[j] = static_cast<float>(acc);
  }
}

void Embedding(const int32_t* ids, int64_t n, const void* table, DType table_type, int64_t d,
               float* out) {
  for (int64_t t = 0; t < n; ++t) DequantizeMatrixRow(table, table_type, d, ids[t], out + t * d);
}

}  // namespace qb::kernels::ref
