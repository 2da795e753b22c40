// AVX-512 VNNI versions of the 8-row interleaved micro-kernels (Q4_0x8, Q8_0x8): vpdpbusd
// multiplies u8 x s8 in groups of 4 and adds into int32 in one instruction, where AVX2 needs
// vpmaddubsw, vpmaddwd and vpaddd. Same integer sums as the AVX2 kernels (nothing saturates in
// either), and the same float operations in the same order: bit-identical to AVX2. 256-bit
// 8-row kernels for decode; 512-bit 32-row kernels for more tokens (not with QB_AVX512_256=1:
// for CPUs whose clock drops under 512-bit vectors, as older Xeons').
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
#pragma GCC diagnostic ignored "-Wuninitialized"

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

// 512-bit versions, for more than one call's tokens (prefill, batched decode): 32 rows a call,
// two vectors of 16 (lane r: row r, from two 8-row groups side by side), so each lane sums a
// whole block of its row in integers, as the 256-bit kernels' lanes do, and then takes the same
// float operations in the same order: bit-identical to them and to AVX2, so a token's result
// does not depend on how many others share its call. Each activation broadcast feeds both
// vectors; the zero point's correction is where the integer sums start (neg8_qsum /
// neg128_qsum, one broadcast load); per block and (16 rows, token) that leaves 8 vpdpbusd and
// 3 float operations (convert, scale, FMA). Decode (a few tokens) keeps the 256-bit 8-row
// kernels: it streams the weights once from memory, where they measured as fast, and reading
// four groups' streams at once was slower there.
inline __m512i Pair256(const void* lo, const void* hi) {  // 32 bytes of one group, 32 of the next
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(static_cast<const __m256i*>(lo))),
                            _mm256_loadu_si256(static_cast<const __m256i*>(hi)), 1);
}

inline __m512 PairScales(const uint16_t* lo, const uint16_t* hi) {  // 16 rows' f16 scales
  return _mm512_cvtph_ps(_mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lo))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(hi)), 1));
}

inline __m512i Bcast4Z(const ActBlock& a, int c) {  // activations 4c..4c+3 in every 32-bit lane
  int32_t v;
  __builtin_memcpy(&v, a.q + 4 * c, 4);
  return _mm512_set1_epi32(v);
}

// Prefetches the lines of [p, p + bytes) into L2 (bytes a multiple of 64; 0: nothing).
inline void PrefetchL2(const uint8_t* p, int64_t bytes) {
  for (int64_t i = 0; i < bytes; i += 64) _mm_prefetch(reinterpret_cast<const char*>(p + i), _MM_HINT_T1);
}

// Q4_0: nibbles (0..15) are the unsigned operand; the sums start at -8 x the activations' sum.
// The low and the high nibbles' products go to separate integer sums, added before the float
// work (exact, so the result is the same as one sum's): 16 independent vpdpbusd chains of 4
// instead of 8 of 8, which leaves the out-of-order core more to schedule around each load.
template <int NT>
void DotQ4_0x32(const BlockQ4_0x8* w, int64_t stride, const ActBlock* const* acts, int64_t nb, float* out,
                int64_t out_stride, const uint8_t* prefetch, int64_t prefetch_step) {
  __m512 acc[2][NT];
  _Pragma("GCC unroll 2") for (int p = 0; p < 2; ++p)
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) acc[p][t] = _mm512_setzero_ps();
  const __m512i low = _mm512_set1_epi8(0x0f);
  for (int64_t b = 0; b < nb; ++b) {
    PrefetchL2(prefetch + b * prefetch_step, prefetch_step);
    const BlockQ4_0x8* g[4] = {w + b, w + b + stride, w + b + 2 * stride, w + b + 3 * stride};
    __m512i s[2][NT], u[2][NT];
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
      s[0][t] = _mm512_set1_epi32(acts[t][b].neg8_qsum);
      s[1][t] = s[0][t];
      u[0][t] = _mm512_setzero_si512();
      u[1][t] = u[0][t];
    }
    _Pragma("GCC unroll 4") for (int c = 0; c < 4; ++c) {
      __m512i lo[2], hi[2];
      _Pragma("GCC unroll 2") for (int p = 0; p < 2; ++p) {
        const __m512i v = Pair256(g[2 * p]->qs + 32 * c, g[2 * p + 1]->qs + 32 * c);
        lo[p] = _mm512_and_si512(v, low);
        hi[p] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
      }
      _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
        const __m512i xl = Bcast4Z(acts[t][b], c), xh = Bcast4Z(acts[t][b], c + 4);
        _Pragma("GCC unroll 2") for (int p = 0; p < 2; ++p) {
          s[p][t] = _mm512_dpbusd_epi32(s[p][t], lo[p], xl);
          u[p][t] = _mm512_dpbusd_epi32(u[p][t], hi[p], xh);
        }
      }
    }
    _Pragma("GCC unroll 2") for (int p = 0; p < 2; ++p) {
      const __m512 dw = PairScales(g[2 * p]->d, g[2 * p + 1]->d);
      _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
        const __m512i sum = _mm512_add_epi32(s[p][t], u[p][t]);
        acc[p][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(dw, _mm512_set1_ps(acts[t][b].d)), acc[p][t]);
      }
    }
  }
  _Pragma("GCC unroll 2") for (int p = 0; p < 2; ++p)
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) _mm512_storeu_ps(out + out_stride * t + 16 * p, acc[p][t]);
}

