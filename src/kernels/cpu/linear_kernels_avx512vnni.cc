// AVX-512 VNNI versions of the 8-row interleaved micro-kernels (Q4_0x8, Q8_0x8): vpdpbusd
// multiplies u8 x s8 in groups of 4 and adds into int32 in one instruction, where AVX2 needs
// vpmaddubsw, vpmaddwd and vpaddd. Same integer sums as the AVX2 kernels (nothing saturates in
// either), same float operations in the same order: results are bit-identical to the AVX2
// path. 256-bit vectors (AVX-512VL), so the code shape and the ActBlock layout stay those of
// AVX2 and the clock does not drop as with 512-bit vectors on older Xeons.
//
// This file is compiled with AVX-512 options and only called after a CPU check. It holds no
// namespace-scope initializers and includes no headers beyond intrinsics and the block layouts,
// so nothing compiled here runs (or is shared with other files) on a CPU without AVX-512.
// Every other kernel of the table is the AVX2 one.
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/linear_kernels.h"
#include "tensor/quant_blocks.h"

// GCC 12 reports the undefined pass-through operand inside its own 512-bit extract and shuffle
// intrinsics as maybe-uninitialized (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace qb::kernels::cpu {

namespace {

inline __m256i Bcast4(const ActBlock& a, int c) {  // activations 4c..4c+3 in every 32-bit lane
  int32_t v;
  __builtin_memcpy(&v, a.q + 4 * c, 4);
  return _mm256_set1_epi32(v);
}

// Q4_0x8: nibbles (0..15) are the unsigned operand; the offset of 8 comes off in integers
// (8 x the activations' sum), as in the AVX2 kernel.
template <int NT>
void DotQ4_0x8V(const BlockQ4_0x8* w, const ActBlock* const* acts, int64_t nb, float* out) {
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i low = _mm256_set1_epi8(0x0f);
  for (int64_t b = 0; b < nb; ++b) {
    __m256i s32[NT];
    for (int t = 0; t < NT; ++t) s32[t] = _mm256_setzero_si256();
    _Pragma("GCC unroll 4") for (int c = 0; c < 4; ++c) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs + 32 * c));
      const __m256i lo = _mm256_and_si256(v, low), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
      _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
        s32[t] = _mm256_dpbusd_epi32(s32[t], lo, Bcast4(acts[t][b], c));
        s32[t] = _mm256_dpbusd_epi32(s32[t], hi, Bcast4(acts[t][b], c + 4));
      }
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].d)));
    for (int t = 0; t < NT; ++t) {
      const ActBlock& a = acts[t][b];
      const __m256i s = _mm256_sub_epi32(s32[t], _mm256_set1_epi32(8 * a.qsum));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_broadcast_ss(&a.d)), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

// Q8_0x8: signed x signed, so |w| meets sign(x, w) (the sign trick), as in the AVX2 kernel.
template <int NT>
void DotQ8_0x8V(const BlockQ8_0x8* w, const ActBlock* const* acts, int64_t nb, float* out) {
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m256i s32[NT];
    for (int t = 0; t < NT; ++t) s32[t] = _mm256_setzero_si256();
    _Pragma("GCC unroll 8") for (int c = 0; c < 8; ++c) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs + 32 * c));
      const __m256i aq = _mm256_sign_epi8(q, q);
      _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t)
        s32[t] = _mm256_dpbusd_epi32(s32[t], aq, _mm256_sign_epi8(Bcast4(acts[t][b], c), q));
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].d)));
    for (int t = 0; t < NT; ++t)
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32[t]), _mm256_mul_ps(dw, _mm256_broadcast_ss(&acts[t][b].d)), acc[t]);
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

// 512-bit versions: the lower 256 bits compute block column c, the upper c + 1 (the next 32
// bytes of the same rows, so one 64-byte load), and the two halves' int32 sums are added before
// the same epilogue: the same exact integer sums, bit-identical results, half the vpdpbusd.
inline __m512i Bcast4Pair(const ActBlock& a, int c) {  // dword c in lanes 0..7, dword c + 1 in 8..15
  int32_t v0, v1;
  __builtin_memcpy(&v0, a.q + 4 * c, 4);
  __builtin_memcpy(&v1, a.q + 4 * c + 4, 4);
  return _mm512_mask_set1_epi32(_mm512_set1_epi32(v0), 0xff00, v1);
}

inline __m256i FoldHalves(__m512i s) {
  return _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
}

