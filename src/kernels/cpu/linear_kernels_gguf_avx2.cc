// AVX2 micro-kernels of the GGUF types qwenbox reads but never writes (compiled with -mavx2
// -mfma -mf16c, only called after a CPU check). The codes are unpacked to bytes and meet the
// 8-bit activations in vpmaddubsw as in linear_kernels_avx2.cc:
// - Q4_1, Q5_0, Q5_1: unsigned codes (0..31) x activations; the offset (Q5_0's -16 x d, the
//   other two's m) multiplies the block's activation sum, one scalar FMA per block.
// - IQ4_NL: the 16-entry grid is a vpshufb table; signed values meet the activations through the
//   sign trick, as Q8_0 does.
// - Q2_K, Q3_K, Q5_K: as Q4_K / Q6_K, the sub-block scales multiply the integer sums (vpmaddwd),
//   the mins (Q2_K, Q5_K) and Q3_K's offset of 4 go through the activations' sub-block sums.
// Every kernel sums a token's blocks in the same order whatever the number of tokens, so a
// token's result is bit-identical alone or batched.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/avx2_helpers.h"
#include "kernels/cpu/linear_kernels.h"
#include "tensor/quant_blocks.h"

namespace qb::kernels::cpu {

namespace {

// Byte i = 0x10 where bit i of the little-endian word at qh is set, else 0.
inline __m256i HighBit4(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, sizeof(bits));
  const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int32_t>(bits)),
                                             _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                                              2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i select = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

inline __m256i Codes(const BlockQ4_1& b) { return UnpackNibbles(b.qs); }
inline __m256i Codes(const BlockQ5_0& b) { return _mm256_or_si256(UnpackNibbles(b.qs), HighBit4(b.qh)); }
inline __m256i Codes(const BlockQ5_1& b) { return _mm256_or_si256(UnpackNibbles(b.qs), HighBit4(b.qh)); }
// The value added to every element: d * code + offset.
inline float Offset(const BlockQ4_1& b, float) { return F16Table(b.m); }
inline float Offset(const BlockQ5_0&, float d) { return -16.f * d; }
inline float Offset(const BlockQ5_1& b, float) { return F16Table(b.m); }

template <int NT, typename Block>
void DotAffineT(const Block* w, const ActBlock* const* acts, int64_t nb, float* out) {
  constexpr int U = 2;  // two accumulator chains, the same for every NT
  __m256 acc[NT][U];
  float corr[NT] = {};
  for (int t = 0; t < NT; ++t)
    for (int u = 0; u < U; ++u) acc[t][u] = _mm256_setzero_ps();
  auto step = [&](int64_t blk, int u) {
    const __m256i q = Codes(w[blk]);
    const float dwf = F16Table(w[blk].d);
    const float off = Offset(w[blk], dwf);
    const __m256 dw = _mm256_set1_ps(dwf);
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
      const ActBlock& a = acts[t][blk];
      const __m256i s = DotU8S8(q, LoadQ(a));
      acc[t][u] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_broadcast_ss(&a.d)), acc[t][u]);
      corr[t] += off * (a.ds16[0] + a.ds16[1]);
    }
  };
  int64_t b = 0;
  for (; b + U <= nb; b += U)
    _Pragma("GCC unroll 2") for (int u = 0; u < U; ++u) step(b + u, u);
  for (; b < nb; ++b) step(b, 0);
  for (int t = 0; t < NT; ++t) out[t] = Hsum(_mm256_add_ps(acc[t][0], acc[t][1])) + corr[t];
}