// Q8_0: the weights plus 128 are the unsigned operand (exact for every int8); the sums start at
// -128 x the activations' sum. No per-token sign trick.
template <int NT>
void DotQ8_0x32(const BlockQ8_0x8* w, int64_t stride, const ActBlock* const* acts, int64_t nb, float* out,
                int64_t out_stride, const uint8_t* prefetch, int64_t prefetch_step) {
  __m512 acc[2][NT];
  _Pragma("GCC unroll 2") for (int p = 0; p < 2; ++p)
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) acc[p][t] = _mm512_setzero_ps();
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t b = 0; b < nb; ++b) {
    PrefetchL2(prefetch + b * prefetch_step, prefetch_step);
    const BlockQ8_0x8* g[4] = {w + b, w + b + stride, w + b + 2 * stride, w + b + 3 * stride};
    __m512i s[2][NT];
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
      s[0][t] = _mm512_set1_epi32(acts[t][b].neg128_qsum);
      s[1][t] = s[0][t];
    }
    _Pragma("GCC unroll 8") for (int c = 0; c < 8; ++c) {
      __m512i q[2];
      _Pragma("GCC unroll 2") for (int p = 0; p < 2; ++p)
        q[p] = _mm512_xor_si512(Pair256(g[2 * p]->qs + 32 * c, g[2 * p + 1]->qs + 32 * c), flip);
      _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
        const __m512i x = Bcast4Z(acts[t][b], c);
        _Pragma("GCC unroll 2") for (int p = 0; p < 2; ++p) s[p][t] = _mm512_dpbusd_epi32(s[p][t], q[p], x);
      }
    }
    _Pragma("GCC unroll 2") for (int p = 0; p < 2; ++p) {
      const __m512 dw = PairScales(g[2 * p]->d, g[2 * p + 1]->d);
      _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t)
        acc[p][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[p][t]), _mm512_mul_ps(dw, _mm512_set1_ps(acts[t][b].d)), acc[p][t]);
    }
  }
  _Pragma("GCC unroll 2") for (int p = 0; p < 2; ++p)
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) _mm512_storeu_ps(out + out_stride * t + 16 * p, acc[p][t]);
}

template <typename Block>
using Dot32 = void (*)(const Block*, int64_t, const ActBlock* const*, int64_t, float*, int64_t, const uint8_t*, int64_t);

template <typename Block, Dot32<Block> K1, Dot32<Block> K2, Dot32<Block> K3, Dot32<Block> K4>
void ByTokens32(const void* groups, int64_t group_bytes, const ActBlock* const* acts, int nt, int64_t n, float* out,
                int64_t out_stride, const uint8_t* prefetch, int64_t prefetch_step) {
  static_assert(kMaxTokens == 4);
  const auto* w = static_cast<const Block*>(groups);
  const int64_t stride = group_bytes / static_cast<int64_t>(sizeof(Block));
  switch (nt) {
    case 1: return K1(w, stride, acts, n / 32, out, out_stride, prefetch, prefetch_step);
    case 2: return K2(w, stride, acts, n / 32, out, out_stride, prefetch, prefetch_step);
    case 3: return K3(w, stride, acts, n / 32, out, out_stride, prefetch, prefetch_step);
    default: return K4(w, stride, acts, n / 32, out, out_stride, prefetch, prefetch_step);
  }
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
  v.q4_0x8 = ByTokens<BlockQ4_0x8, DotQ4_0x8V<1>, DotQ4_0x8V<2>, DotQ4_0x8V<3>, DotQ4_0x8V<4>>;
  v.q8_0x8 = ByTokens<BlockQ8_0x8, DotQ8_0x8V<1>, DotQ8_0x8V<2>, DotQ8_0x8V<3>, DotQ8_0x8V<4>>;
  if (wide) {
    v.q4_0x32 = ByTokens32<BlockQ4_0x8, DotQ4_0x32<1>, DotQ4_0x32<2>, DotQ4_0x32<3>, DotQ4_0x32<4>>;
    v.q8_0x32 = ByTokens32<BlockQ8_0x8, DotQ8_0x32<1>, DotQ8_0x32<2>, DotQ8_0x32<3>, DotQ8_0x32<4>>;
    AddAvx512FloatKernels(v);
    AddAvx512AttentionKernels(v);
  }
  return v;
}

}  // namespace

const CpuKernels& Avx512VnniCpuKernels(bool wide) {
  static const CpuKernels k256 = Make(false), k512 = Make(true);
  return wide ? k512 : k256;
}

const CpuKernels& Avx512Bf16CpuKernels(bool wide) {
  auto with_bf16 = [](CpuKernels k) {
    AddAvx512Bf16Kernels(k);
    return k;
  };
  static const CpuKernels k256 = with_bf16(Make(false)), k512 = with_bf16(Make(true));
  return wide ? k512 : k256;
}

}  // namespace qb::kernels::cpu
