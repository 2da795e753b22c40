// AddLowRankRow with AVX2 + FMA: each 32-float span of the output row is loaded once, gets its
// r scaled rows of bt added in registers, and is stored once.
#include <immintrin.h>

#include "kernels/cpu/low_rank.h"

namespace qb::kernels::cpu {

void AddLowRankRowAvx2(float* y, const float* low, const float* bt, int64_t r, int64_t width, int64_t stride) {
  int64_t j = 0;
  for (; j + 32 <= width; j += 32) {
    __m256 a0 = _mm256_loadu_ps(y + j), a1 = _mm256_loadu_ps(y + j + 8), a2 = _mm256_loadu_ps(y + j + 16),
           a3 = _mm256_loadu_ps(y + j + 24);
    for (int64_t k = 0; k < r; ++k) {
      const __m256 c = _mm256_set1_ps(low[k]);
      const float* b = bt + k * stride + j;
      a0 = _mm256_fmadd_ps(c, _mm256_loadu_ps(b), a0);
      a1 = _mm256_fmadd_ps(c, _mm256_loadu_ps(b + 8), a1);
      a2 = _mm256_fmadd_ps(c, _mm256_loadu_ps(b + 16), a2);
      a3 = _mm256_fmadd_ps(c, _mm256_loadu_ps(b + 24), a3);
    }
    _mm256_storeu_ps(y + j, a0);
    _mm256_storeu_ps(y + j + 8, a1);
    _mm256_storeu_ps(y + j + 16, a2);
    _mm256_storeu_ps(y + j + 24, a3);
  }
  for (; j < width; ++j) {
    float acc = y[j];
    for (int64_t k = 0; k < r; ++k) acc += low[k] * bt[k * stride + j];
    y[j] = acc;
  }
}

}  // namespace qb::kernels::cpu