template <int NT>
void DotIq4NlT(const BlockIq4Nl* w, const ActBlock* const* acts, int64_t nb, float* out) {
  constexpr int U = 2;
  __m256 acc[NT][U];
  for (int t = 0; t < NT; ++t)
    for (int u = 0; u < U; ++u) acc[t][u] = _mm256_setzero_ps();
  const __m256i grid = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4NlValues)));
  auto step = [&](int64_t blk, int u) {
    const __m256i v = _mm256_shuffle_epi8(grid, UnpackNibbles(w[blk].qs));
    const __m256i av = _mm256_sign_epi8(v, v);
    const __m256 dw = _mm256_set1_ps(F16Table(w[blk].d));
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
      const ActBlock& a = acts[t][blk];
      const __m256i s = DotU8S8(av, _mm256_sign_epi8(LoadQ(a), v));
      acc[t][u] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_broadcast_ss(&a.d)), acc[t][u]);
    }
  };
  int64_t b = 0;
  for (; b + U <= nb; b += U)
    _Pragma("GCC unroll 2") for (int u = 0; u < U; ++u) step(b + u, u);
  for (; b < nb; ++b) step(b, 0);
  for (int t = 0; t < NT; ++t) out[t] = Hsum(_mm256_add_ps(acc[t][0], acc[t][1]));
}

// Int16 scales s[2g] in the low 128-bit lane and s[2g + 1] in the high one, from 8 int16
// scales repeated in both lanes: for 32 values whose first 16 and last 16 are two sub-blocks.
inline __m256i LaneScales(__m256i sc8, int g) {
  const __m256i mask = _mm256_set_m128i(_mm256_castsi256_si128(BroadcastMask16(2 * g + 1)),
                                        _mm256_castsi256_si128(BroadcastMask16(2 * g)));
  return _mm256_shuffle_epi8(sc8, mask);
}

inline __m256i Load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Q2_K: 2-bit codes; code plane j of half h is element 128h + 32j + l (l < 32), sub-blocks
// 8h + 2j (l < 16) and 8h + 2j + 1.
template <int NT>
void DotQ2_KT(const BlockQ2_K* w, const ActBlockK* const* acts, int64_t nsb, float* out) {
  __m256 acc[NT], corr[NT];
  for (int t = 0; t < NT; ++t) acc[t] = corr[t] = _mm256_setzero_ps();
  const __m256i three = _mm256_set1_epi8(3);
  for (int64_t b = 0; b < nsb; ++b) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].scales));
    const __m128i sc_lo = _mm_and_si128(raw, _mm_set1_epi8(0x0f));
    const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0f)));
    __m256i isum[NT];
    for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i v = Load32(w[b].qs + 32 * h);
      const __m256i sc8 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(h == 0 ? sc_lo : _mm_srli_si128(sc_lo, 8)));
      _Pragma("GCC unroll 4") for (int j = 0; j < 4; ++j) {
        const __m256i q = _mm256_and_si256(_mm256_srli_epi16(v, 2 * j), three);
        const __m256i s = LaneScales(sc8, j);
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
          const __m256i x = _mm256_load_si256(reinterpret_cast<const __m256i*>(acts[t][b].q + 128 * h + 32 * j));
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), s));
        }
      }
    }
    const float d = F16Table(w[b].d), dmin = F16Table(w[b].dmin);
    for (int t = 0; t < NT; ++t) {
      const ActBlockK& a = acts[t][b];
      const __m256i m = _mm256_madd_epi16(Load32(a.bsums), mins);
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * a.d), acc[t]);
      corr[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), _mm256_set1_ps(dmin * a.d), corr[t]);
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = Hsum(acc[t]) - Hsum(corr[t]);
}

// The 16 Q3_K sub-block scales (stored as value + 32 in 6 bits), as int8, with 32-bit words.
inline __m128i UnpackQ3KScalesV(const uint8_t* p) {
  uint32_t a0, a1, a2;
  std::memcpy(&a0, p, 4);
  std::memcpy(&a1, p + 4, 4);
  std::memcpy(&a2, p + 8, 4);
  const uint32_t lo = 0x0f0f0f0fu, hi = 0x03030303u;
  const uint32_t s0 = (a0 & lo) | ((a2 & hi) << 4);
  const uint32_t s1 = (a1 & lo) | (((a2 >> 2) & hi) << 4);
  const uint32_t s2 = ((a0 >> 4) & lo) | (((a2 >> 4) & hi) << 4);
  const uint32_t s3 = ((a1 >> 4) & lo) | (((a2 >> 6) & hi) << 4);
  const __m128i v = _mm_setr_epi32(static_cast<int32_t>(s0), static_cast<int32_t>(s1), static_cast<int32_t>(s2),
                                   static_cast<int32_t>(s3));
  return _mm_sub_epi8(v, _mm_set1_epi8(32));
}

