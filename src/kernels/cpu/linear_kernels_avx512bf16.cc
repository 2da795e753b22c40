// BF16 weights on AVX512_BF16: vdpbf16ps multiplies 32 bf16 pairs and adds them into 16 float
// lanes in one instruction, so the weights are used as stored (no conversion) and each
// instruction does twice an FMA's work. The activations are rounded to bf16 first (once per
// Linear, round to nearest even), as llama.cpp and oneDNN do for BF16 weights: a relative
// error of at most 2^-8 per activation, where the other paths keep f32 activations.
//
// As in linear_kernels_avx512vnni.cc: compiled with AVX-512 options, only called after a CPU
// check, no namespace-scope initializers and no headers beyond intrinsics and the kernel table,
// so nothing compiled here runs (or is shared with other files) on a CPU without AVX512_BF16.
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/linear_kernels.h"

// GCC 12 reports the undefined pass-through operand inside its own 512-bit intrinsics as
// (maybe-)uninitialized (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace qb::kernels::cpu {

namespace {

void ToBf16(const float* x, int64_t n, uint16_t* out) {  // n a multiple of 16
  for (int64_t i = 0; i < n; i += 16) {
    const __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), reinterpret_cast<const __m256i&>(h));
  }
}

inline __m512bh LoadBf16(const void* p) {
  const __m512i v = _mm512_loadu_si512(p);
  return reinterpret_cast<const __m512bh&>(v);
}

// NR <= kFloatRows rows x NT <= kMaxTokens tokens, two accumulators each (32-value step s goes
// to chain s % 2: one chain held a decode row to one vdpbf16ps latency per 64 bytes), 32 values
// a step. Every (row, token) sees the same operations in the same order whatever NR and NT: a
// token's result is bit-identical alone or batched.
template <int NR, int NT>
void Tile(const uint8_t* rows, int64_t stride, const uint16_t* const* xs, int64_t n, float* out) {
  __m512 acc[2][NR][NT];
  for (int c = 0; c < 2; ++c)
    for (int r = 0; r < NR; ++r)
      for (int t = 0; t < NT; ++t) acc[c][r][t] = _mm512_setzero_ps();
  auto step = [&](int c, int64_t i) {
    __m512bh w[NR];
    for (int r = 0; r < NR; ++r) w[r] = LoadBf16(rows + r * stride + 2 * i);
    for (int t = 0; t < NT; ++t) {
      const __m512bh x = LoadBf16(xs[t] + i);
      for (int r = 0; r < NR; ++r) acc[c][r][t] = _mm512_dpbf16_ps(acc[c][r][t], w[r], x);
    }
  };
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    step(0, i);
    step(1, i + 32);
  }
  if (i < n) step(0, i);  // n is a multiple of 32
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) out[t * kFloatRows + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[0][r][t], acc[1][r][t]));
}

template <int NR>
void TileRows(const uint8_t* rows, int64_t stride, const uint16_t* const* xs, int nt, int64_t n, float* out) {
  switch (nt) {
    case 1: return Tile<NR, 1>(rows, stride, xs, n, out);
    case 2: return Tile<NR, 2>(rows, stride, xs, n, out);
    case 3: return Tile<NR, 3>(rows, stride, xs, n, out);
    default: return Tile<NR, 4>(rows, stride, xs, n, out);
  }
}

void DotBf16(const void* rows, int64_t stride, int nr, const uint16_t* const* xs, int nt, int64_t n, float* out) {
  static_assert(kFloatRows == 3 && kMaxTokens == 4, "the tiles below cover 3 rows x 4 tokens");
  const auto* r = static_cast<const uint8_t*>(rows);
  if (nt == 1) {  // decode streams the weights from memory: one row (one stream) at a time
    for (int k = 0; k < nr; ++k) Tile<1, 1>(r + k * stride, stride, xs, n, out + k);
    return;
  }
  switch (nr) {
    case 1: return TileRows<1>(r, stride, xs, nt, n, out);
    case 2: return TileRows<2>(r, stride, xs, nt, n, out);
    default: return TileRows<3>(r, stride, xs, nt, n, out);
  }
}

}  // namespace

void AddAvx512Bf16Kernels(CpuKernels& k) {
  k.to_bf16 = ToBf16;
  k.bf16_bf16 = DotBf16;
}

}  // namespace qb::kernels::cpu