template <int NT>
void DotQ4_0x8Z(const BlockQ4_0x8* w, const ActBlock* const* acts, int64_t nb, float* out) {
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const __m512i low = _mm512_set1_epi8(0x0f);
  for (int64_t b = 0; b < nb; ++b) {
    __m512i s[NT];
    for (int t = 0; t < NT; ++t) s[t] = _mm512_setzero_si512();
    _Pragma("GCC unroll 2") for (int c = 0; c < 4; c += 2) {
      const __m512i v = _mm512_loadu_si512(w[b].qs + 32 * c);
      const __m512i lo = _mm512_and_si512(v, low), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
      _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
        s[t] = _mm512_dpbusd_epi32(s[t], lo, Bcast4Pair(acts[t][b], c));
        s[t] = _mm512_dpbusd_epi32(s[t], hi, Bcast4Pair(acts[t][b], c + 4));
      }
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].d)));
    for (int t = 0; t < NT; ++t) {
      const ActBlock& a = acts[t][b];
      const __m256i si = _mm256_sub_epi32(FoldHalves(s[t]), _mm256_set1_epi32(8 * a.qsum));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(si), _mm256_mul_ps(dw, _mm256_broadcast_ss(&a.d)), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

// The sign trick without vpsignb (no 512-bit form): |w| meets x negated where w < 0 (where w is
// 0 the product is 0 either way).
template <int NT>
void DotQ8_0x8Z(const BlockQ8_0x8* w, const ActBlock* const* acts, int64_t nb, float* out) {
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const __m512i zero = _mm512_setzero_si512();
  for (int64_t b = 0; b < nb; ++b) {
    __m512i s[NT];
    for (int t = 0; t < NT; ++t) s[t] = _mm512_setzero_si512();
    _Pragma("GCC unroll 4") for (int c = 0; c < 8; c += 2) {
      const __m512i q = _mm512_loadu_si512(w[b].qs + 32 * c);
      const __m512i aq = _mm512_abs_epi8(q);
      const __mmask64 neg = _mm512_movepi8_mask(q);
      _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
        const __m512i x = Bcast4Pair(acts[t][b], c);
        s[t] = _mm512_dpbusd_epi32(s[t], aq, _mm512_mask_sub_epi8(x, neg, zero, x));
      }
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].d)));
    for (int t = 0; t < NT; ++t)
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(FoldHalves(s[t])), _mm256_mul_ps(dw, _mm256_broadcast_ss(&acts[t][b].d)),
                               acc[t]);
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

template <typename Block, void (*K1)(const Block*, const ActBlock* const*, int64_t, float*),
          void (*K2)(const Block*, const ActBlock* const*, int64_t, float*),
          void (*K3)(const Block*, const ActBlock* const*, int64_t, float*),
          void (*K4)(const Block*, const ActBlock* const*, int64_t, float*)>
void ByTokens(const void* group, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  static_assert(kMaxTokens == 4);
  const auto* w = static_cast<const Block*>(group);
  switch (nt) {
    case 1: return K1(w, acts, n / 32, out);
    case 2: return K2(w, acts, n / 32, out);
    case 3: return K3(w, acts, n / 32, out);
    default: return K4(w, acts, n / 32, out);
  }
}

CpuKernels Make(bool wide) {
  CpuKernels v = Avx2CpuKernels();
  if (wide) {
    v.q4_0x8 = ByTokens<BlockQ4_0x8, DotQ4_0x8Z<1>, DotQ4_0x8Z<2>, DotQ4_0x8Z<3>, DotQ4_0x8Z<4>>;
    v.q8_0x8 = ByTokens<BlockQ8_0x8, DotQ8_0x8Z<1>, DotQ8_0x8Z<2>, DotQ8_0x8Z<3>, DotQ8_0x8Z<4>>;
  } else {
    v.q4_0x8 = ByTokens<BlockQ4_0x8, DotQ4_0x8V<1>, DotQ4_0x8V<2>, DotQ4_0x8V<3>, DotQ4_0x8V<4>>;
    v.q8_0x8 = ByTokens<BlockQ8_0x8, DotQ8_0x8V<1>, DotQ8_0x8V<2>, DotQ8_0x8V<3>, DotQ8_0x8V<4>>;
  }
  return v;
}

}  // namespace

const CpuKernels& Avx512VnniCpuKernels(bool wide) {
  static const CpuKernels k256 = Make(false), k512 = Make(true);
  return wide ? k512 : k256;
}

}  // namespace qb::kernels::cpu
