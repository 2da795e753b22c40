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

// F16 and BF16 weights, 512-bit: 16 weights converted to f32 per load and used for every token
// of the call, NR <= 3 rows x NT <= 4 tokens with one accumulator each (12 FMA chains in
// flight), a masked last chunk (masked loads only there: in the loop they made the F16 kernel
// slower than AVX2's, 16.6 vs 12.3 ms at 4864 x 896 x 128 on a Zen 5; plain loads, 8.5 ms).
// Every (row, token) sees the same operations in the same order whatever the tile: a token's
// result does not depend on its batch. One token (decode) takes one row at a time: one memory
// stream. (With AVX512_BF16, BF16 weights take linear_kernels_avx512bf16.cc instead.)
struct F16To32 {
  static __m512 Load(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static __m512 Load(const uint16_t* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
};
struct Bf16To32 {
  static __m512 Widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  static __m512 Load(const uint16_t* p) { return Widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static __m512 Load(const uint16_t* p, __mmask16 m) { return Widen(_mm256_maskz_loadu_epi16(m, p)); }
};

template <typename Cvt, int NR, int NT>
void HalfTile(const uint8_t* rows, int64_t stride, const float* const* xs, int64_t n, float* out) {
  __m512 acc[NR][NT];
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_setzero_ps();
  auto row = [&](int r) { return reinterpret_cast<const uint16_t*>(rows + r * stride); };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 w[NR];
    for (int r = 0; r < NR; ++r) w[r] = Cvt::Load(row(r) + i);
    for (int t = 0; t < NT; ++t) {
      const __m512 x = _mm512_loadu_ps(xs[t] + i);
      for (int r = 0; r < NR; ++r) acc[r][t] = _mm512_fmadd_ps(w[r], x, acc[r][t]);
    }
  }
  if (i < n) {
    const auto m = static_cast<__mmask16>((1u << (n - i)) - 1);
    __m512 w[NR];
    for (int r = 0; r < NR; ++r) w[r] = Cvt::Load(row(r) + i, m);
    for (int t = 0; t < NT; ++t) {
      const __m512 x = _mm512_maskz_loadu_ps(m, xs[t] + i);
      for (int r = 0; r < NR; ++r) acc[r][t] = _mm512_fmadd_ps(w[r], x, acc[r][t]);
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) out[t * kFloatRows + r] = _mm512_reduce_add_ps(acc[r][t]);
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

// Attention of a GQA group (n_q query heads over the same keys), 512-bit: keys and values a
// tile of 32 rows at a time converted to f32 (exact) on the stack; for each head, the scores of
// 8 keys at a time (one 16-lane accumulator per key over head_dim, then one reduction tree for
// the 8), the softmax (the AVX2 exp), and the weighted values with head_dim / 16 accumulators
// held across the tile. Every head's arithmetic is the same whatever n_q: a head's result does
// not depend on its group, nor a token's on its batch. `scratch` holds n_q * n_keys floats.
struct KvRowsF32 {
  static void Load(const void* base, int64_t row, int64_t stride, int64_t offset, int64_t hd, float* dst) {
    const float* p = static_cast<const float*>(base) + row * stride + offset;
    for (int64_t d = 0; d < hd; d += 16) _mm512_storeu_ps(dst + d, _mm512_loadu_ps(p + d));
  }
};
struct KvRowsF16 {
  static void Load(const void* base, int64_t row, int64_t stride, int64_t offset, int64_t hd, float* dst) {
    const uint16_t* p = static_cast<const uint16_t*>(base) + row * stride + offset;
    for (int64_t d = 0; d < hd; d += 16) _mm512_storeu_ps(dst + d, F16To32::Load(p + d));
  }
};
struct KvRowsBF16 {
  static void Load(const void* base, int64_t row, int64_t stride, int64_t offset, int64_t hd, float* dst) {
    const uint16_t* p = static_cast<const uint16_t*>(base) + row * stride + offset;
    for (int64_t d = 0; d < hd; d += 16) _mm512_storeu_ps(dst + d, Bf16To32::Load(p + d));
  }
};
struct KvRowsQ8_0 {  // blocks of 32 (stride and offset multiples of 32): d * q, exact in f32
  static void Load(const void* base, int64_t row, int64_t stride, int64_t offset, int64_t hd, float* dst) {
    const BlockQ8_0* b = static_cast<const BlockQ8_0*>(base) + (row * stride + offset) / 32;
    for (int64_t d = 0; d < hd; d += 32, ++b) {
      const __m512 scale = _mm512_set1_ps(kF16ToF32Table[b->d]);
      for (int h = 0; h < 2; ++h) {
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs + 16 * h));
        _mm512_storeu_ps(dst + d + 16 * h, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), scale));
      }
    }
  }
};

inline __m256 Fold(__m512 a) {
  return _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
}

// scores[j] = scale * q . key(j), keys the nj rows of `keys` (head_dim apart).
void TileScores(const float* q, const float* keys, int64_t nj, int64_t hd, float scale, float* scores) {
  int64_t j = 0;
  for (; j + 8 <= nj; j += 8) {
    __m512 a[8];
    for (int i = 0; i < 8; ++i) a[i] = _mm512_setzero_ps();
    for (int64_t d = 0; d < hd; d += 16) {
      const __m512 qv = _mm512_loadu_ps(q + d);
      for (int i = 0; i < 8; ++i) a[i] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(keys + (j + i) * hd + d), a[i]);
    }
    const __m256 g0 = _mm256_hadd_ps(_mm256_hadd_ps(Fold(a[0]), Fold(a[1])), _mm256_hadd_ps(Fold(a[2]), Fold(a[3])));
    const __m256 g1 = _mm256_hadd_ps(_mm256_hadd_ps(Fold(a[4]), Fold(a[5])), _mm256_hadd_ps(Fold(a[6]), Fold(a[7])));
    const __m256 sum = _mm256_add_ps(_mm256_permute2f128_ps(g0, g1, 0x20), _mm256_permute2f128_ps(g0, g1, 0x31));
    _mm256_storeu_ps(scores + j, _mm256_mul_ps(sum, _mm256_set1_ps(scale)));
  }
  for (; j < nj; ++j) {
    __m512 a = _mm512_setzero_ps();
    for (int64_t d = 0; d < hd; d += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_loadu_ps(keys + j * hd + d), a);
    scores[j] = _mm512_reduce_add_ps(a) * scale;
  }
}

