#include <cmath>
#include <vector>

#include "kernels/ref/ref_ops.h"

namespace qb::kernels::ref {

void Attention(const float* q, int64_t n, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
               const float* k, const float* v, const int32_t* positions, float scale, float* out) {
  const int64_t group = n_heads / n_kv_heads;
  const int64_t q_stride = n_heads * head_dim;
  const int64_t kv_stride = n_kv_heads * head_dim;
  std::vector<double> scores;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t n_keys = positions[t] + 1;
    scores.assign(static_cast<size_t>(n_keys), 0.0);
    for (int64_t h = 0; h < n_heads; ++h) {
      const int64_t kvh = h / group;
      const float* qh = q + t * q_stride + h * head_dim;
      double max_score = -INFINITY;
      for (int64_t j = 0; j < n_keys; ++j) {
        const float* kj = k + j * kv_stride + kvh * head_dim;
        double dot = 0.0;
        for (int64_t i = 0; i < head_dim; ++i) dot += static_cast<double>(qh[i]) * kj[i];
        scores[static_cast<size_t>(j)] = dot * scale;
        max_score = std::max(max_score, scores[static_cast<size_t>(j)]);
      }
      double sum = 0.0;
      for (auto& s : scores) {
        s = std::exp(s - max_score);
        sum += s;
      }
      float* oh = out + t * q_stride + h * head_dim;
      for (int64_t i = 0; i < head_dim; ++i) {
        double acc = 0.0;
        for (int64_t j = 0; j < n_keys; ++j)
          acc += scores[static_cast<size_t>(j)] * v[j * kv_stride + kvh * head_dim + i];
        oh[i] = static_cast<float>(acc / sum);
      }
    }
  }
}

}  // namespace qb::kernels::ref
