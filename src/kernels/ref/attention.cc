#include <cmath>
#include <vector>

#include "kernels/ref/ref_ops.h"
#include "tensor/dequantize.h"

namespace qb::kernels::ref {

void Attention(const float* q, int64_t n, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, const void* k,
               const void* v, DType kv_type, const int32_t* rows, const int64_t* row_start, const int32_t* positions,
               int64_t kv_stride, int64_t head_offset, float scale, float* out) {
  const int64_t group = n_heads / n_kv_heads;
  const int64_t q_stride = n_heads * head_dim;
  std::vector<double> scores;
  std::vector<float> kj(static_cast<size_t>(head_dim)), vj(static_cast<size_t>(head_dim));
  std::vector<float> q_rounded(static_cast<size_t>(head_dim));
  auto head_row = [&](const void* base, int32_t row, int64_t kvh, float* dst) {
    DequantizeRow(kv_type, static_cast<const uint8_t*>(base) + RowBytes(kv_type, row * kv_stride + kvh * head_offset), dst,
                  head_dim);
  };
  for (int64_t t = 0; t < n; ++t) {
    const int64_t n_keys = positions[t] + 1;
    const int32_t* tr = rows + row_start[t];
    scores.assign(static_cast<size_t>(n_keys), 0.0);
    for (int64_t h = 0; h < n_heads; ++h) {
      const int64_t kvh = h / group;
      const float* qh = q + t * q_stride + h * head_dim;
      if (kv_type == DType::kQ8_0) {  // the query meets the cache as q8_0 (dequantize.h)
        RoundRowQ8_0(qh, q_rounded.data(), head_dim);
        qh = q_rounded.data();
      }
      double max_score = -INFINITY;
      for (int64_t j = 0; j < n_keys; ++j) {
        head_row(k, tr[j], kvh, kj.data());
        double dot = 0.0;
        for (int64_t i = 0; i < head_dim; ++i) dot += static_cast<double>(qh[i]) * kj[static_cast<size_t>(i)];
        scores[static_cast<size_t>(j)] = dot * scale;
        max_score = std::max(max_score, scores[static_cast<size_t>(j)]);
      }
      double sum = 0.0;
      for (auto& s : scores) {
        s = std::exp(s - max_score);
        sum += s;
      }
      std::vector<double> acc(static_cast<size_t>(head_dim), 0.0);
      for (int64_t j = 0; j < n_keys; ++j) {
        head_row(v, tr[j], kvh, vj.data());
        for (int64_t i = 0; i < head_dim; ++i) acc[static_cast<size_t>(i)] += scores[static_cast<size_t>(j)] * vj[static_cast<size_t>(i)];
      }
      float* oh = out + t * q_stride + h * head_dim;
      for (int64_t i = 0; i < head_dim; ++i) oh[i] = static_cast<float>(acc[static_cast<size_t>(i)] / sum);
    }
  }
}

}  // namespace qb::kernels::ref