// out[0..hd) += sum over j < nj of p[j] * values row j; hd <= kMaxHeadDim.
constexpr int64_t kMaxHeadDim = 256, kAttnTile = 32;
void TileValues(const float* p, const float* values, int64_t nj, int64_t hd, float* out) {
  for (int64_t d0 = 0; d0 < hd; d0 += 128) {  // 8 accumulators of 16 lanes at a time
    const int nacc = static_cast<int>((hd - d0 < 128 ? hd - d0 : 128) / 16);
    __m512 o[8];
    for (int i = 0; i < nacc; ++i) o[i] = _mm512_loadu_ps(out + d0 + 16 * i);
    for (int64_t j = 0; j < nj; ++j) {
      const __m512 pj = _mm512_set1_ps(p[j]);
      for (int i = 0; i < nacc; ++i) o[i] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(values + j * hd + d0 + 16 * i), o[i]);
    }
    for (int i = 0; i < nacc; ++i) _mm512_storeu_ps(out + d0 + 16 * i, o[i]);
  }
}

template <typename Kv>
void AttendGroup(const float* q, int64_t n_q, const void* k, const void* v, const int32_t* rows, int64_t n_keys,
                 int64_t stride, int64_t offset, int64_t hd, float scale, float* all_scores, float* out) {
  alignas(64) float tile[kAttnTile * kMaxHeadDim];
  float inv[64];
  for (int64_t j0 = 0; j0 < n_keys; j0 += kAttnTile) {
    const int64_t nj = n_keys - j0 < kAttnTile ? n_keys - j0 : kAttnTile;
    for (int64_t j = 0; j < nj; ++j) Kv::Load(k, rows[j0 + j], stride, offset, hd, tile + j * hd);
    for (int64_t h = 0; h < n_q; ++h) TileScores(q + h * hd, tile, nj, hd, scale, all_scores + h * n_keys + j0);
  }
  const CpuKernels& avx2 = Avx2CpuKernels();
  for (int64_t h = 0; h < n_q; ++h) {
    inv[h] = 1.f / avx2.exp_shifted(all_scores + h * n_keys, n_keys);
    for (int64_t d = 0; d < hd; d += 16) _mm512_storeu_ps(out + h * hd + d, _mm512_setzero_ps());
  }
  for (int64_t j0 = 0; j0 < n_keys; j0 += kAttnTile) {
    const int64_t nj = n_keys - j0 < kAttnTile ? n_keys - j0 : kAttnTile;
    for (int64_t j = 0; j < nj; ++j) Kv::Load(v, rows[j0 + j], stride, offset, hd, tile + j * hd);
    for (int64_t h = 0; h < n_q; ++h) TileValues(all_scores + h * n_keys + j0, tile, nj, hd, out + h * hd);
  }
  for (int64_t h = 0; h < n_q; ++h) {
    const __m512 s = _mm512_set1_ps(inv[h]);
    for (int64_t d = 0; d < hd; d += 16) _mm512_storeu_ps(out + h * hd + d, _mm512_mul_ps(_mm512_loadu_ps(out + h * hd + d), s));
  }
}

void Attend512(const float* q, int64_t n_q, const void* k, const void* v, DType kv_type, const int32_t* rows,
               int64_t n_keys, int64_t stride, int64_t offset, int64_t head_dim, float scale, float* scratch,
               float* out) {
  if (head_dim % 32 != 0 || head_dim > kMaxHeadDim || n_q > 64) {
    Avx2CpuKernels().attend(q, n_q, k, v, kv_type, rows, n_keys, stride, offset, head_dim, scale, scratch, out);
    return;
  }
  switch (kv_type) {
    case DType::kF16: return AttendGroup<KvRowsF16>(q, n_q, k, v, rows, n_keys, stride, offset, head_dim, scale, scratch, out);
    case DType::kBF16: return AttendGroup<KvRowsBF16>(q, n_q, k, v, rows, n_keys, stride, offset, head_dim, scale, scratch, out);
    case DType::kQ8_0: return AttendGroup<KvRowsQ8_0>(q, n_q, k, v, rows, n_keys, stride, offset, head_dim, scale, scratch, out);
    default: return AttendGroup<KvRowsF32>(q, n_q, k, v, rows, n_keys, stride, offset, head_dim, scale, scratch, out);
  }
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
    v.f16 = DotHalfZ<F16To32>;
    v.bf16 = DotHalfZ<Bf16To32>;
    v.attend = Attend512;
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
  static const CpuKernels k256 = [] {
    CpuKernels k = Make(false);
    AddAvx512Bf16Kernels(k);
    return k;
  }();
  static const CpuKernels k512 = [] {
    CpuKernels k = Make(true);
    AddAvx512Bf16Kernels(k);
    return k;
  }();
  return wide ? k512 : k256;
}

}  // namespace qb::kernels::cpu
