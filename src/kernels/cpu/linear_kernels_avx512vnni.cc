// AVX-512 VNNI versions of the 8-row interleaved micro-kernels (Q4_0x8, Q8_0x8): vpdpbusd
// multiplies u8 x s8 in groups of 4 and adds into int32 in one instruction, where AVX2 needs
// vpmaddubsw, vpmaddwd and vpaddd. Same integer sums as the AVX2 kernels (nothing saturates in
// either). The 256-bit kernels (QB_AVX512_256=1: for CPUs whose clock drops under 512-bit
// vectors, as older Xeons') also do the same float operations in the same order: bit-identical
// to AVX2. The 512-bit ones (the default) keep two float sums per row to the end: within float
// rounding of AVX2.
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

// 512-bit versions: one 64-byte load holds block columns c (lanes 0..7) and c + 1 (lanes 8..15)
// of the 8 rows; one vpermd per load, shared by every token, pairs them up (lanes 2j and 2j + 1:
// row j, columns c and c + 1), so each token's activations are one 8-byte broadcast straight
// from memory and each vpdpbusd does two block columns, with no per-token shuffles or sign
// fixes in the inner loop. Each lane pair's float sums (the even and the odd block columns) are
// added once, at the end. Per block and (row group, token) that leaves 4 vpdpbusd and 3
// multiply-pipe epilogue ops (convert, scale, FMA): measured at about one vpdpbusd a cycle,
// half the pipes' peak, which is what 32-value blocks with their own scales allow. (Two groups
// stacked in one register, one block column a vpdpbusd, measured no faster.)
inline __m512i PairUp(__m512i v) {
  return _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15), v);
}

inline __m512i Bcast8(const int8_t* p) {  // 8 activation bytes in every 64-bit lane
  int64_t v;
  __builtin_memcpy(&v, p, 8);
  return _mm512_set1_epi64(v);
}

// The 8 rows' scales, each in two lanes (2j and 2j + 1).
inline __m512 PairScales(const uint16_t* d) {
  const __m512 dw = _mm512_zextps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d))));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7), dw);
}

// acc += (pair sums - corr) * dw * d, with both lanes of a pair holding row j's values.
inline __m512 Epilogue(__m512i s, int32_t corr, __m512 dw, float d, __m512 acc) {
  const __m512i sum = _mm512_mask_sub_epi32(s, 0x5555, s, _mm512_set1_epi32(corr));
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(dw, _mm512_set1_ps(d)), acc);
}

inline void StoreEvenLanes(__m512 acc, float* out) {
  acc = _mm512_add_ps(acc, _mm512_permute_ps(acc, 0xB1));
  _mm256_storeu_ps(out, _mm512_castps512_ps256(
                            _mm512_permutexvar_ps(_mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14), acc)));
}

// RG groups of 8 rows (RG = 2: 16 rows, the second group `stride` blocks after the first) against
// NT tokens: each activation broadcast feeds RG vpdpbusd, each weight load NT.
template <int NT, int RG>
void DotQ4_0x8Z(const BlockQ4_0x8* w, int64_t stride, const ActBlock* const* acts, int64_t nb, float* out) {
  __m512 acc[RG][NT];
  for (int g = 0; g < RG; ++g)
    for (int t = 0; t < NT; ++t) acc[g][t] = _mm512_setzero_ps();
  const __m512i low = _mm512_set1_epi8(0x0f);
  for (int64_t b = 0; b < nb; ++b) {
    __m512i s[RG][NT];
    for (int g = 0; g < RG; ++g)
      for (int t = 0; t < NT; ++t) s[g][t] = _mm512_setzero_si512();
    _Pragma("GCC unroll 2") for (int c = 0; c < 4; c += 2) {
      __m512i lo[RG], hi[RG];
      for (int g = 0; g < RG; ++g) {
        const __m512i v = PairUp(_mm512_loadu_si512(w[b + g * stride].qs + 32 * c));
        lo[g] = _mm512_and_si512(v, low);
        hi[g] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
      }
      _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
        const __m512i xl = Bcast8(acts[t][b].q + 4 * c), xh = Bcast8(acts[t][b].q + 4 * c + 16);
        for (int g = 0; g < RG; ++g) s[g][t] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(s[g][t], lo[g], xl), hi[g], xh);
      }
    }
    for (int g = 0; g < RG; ++g) {
      const __m512 dw = PairScales(w[b + g * stride].d);
      for (int t = 0; t < NT; ++t) acc[g][t] = Epilogue(s[g][t], 8 * acts[t][b].qsum, dw, acts[t][b].d, acc[g][t]);
    }
  }
  for (int g = 0; g < RG; ++g)
    for (int t = 0; t < NT; ++t) StoreEvenLanes(acc[g][t], out + 8 * (t * RG + g));
}