// Q3_K: codes u = 2 low bits (as Q2_K) + 4 x the hmask bit, value u - 4: the -4 goes through
// the sub-block activation sums.
template <int NT>
void DotQ3_KT(const BlockQ3_K* w, const ActBlockK* const* acts, int64_t nsb, float* out) {
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i three = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
  for (int64_t b = 0; b < nsb; ++b) {
    const __m128i sc = UnpackQ3KScalesV(w[b].scales);
    const __m256i hm = Load32(w[b].hmask);
    __m256i isum[NT];
    for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i v = Load32(w[b].qs + 32 * h);
      const __m256i sc8 = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h == 0 ? sc : _mm_srli_si128(sc, 8)));
      _Pragma("GCC unroll 4") for (int j = 0; j < 4; ++j) {
        const __m256i high = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + j), one);
        const __m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 2 * j), three), _mm256_slli_epi16(high, 2));
        const __m256i s = LaneScales(sc8, j);
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
          const __m256i x = _mm256_load_si256(reinterpret_cast<const __m256i*>(acts[t][b].q + 128 * h + 32 * j));
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), s));
        }
      }
    }
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc);
    const float d = F16Table(w[b].d);
    for (int t = 0; t < NT; ++t) {
      const ActBlockK& a = acts[t][b];
      const __m256i c = _mm256_madd_epi16(Load32(a.bsums), sc16);
      const __m256i total = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(c, 2));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_set1_ps(d * a.d), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = Hsum(acc[t]);
}

// Q5_K: Q4_K's nibbles and scales plus bit 4 of element 64g + 32i + l in bit 2g + i of qh[l].
template <int NT>
void DotQ5_KT(const BlockQ5_K* w, const ActBlockK* const* acts, int64_t nsb, float* out) {
  __m256 acc[NT];
  __m128 corr[NT];
  for (int t = 0; t < NT; ++t) {
    acc[t] = _mm256_setzero_ps();
    corr[t] = _mm_setzero_ps();
  }
  const __m256i low = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
  for (int64_t b = 0; b < nsb; ++b) {
    uint64_t sc8, m8;
    UnpackQ4KScales(w[b].scales, &sc8, &m8);
    const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(sc8))));
    const __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(m8)));
    const __m256i qh = Load32(w[b].qh);
    __m256i isum[NT];
    for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
    _Pragma("GCC unroll 4") for (int g = 0; g < 4; ++g) {
      const __m256i v = Load32(w[b].qs + 32 * g);
      const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), one), 4);
      const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g + 1), one), 4);
      const __m256i q0 = _mm256_or_si256(_mm256_and_si256(v, low), h0);
      const __m256i q1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), low), h1);
      const __m256i s0 = _mm256_shuffle_epi8(sc16, BroadcastMask16(2 * g));
      const __m256i s1 = _mm256_shuffle_epi8(sc16, BroadcastMask16(2 * g + 1));
      _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
        const int8_t* x = acts[t][b].q + 64 * g;
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q0, Load32(x)), s0);
        const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(q1, Load32(x + 32)), s1);
        isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(p0, p1));
      }
    }
    const float d = F16Table(w[b].d), dmin = F16Table(w[b].dmin);
    for (int t = 0; t < NT; ++t) {
      const ActBlockK& a = acts[t][b];
      const __m128i ms = _mm_madd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.bsums32)), m16);
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * a.d), acc[t]);
      corr[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(ms), _mm_set1_ps(dmin * a.d), corr[t]);
    }
  }
  for (int t = 0; t < NT; ++t) out[t] = Hsum(acc[t]) - Hsum(corr[t]);
}

