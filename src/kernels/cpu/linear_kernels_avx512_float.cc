// AVX-512 versions of the float-weight micro-kernels (F16 and BF16 weights against f32
// activations) and of SiLU-mul: 16-lane FMAs, twice AVX2's work per instruction, with 32
// registers for wider register tiles. The 512-bit table of linear_kernels_avx512vnni.cc takes
// them (AddAvx512FloatKernels); attention is in attention_avx512.cc.
//
// Compiled with AVX-512 options and only called after a CPU check; no headers beyond intrinsics,
// the kernel table and the block layouts, no namespace-scope initializers (see
// linear_kernels_avx512vnni.cc).
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/avx512_helpers.h"
#include "kernels/cpu/linear_kernels.h"
#include "tensor/quant_blocks.h"

// GCC 12 reports the undefined pass-through operand inside its own 512-bit intrinsics
// (_mm512_cvtph_ps, _mm512_reduce_add_ps) as uninitialized (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace qb::kernels::cpu {

namespace {

// F16 and BF16 weights, 512-bit: 16 weights converted to f32 per load and used for every token
// of the call, NR <= 3 rows x NT <= 4 tokens with two accumulators each (16-value chunks
// alternate between them: one chain held a decode row to an FMA latency per 32 bytes, ~27 GB/s
// a thread, short of what memory and cache deliver), a masked last chunk (masked loads only there: in the loop they made the F16 kernel
// slower than AVX2's, 16.6 vs 12.3 ms at 4864 x 896 x 128 on a Zen 5; plain loads, 8.5 ms).
// Every (row, token) sees the same operations in the same order whatever the tile: a token's
// result does not depend on its batch. One token (decode) takes one row at a time: one memory
// stream. (With AVX512_BF16, BF16 weights take linear_kernels_avx512bf16.cc instead.)
template <typename Cvt, int NR, int NT>
void HalfTile(const uint8_t* rows, int64_t stride, const float* const* xs, int64_t n, float* out) {
  __m512 acc[2][NR][NT];  // two chains: 16-value chunk c goes to chain c % 2
  for (int c = 0; c < 2; ++c)
    for (int r = 0; r < NR; ++r)
      for (int t = 0; t < NT; ++t) acc[c][r][t] = _mm512_setzero_ps();
  auto row = [&](int r) { return reinterpret_cast<const uint16_t*>(rows + r * stride); };
  auto chunk = [&](int c, int64_t i) {
    __m512 w[NR];
    for (int r = 0; r < NR; ++r) w[r] = Cvt::Load(row(r) + i);
    for (int t = 0; t < NT; ++t) {
      const __m512 x = _mm512_loadu_ps(xs[t] + i);
      for (int r = 0; r < NR; ++r) acc[c][r][t] = _mm512_fmadd_ps(w[r], x, acc[c][r][t]);
    }
  };
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    chunk(0, i);
    chunk(1, i + 16);
  }
  int c = 0;
  if (i + 16 <= n) {
    chunk(0, i);
    i += 16;
    c = 1;
  }
  if (i < n) {
    const auto m = static_cast<__mmask16>((1u << (n - i)) - 1);
    __m512 w[NR];
    for (int r = 0; r < NR; ++r) w[r] = Cvt::Load(row(r) + i, m);
    for (int t = 0; t < NT; ++t) {
      const __m512 x = _mm512_maskz_loadu_ps(m, xs[t] + i);
      for (int r = 0; r < NR; ++r) acc[c][r][t] = _mm512_fmadd_ps(w[r], x, acc[c][r][t]);
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) out[t * kFloatRows + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[0][r][t], acc[1][r][t]));
}

template <typename Cvt, int NR>
void HalfRows(const uint8_t* rows, int64_t stride, const float* const* xs, int nt, int64_t n, float* out) {
  switch (nt) {
    case 1: return HalfTile<Cvt, NR, 1>(rows, stride, xs, n, out);
    case 2: return HalfTile<Cvt, NR, 2>(rows, stride, xs, n, out);
    case 3: return HalfTile<Cvt, NR, 3>(rows, stride, xs, n, out);
    default: return HalfTile<Cvt, NR, 4>(rows, stride, xs, n, out);
  }
}

template <typename Cvt>
void DotHalfZ(const void* rows, int64_t stride, int nr, const float* const* xs, int nt, int64_t n, float* out) {
  static_assert(kFloatRows == 3 && kMaxTokens == 4, "the tiles below cover 3 rows x 4 tokens");
  const auto* r = static_cast<const uint8_t*>(rows);
  if (nt == 1) {
    for (int k = 0; k < nr; ++k) HalfTile<Cvt, 1, 1>(r + k * stride, stride, xs, n, out + k);
    return;
  }
  switch (nr) {
    case 1: return HalfRows<Cvt, 1>(r, stride, xs, nt, n, out);
    case 2: return HalfRows<Cvt, 2>(r, stride, xs, nt, n, out);
    default: return HalfRows<Cvt, 3>(r, stride, xs, nt, n, out);
  }
}

// out[i] = gate[i] / (1 + exp(-gate[i])) * up[i], 16 lanes at a time (the AVX2 kernel's
// operations lane for lane; the last n % 16 masked: masked loads in the loop are slow here).
inline __m512 Silu16(__m512 g) {
  return _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.f), Exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
}
void SiluMul512(const float* gate, const float* up, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, _mm512_mul_ps(Silu16(_mm512_loadu_ps(gate + i)), _mm512_loadu_ps(up + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(Silu16(_mm512_maskz_loadu_ps(m, gate + i)), _mm512_maskz_loadu_ps(m, up + i)));
  }
}

}  // namespace

void AddAvx512FloatKernels(CpuKernels& k) {
  k.f16 = DotHalfZ<F16To32>;
  k.bf16 = DotHalfZ<Bf16To32>;
  k.silu_mul = SiluMul512;
}

}  // namespace qb::kernels::cpu