// Q8_0x8: the weights plus 128 are the unsigned operand (exact for every int8), and 128 x the
// activations' sum comes off in integers: no per-token sign trick.
template <int NT, int RG>
void DotQ8_0x8Z(const BlockQ8_0x8* w, int64_t stride, const ActBlock* const* acts, int64_t nb, float* out) {
  __m512 acc[RG][NT];
  for (int g = 0; g < RG; ++g)
    for (int t = 0; t < NT; ++t) acc[g][t] = _mm512_setzero_ps();
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t b = 0; b < nb; ++b) {
    __m512i s[RG][NT];
    for (int g = 0; g < RG; ++g)
      for (int t = 0; t < NT; ++t) s[g][t] = _mm512_setzero_si512();
    _Pragma("GCC unroll 4") for (int c = 0; c < 8; c += 2) {
      __m512i q[RG];
      for (int g = 0; g < RG; ++g) q[g] = PairUp(_mm512_xor_si512(_mm512_loadu_si512(w[b + g * stride].qs + 32 * c), flip));
      _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
        const __m512i x = Bcast8(acts[t][b].q + 4 * c);
        for (int g = 0; g < RG; ++g) s[g][t] = _mm512_dpbusd_epi32(s[g][t], q[g], x);
      }
    }
    for (int g = 0; g < RG; ++g) {
      const __m512 dw = PairScales(w[b + g * stride].d);
      for (int t = 0; t < NT; ++t) acc[g][t] = Epilogue(s[g][t], 128 * acts[t][b].qsum, dw, acts[t][b].d, acc[g][t]);
    }
  }
  for (int g = 0; g < RG; ++g)
    for (int t = 0; t < NT; ++t) StoreEvenLanes(acc[g][t], out + 8 * (t * RG + g));
}

template <typename Block, void (*K1)(const Block*, int64_t, const ActBlock* const*, int64_t, float*),
          void (*K2)(const Block*, int64_t, const ActBlock* const*, int64_t, float*),
          void (*K3)(const Block*, int64_t, const ActBlock* const*, int64_t, float*),
          void (*K4)(const Block*, int64_t, const ActBlock* const*, int64_t, float*)>
void ByTokensZ(const void* groups, int64_t group_bytes, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  static_assert(kMaxTokens == 4);
  const auto* w = static_cast<const Block*>(groups);
  const int64_t stride = group_bytes / static_cast<int64_t>(sizeof(Block));
  switch (nt) {
    case 1: return K1(w, stride, acts, n / 32, out);
    case 2: return K2(w, stride, acts, n / 32, out);
    case 3: return K3(w, stride, acts, n / 32, out);
    default: return K4(w, stride, acts, n / 32, out);
  }
}

template <typename Block, void (*K1)(const Block*, int64_t, const ActBlock* const*, int64_t, float*),
          void (*K2)(const Block*, int64_t, const ActBlock* const*, int64_t, float*),
          void (*K3)(const Block*, int64_t, const ActBlock* const*, int64_t, float*),
          void (*K4)(const Block*, int64_t, const ActBlock* const*, int64_t, float*)>
void ByTokensZ1(const void* group, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  ByTokensZ<Block, K1, K2, K3, K4>(group, 0, acts, nt, n, out);
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
    v.q4_0x8 = ByTokensZ1<BlockQ4_0x8, DotQ4_0x8Z<1, 1>, DotQ4_0x8Z<2, 1>, DotQ4_0x8Z<3, 1>, DotQ4_0x8Z<4, 1>>;
    v.q8_0x8 = ByTokensZ1<BlockQ8_0x8, DotQ8_0x8Z<1, 1>, DotQ8_0x8Z<2, 1>, DotQ8_0x8Z<3, 1>, DotQ8_0x8Z<4, 1>>;
    v.q4_0x16 = ByTokensZ<BlockQ4_0x8, DotQ4_0x8Z<1, 2>, DotQ4_0x8Z<2, 2>, DotQ4_0x8Z<3, 2>, DotQ4_0x8Z<4, 2>>;
    v.q8_0x16 = ByTokensZ<BlockQ8_0x8, DotQ8_0x8Z<1, 2>, DotQ8_0x8Z<2, 2>, DotQ8_0x8Z<3, 2>, DotQ8_0x8Z<4, 2>>;
    AddAvx512FloatKernels(v);
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

const CpuKernels& Avx512Bf16CpuKernels(bool wide) {
  auto with_bf16 = [](CpuKernels k) {
    AddAvx512Bf16Kernels(k);
    return k;
  };
  static const CpuKernels k256 = with_bf16(Make(false)), k512 = with_bf16(Make(true));
  return wide ? k512 : k256;
}

}  // namespace qb::kernels::cpu