// Q5_0x8 / Q5_1x8: the Q4_0x8 kernel (linear_kernels_avx2.cc) with each group's fifth bits
// shifted into place from the block's 32 high-bit bytes. The int16 sums of two byte groups fit
// (2 x 2 x 2 x 31 x 127 < 32768), so two vpmaddwd per block; Q5_0's offset of 16 comes off in
// integers, Q5_1's mins (one per row) multiply the token's block sum.
template <int NT, typename Block>
void DotQ5x8T(const Block* w, const ActBlock* const* acts, int64_t nb, float* out) {
  constexpr bool kHasMin = requires(const Block& b) { b.m; };
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i low = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10), ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i qh = Load32(w[b].qh);
    __m256i s16[NT], s32[NT];
    _Pragma("GCC unroll 4") for (int c = 0; c < 4; ++c) {
      const __m256i v = Load32(w[b].qs + 32 * c);
      const __m256i lo = _mm256_or_si256(_mm256_and_si256(v, low), _mm256_and_si256(_mm256_slli_epi16(qh, 4 - c), bit4));
      const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), low),
                                         _mm256_and_si256(_mm256_srli_epi16(qh, c), bit4));
      _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
        const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, Broadcast4(acts[t][b], c)),
                                           _mm256_maddubs_epi16(hi, Broadcast4(acts[t][b], c + 4)));
        if (c % 2 == 0) {
          s16[t] = p;
        } else {
          const __m256i wide = _mm256_madd_epi16(_mm256_add_epi16(s16[t], p), ones);
          s32[t] = c == 1 ? wide : _mm256_add_epi32(s32[t], wide);
          KeepInRegister(s32[t]);
        }
      }
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].d)));
    for (int t = 0; t < NT; ++t) {
      const ActBlock& a = acts[t][b];
      if constexpr (kHasMin) {
        const __m256 m = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].m)));
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32[t]), _mm256_mul_ps(dw, _mm256_broadcast_ss(&a.d)), acc[t]);
        acc[t] = _mm256_fmadd_ps(m, _mm256_set1_ps(a.ds16[0] + a.ds16[1]), acc[t]);
      } else {
        const __m256i s = _mm256_sub_epi32(s32[t], _mm256_set1_epi32(16 * a.qsum));
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_broadcast_ss(&a.d)), acc[t]);
      }
    }
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

// IQ4_NLx8: the Q4_0x8 layout; each byte group's codes become grid values (one vpshufb per
// nibble half) that meet the activations through the sign trick, as in Q8_0x8. Products of two
// int8 reach 2 x 127 x 127 per int16 pair, so each half is widened at once.
template <int NT>
void DotIq4Nlx8T(const BlockIq4Nlx8* w, const ActBlock* const* acts, int64_t nb, float* out) {
  __m256 acc[NT];
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i low = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  const __m256i grid = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4NlValues)));
  for (int64_t b = 0; b < nb; ++b) {
    __m256i s32[NT];
    _Pragma("GCC unroll 4") for (int c = 0; c < 4; ++c) {
      const __m256i v = Load32(w[b].qs + 32 * c);
      const __m256i lo = _mm256_shuffle_epi8(grid, _mm256_and_si256(v, low));
      const __m256i hi = _mm256_shuffle_epi8(grid, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
      const __m256i alo = _mm256_sign_epi8(lo, lo), ahi = _mm256_sign_epi8(hi, hi);
      _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(alo, _mm256_sign_epi8(Broadcast4(acts[t][b], c), lo)), ones);
        const __m256i p1 =
            _mm256_madd_epi16(_mm256_maddubs_epi16(ahi, _mm256_sign_epi8(Broadcast4(acts[t][b], c + 4), hi)), ones);
        const __m256i p = _mm256_add_epi32(p0, p1);
        s32[t] = c == 0 ? p : _mm256_add_epi32(s32[t], p);
        KeepInRegister(s32[t]);
      }
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].d)));
    for (int t = 0; t < NT; ++t) {
      const ActBlock& a = acts[t][b];
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32[t]), _mm256_mul_ps(dw, _mm256_broadcast_ss(&a.d)), acc[t]);
    }
  }
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

