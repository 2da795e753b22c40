// AVX-512 versions of the float-weight micro-kernels (F32, F16, BF16 weights against f32
// activations): 16-lane FMAs, twice AVX2's work per instruction, and with 32 registers a tile of
// all 3 rows x 4 tokens x 2 chains at once (each weight vector converted once for 4 tokens).
// One summation order for every (row, token) whatever the batch, as in the AVX2 kernels: 16-lane
// chunks alternate between two accumulators, the tail (n % 16) is a masked chunk, the two are
// added and reduced at the end; so a token's result is bit-identical alone or batched (not to
// the AVX2 kernels', whose order differs: within float rounding of them).
//
// Compiled with AVX-512 options and only called after a CPU check; no headers beyond intrinsics
// and the kernel table, no namespace-scope initializers (see linear_kernels_avx512vnni.cc).
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/linear_kernels.h"

// GCC 12 reports the undefined pass-through operand inside its own 512-bit intrinsics
// (_mm512_cvtph_ps, _mm512_reduce_add_ps) as uninitialized (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace qb::kernels::cpu {

namespace {

struct LoadF32 {
  __m512 operator()(const uint8_t* r, int64_t i, __mmask16 m) const {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(r) + i);
  }
};
struct LoadF16 {
  __m512 operator()(const uint8_t* r, int64_t i, __mmask16 m) const {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(r) + i));
  }
};
struct LoadBF16 {
  __m512 operator()(const uint8_t* r, int64_t i, __mmask16 m) const {
    const __m256i h = _mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(r) + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
};

template <int NR, int NT, typename Load16>
void Tile(const uint8_t* rows, int64_t stride, const float* const* xs, int64_t n, float* out, int out_stride) {
  const Load16 load;
  __m512 acc[2][NR][NT];
  for (int c = 0; c < 2; ++c)
    for (int r = 0; r < NR; ++r)
      for (int t = 0; t < NT; ++t) acc[c][r][t] = _mm512_setzero_ps();
  auto chunk = [&](int64_t i, int c, __mmask16 m) {
    __m512 w[NR];
    for (int r = 0; r < NR; ++r) w[r] = load(rows + r * stride, i, m);
    for (int t = 0; t < NT; ++t) {
      const __m512 x = _mm512_maskz_loadu_ps(m, xs[t] + i);
      for (int r = 0; r < NR; ++r) acc[c][r][t] = _mm512_fmadd_ps(w[r], x, acc[c][r][t]);
    }
  };
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    chunk(i, 0, 0xffff);
    chunk(i + 16, 1, 0xffff);
  }
  if (i + 16 <= n) {
    chunk(i, 0, 0xffff);
    i += 16;
  }
  if (i < n) chunk(i, 1, static_cast<__mmask16>((1u << (n - i)) - 1));
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) out[t * out_stride + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[0][r][t], acc[1][r][t]));
}

template <int NR, typename Load16>
void TileNt(const uint8_t* rows, int64_t stride, const float* const* xs, int nt, int64_t n, float* out) {
  static_assert(kMaxTokens == 4);
  switch (nt) {
    case 1: return Tile<NR, 1, Load16>(rows, stride, xs, n, out, kFloatRows);
    case 2: return Tile<NR, 2, Load16>(rows, stride, xs, n, out, kFloatRows);
    case 3: return Tile<NR, 3, Load16>(rows, stride, xs, n, out, kFloatRows);
    default: return Tile<NR, 4, Load16>(rows, stride, xs, n, out, kFloatRows);
  }
}

template <typename Load16>
void FloatDot16(const void* rows, int64_t stride, int nr, const float* const* xs, int nt, int64_t n, float* out) {
  static_assert(kFloatRows == 3, "the tiles below assume up to 3 rows");
  const auto* r = static_cast<const uint8_t*>(rows);
  if (nt == 1) {  // decode: rows one after another, a single stream for the prefetcher
    for (int k = 0; k < nr; ++k) Tile<1, 1, Load16>(r + k * stride, stride, xs, n, out + k, kFloatRows);
    return;
  }
  switch (nr) {
    case 1: return TileNt<1, Load16>(r, stride, xs, nt, n, out);
    case 2: return TileNt<2, Load16>(r, stride, xs, nt, n, out);
    default: return TileNt<3, Load16>(r, stride, xs, nt, n, out);
  }
}

}  // namespace

void AddAvx512FloatKernels(CpuKernels& k) {
  k.f32 = FloatDot16<LoadF32>;
  k.f16 = FloatDot16<LoadF16>;
  k.bf16 = FloatDot16<LoadBF16>;
}

}  // namespace qb::kernels::cpu
