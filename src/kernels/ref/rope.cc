#include <cmath>

#include "kernels/ref/ref_ops.h"

namespace qb::kernels::ref {

void Rope(float* x, int64_t n, int64_t heads, int64_t head_dim, const int32_t* positions,
          const float* inv_freq, float attention_scale) {
  const int64_t half = head_dim / 2;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(positions[t]) * inv_freq[i];
      const double c = std::cos(angle) * attention_scale;
      const double s = std::sin(angle) * attention_scale;
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + (t * heads + h) * head_dim;
        const double a = v[i], b = v[i + half];
        v[i] = static_cast<float>(a * c - b * s);
        v[i + half] = static_cast<float>(b * c + a * s);
      }
    }
  }
}

}  // namespace qb::kernels::ref