template <typename Block>
struct Affine {
  template <int NT>
  struct K {
    static void Run(const Block* w, const ActBlock* const* a, int64_t nb, float* o) { DotAffineT<NT>(w, a, nb, o); }
  };
};
template <int NT> struct Iq4NlK { static void Run(const BlockIq4Nl* w, const ActBlock* const* a, int64_t nb, float* o) { DotIq4NlT<NT>(w, a, nb, o); } };
template <int NT> struct Q2_KK { static void Run(const BlockQ2_K* w, const ActBlockK* const* a, int64_t nb, float* o) { DotQ2_KT<NT>(w, a, nb, o); } };
template <int NT> struct Q3_KK { static void Run(const BlockQ3_K* w, const ActBlockK* const* a, int64_t nb, float* o) { DotQ3_KT<NT>(w, a, nb, o); } };
template <typename Block>
struct Q5x8 {
  template <int NT>
  struct K {
    static void Run(const Block* w, const ActBlock* const* a, int64_t nb, float* o) { DotQ5x8T<NT>(w, a, nb, o); }
  };
};
template <int NT> struct Iq4Nlx8K { static void Run(const BlockIq4Nlx8* w, const ActBlock* const* a, int64_t nb, float* o) { DotIq4Nlx8T<NT>(w, a, nb, o); } };
template <int NT> struct Q5_KK { static void Run(const BlockQ5_K* w, const ActBlockK* const* a, int64_t nb, float* o) { DotQ5_KT<NT>(w, a, nb, o); } };

template <typename Block>
void DotAffine(const void* row, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  Dispatch<Block, Affine<Block>::template K>(row, acts, nt, n / 32, out);
}

}  // namespace

void AddGgufAvx2Kernels(CpuKernels& k) {
  k.q4_1 = DotAffine<BlockQ4_1>;
  k.q5_0 = DotAffine<BlockQ5_0>;
  k.q5_1 = DotAffine<BlockQ5_1>;
  k.iq4_nl = [](const void* row, const ActBlock* const* acts, int nt, int64_t n, float* out) {
    Dispatch<BlockIq4Nl, Iq4NlK>(row, acts, nt, n / 32, out);
  };
  k.q2_k = [](const void* row, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
    Dispatch<BlockQ2_K, Q2_KK, ActBlockK>(row, acts, nt, n / 256, out);
  };
  k.q3_k = [](const void* row, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
    Dispatch<BlockQ3_K, Q3_KK, ActBlockK>(row, acts, nt, n / 256, out);
  };
  k.q5_k = [](const void* row, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
    Dispatch<BlockQ5_K, Q5_KK, ActBlockK>(row, acts, nt, n / 256, out);
  };
  k.q5_0x8 = [](const void* group, const ActBlock* const* acts, int nt, int64_t n, float* out) {
    Dispatch<BlockQ5_0x8, Q5x8<BlockQ5_0x8>::K>(group, acts, nt, n / 32, out);
  };
  k.q5_1x8 = [](const void* group, const ActBlock* const* acts, int nt, int64_t n, float* out) {
    Dispatch<BlockQ5_1x8, Q5x8<BlockQ5_1x8>::K>(group, acts, nt, n / 32, out);
  };
  k.iq4_nlx8 = [](const void* group, const ActBlock* const* acts, int nt, int64_t n, float* out) {
    Dispatch<BlockIq4Nlx8, Iq4Nlx8K>(group, acts, nt, n / 32, out);
  };
}

}  // namespace qb::kernels::cpu
