// AVX2 + FMA + F16C versions of the Linear micro-kernels (this file is compiled with
// -mavx2 -mfma -mf16c and only called after a CPU check). Integer dot products use
// vpmaddubsw (u8 x s8 -> s16 pairs) then vpmaddwd (-> s32); one float FMA per 32 values.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/avx2_helpers.h"
#include "kernels/cpu/linear_kernels.h"
#include "kernels/cpu/unrolled.h"
#include "tensor/quant_blocks.h"
#include "util/half.h"

namespace qb::kernels::cpu {

namespace {

void Quantize(const float* x, int64_t n, ActBlock* out) {
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* v = x + b * 32;
    __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8), v2 = _mm256_loadu_ps(v + 16), v3 = _mm256_loadu_ps(v + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign_mask, v0), _mm256_andnot_ps(sign_mask, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sign_mask, v2), _mm256_andnot_ps(sign_mask, v3)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float d = amax / 127.f;
    const __m256 inv = _mm256_set1_ps(d > 0.f ? 1.f / d : 0.f);
    // Round to nearest even, as std::nearbyint does in the scalar path.
    __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, inv)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, inv));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, inv)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, inv));
    // Pack 32 int32 -> 32 int8 in order (packs interleave 128-bit lanes; fix with a permute).
    __m256i p01 = _mm256_packs_epi32(i0, i1), p23 = _mm256_packs_epi32(i2, i3);
    __m256i p = _mm256_packs_epi16(p01, p23);
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    ActBlock& a = out[b];
    a.d = d;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.q), p);
    // Sums of each 16: sign-extend to 16 bits and add horizontally.
    const __m256i w = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.q))),
                                        _mm256_set1_epi16(1));
    const __m256i w2 = _mm256_madd_epi16(
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.q + 16))), _mm256_set1_epi16(1));
    auto hsum_i = [](__m256i s) {
      __m128i x4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      x4 = _mm_add_epi32(x4, _mm_shuffle_epi32(x4, 0x4e));
      x4 = _mm_add_epi32(x4, _mm_shuffle_epi32(x4, 0xb1));
      return _mm_cvtsi128_si32(x4);
    };
    const int32_t s0 = hsum_i(w), s1 = hsum_i(w2);
    a.ds16[0] = d * static_cast<float>(s0);
    a.ds16[1] = d * static_cast<float>(s1);
    a.qsum = s0 + s1;
    a.neg8_qsum = -8 * a.qsum;
    a.neg128_qsum = -128 * a.qsum;
  }
}

// The kernels are templates on the number of tokens NT so that the per-token accumulators
// live in registers; Dispatch picks the instance.
// Blocks alternate between two accumulators per token (one chain would be bound by FMA
// latency), in the same order whatever the number of tokens, so that a token's result is
// bit-identical alone or batched.
template <int NT>
void DotQ8_0T(const BlockQ8_0* w, const ActBlock* const* acts, int64_t nb, float* out) {
  constexpr int U = 2;  // the same for every NT: a token's sums never depend on its batch
  __m256 acc[NT][U];
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t)
    for (int u = 0; u < U; ++u) acc[t][u] = _mm256_setzero_ps();
  int64_t b = 0;
  auto step = [&](int64_t blk, int u) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[blk].qs));
    const __m256i aq = _mm256_sign_epi8(q, q);
    const __m256 dw = _mm256_set1_ps(F16Table(w[blk].d));
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
      const ActBlock& a = acts[t][blk];
      const __m256i s = DotU8S8(aq, _mm256_sign_epi8(LoadQ(a), q));
      acc[t][u] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_broadcast_ss(&a.d)), acc[t][u]);
    }
  };
  for (; b + U <= nb; b += U)
    _Pragma("GCC unroll 2") for (int u = 0; u < U; ++u) step(b + u, u);
  for (; b < nb; ++b) step(b, 0);
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
    __m256 s = acc[t][0];
    for (int u = 1; u < U; ++u) s = _mm256_add_ps(s, acc[t][u]);
    out[t] = Hsum(s);
  }
}

// Q4_0: the nibbles minus 8 are signed int8; the sign trick makes them the unsigned operand.
// Q4_0 and Q4Z (GPTQ/AWQ): x . (q - z) = x . q - z * sum(x), with z = 8 for Q4_0 and the
// block's own zero point for Q4Z; the nibbles are the unsigned operand of vpmaddubsw directly,
// and sum(x) comes with the activation block (ds16), so the zero point costs one scalar FMA.
inline float ZeroPoint(const BlockQ4_0&) { return 8.f; }
inline float ZeroPoint(const BlockQ4Z& b) { return static_cast<float>(b.z); }

template <int NT, typename Block>
void DotQ4T(const Block* w, const ActBlock* const* acts, int64_t nb, float* out) {
  constexpr int U = 2;  // the same for every NT: a token's sums never depend on its batch
  __m256 acc[NT][U];
  float corr[NT] = {};
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t)
    for (int u = 0; u < U; ++u) acc[t][u] = _mm256_setzero_ps();
  auto step = [&](int64_t blk, int u) {
    const __m256i q = UnpackNibbles(w[blk].qs);
    const float dwf = F16Table(w[blk].d);
    const float dz = dwf * ZeroPoint(w[blk]);
    const __m256 dw = _mm256_set1_ps(dwf);
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
      const ActBlock& a = acts[t][blk];
      const __m256i s = DotU8S8(q, LoadQ(a));
      acc[t][u] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_broadcast_ss(&a.d)), acc[t][u]);
      corr[t] += dz * (a.ds16[0] + a.ds16[1]);
    }
  };
  int64_t b = 0;
  for (; b + U <= nb; b += U)
    _Pragma("GCC unroll 2") for (int u = 0; u < U; ++u) step(b + u, u);
  for (; b < nb; ++b) step(b, 0);
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
    __m256 sum = acc[t][0];
    for (int u = 1; u < U; ++u) sum = _mm256_add_ps(sum, acc[t][u]);
    out[t] = Hsum(sum) - corr[t];
  }
}

// K-quants meet 256-value activation blocks: the sub-block scales multiply the integer sums
// (vpmaddwd with the scale), so a whole super-block is one int32 vector and one float FMA.
template <int NT>
void DotQ4_KT(const BlockQ4_K* w, const ActBlockK* const* acts, int64_t nsb, float* out) {
  __m256 acc[NT];
  __m128 corr[NT];
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
    acc[t] = _mm256_setzero_ps();
    corr[t] = _mm_setzero_ps();
  }
  const __m256i low = _mm256_set1_epi8(0x0f);
  for (int64_t b = 0; b < nsb; ++b) {
    uint64_t sc8, m8;
    UnpackQ4KScales(w[b].scales, &sc8, &m8);
    const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(sc8))));
    const __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(m8)));
    __m256i isum[NT];
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
    _Pragma("GCC unroll 4") for (int g = 0; g < 4; ++g) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs + 32 * g));
      const __m256i q0 = _mm256_and_si256(v, low), q1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
      const __m256i s0 = _mm256_shuffle_epi8(sc16, BroadcastMask16(2 * g));
      const __m256i s1 = _mm256_shuffle_epi8(sc16, BroadcastMask16(2 * g + 1));
      _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
        const int8_t* x = acts[t][b].q + 64 * g;
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(q0, _mm256_load_si256(reinterpret_cast<const __m256i*>(x))), s0);
        const __m256i p1 =
            _mm256_madd_epi16(_mm256_maddubs_epi16(q1, _mm256_load_si256(reinterpret_cast<const __m256i*>(x + 32))), s1);
        isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(p0, p1));
      }
    }
    const float d = F16Table(w[b].d), dmin = F16Table(w[b].dmin);
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
      const ActBlockK& a = acts[t][b];
      const __m128i ms = _mm_madd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.bsums32)), m16);
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * a.d), acc[t]);
      corr[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(ms), _mm_set1_ps(dmin * a.d), corr[t]);
    }
  }
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
    __m128 c = _mm_add_ps(corr[t], _mm_movehl_ps(corr[t], corr[t]));
    c = _mm_add_ss(c, _mm_movehdup_ps(c));
    out[t] = Hsum(acc[t]) - _mm_cvtss_f32(c);
  }
}

// Q6_K: (q - 32) * x * scale summed in integers; the -32 goes through the 16-value sums.
template <int NT>
void DotQ6_KT(const BlockQ6_K* w, const ActBlockK* const* acts, int64_t nsb, float* out) {
  __m256 acc[NT];
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i low = _mm256_set1_epi8(0x0f), two = _mm256_set1_epi8(0x03);
  for (int64_t b = 0; b < nsb; ++b) {
    __m256i isum[NT];
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].ql + 64 * h));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].ql + 64 * h + 32));
      const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qh + 32 * h));
      __m256i q[4];
      q[0] = _mm256_or_si256(_mm256_and_si256(l0, low), _mm256_slli_epi16(_mm256_and_si256(hb, two), 4));
      q[1] = _mm256_or_si256(_mm256_and_si256(l1, low),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), two), 4));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), two), 4));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), two), 4));
      // The half's 8 scales as int16 in both 128-bit lanes; group g takes scale 2g in the low
      // lane (values 0-15) and 2g+1 in the high lane (values 16-31).
      const __m256i sc8 = _mm256_broadcastsi128_si256(
          _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w[b].scales + 8 * h))));
      _Pragma("GCC unroll 4") for (int g = 0; g < 4; ++g) {
        const __m256i mask = _mm256_set_m128i(_mm256_castsi256_si128(BroadcastMask16(2 * g + 1)),
                                              _mm256_castsi256_si128(BroadcastMask16(2 * g)));
        const __m256i s = _mm256_shuffle_epi8(sc8, mask);
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
          const int8_t* x = acts[t][b].q + 128 * h + 32 * g;
          const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(q[g], _mm256_load_si256(reinterpret_cast<const __m256i*>(x))), s);
          isum[t] = _mm256_add_epi32(isum[t], p);
        }
      }
    }
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].scales)));
    const float d = F16Table(w[b].d);
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
      const ActBlockK& a = acts[t][b];
      const __m256i c = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.bsums)), sc16);
      const __m256i total = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(c, 5));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_set1_ps(d * a.d), acc[t]);
    }
  }
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) out[t] = Hsum(acc[t]);
}

void QuantizeK(const float* x, int64_t n, ActBlockK* out) {
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / 256; ++b) {
    const float* v = x + b * 256;
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < 256; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign_mask, _mm256_loadu_ps(v + i)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float d = _mm_cvtss_f32(m4) / 127.f;
    const __m256 inv = _mm256_set1_ps(d > 0.f ? 1.f / d : 0.f);
    ActBlockK& a = out[b];
    a.d = d;
    for (int i = 0; i < 256; i += 32) {
      const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + i), inv));
      const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + i + 8), inv));
      const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + i + 16), inv));
      const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + i + 24), inv));
      __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
      p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_store_si256(reinterpret_cast<__m256i*>(a.q + i), p);
    }
    for (int j = 0; j < 16; ++j) {
      const __m128i q16 = _mm_load_si128(reinterpret_cast<const __m128i*>(a.q + 16 * j));
      __m128i s = _mm_madd_epi16(_mm_add_epi16(_mm_cvtepi8_epi16(q16), _mm_cvtepi8_epi16(_mm_srli_si128(q16, 8))),
                                 _mm_set1_epi16(1));
      s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
      s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
      a.bsums[j] = static_cast<int16_t>(_mm_cvtsi128_si32(s));
    }
    for (int j = 0; j < 8; ++j) a.bsums32[j] = static_cast<int16_t>(a.bsums[2 * j] + a.bsums[2 * j + 1]);
  }
}

// Q4_0x8: one 32-bit lane per row. For each group of 4 elements, the activations' 4 bytes are
// broadcast to all lanes; vpmaddubsw then multiplies 8 rows at once. The eight int16 partial
// sums of a block fit without overflow (8 x 2 x 15 x 127 < 32768), so one vpmaddwd per block;
// the nibbles' offset of 8 comes off in integers (8 x the activations' sum). The 128 weight
// bytes of a block are taken 32 at a time (low and high nibbles: element groups c and c + 4),
// each passed over by every token, so that only two weight registers are live and the int16
// sums and float accumulators of 4 tokens fit in the 16 ymm registers without spilling.
template <int NT>
void DotQ4_0x8T(const BlockQ4_0x8* w, const ActBlock* const* acts, int64_t nb, float* out) {
  __m256 acc[NT];
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i low = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b) {
    __m256i s16[NT];
    _Pragma("GCC unroll 4") for (int c = 0; c < 4; ++c) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs + 32 * c));
      const __m256i lo = _mm256_and_si256(v, low), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
      _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
        const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, Broadcast4(acts[t][b], c)),
                                           _mm256_maddubs_epi16(hi, Broadcast4(acts[t][b], c + 4)));
        s16[t] = c == 0 ? p : _mm256_add_epi16(s16[t], p);
        KeepInRegister(s16[t]);
      }
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].d)));
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
      const ActBlock& a = acts[t][b];
      const __m256i s32 = _mm256_sub_epi32(_mm256_madd_epi16(s16[t], ones), _mm256_set1_epi32(8 * a.qsum));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32), _mm256_mul_ps(dw, _mm256_broadcast_ss(&a.d)), acc[t]);
    }
  }
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

// Q8_0x8: signed x signed, so per group of 4 elements |w| meets sign(x, w) (the sign trick);
// the int16 pair sums can reach 2 x 128 x 127, so each group is widened to int32 at once. As in
// Q4_0x8, one group of weights at a time is passed over by every token (no spills).
template <int NT>
void DotQ8_0x8T(const BlockQ8_0x8* w, const ActBlock* const* acts, int64_t nb, float* out) {
  __m256 acc[NT];
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b) {
    __m256i s32[NT];
    _Pragma("GCC unroll 8") for (int c = 0; c < 8; ++c) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs + 32 * c));
      const __m256i aq = _mm256_sign_epi8(q, q);
      _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(Broadcast4(acts[t][b], c), q)), ones);
        s32[t] = c == 0 ? p : _mm256_add_epi32(s32[t], p);
        KeepInRegister(s32[t]);
      }
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].d)));
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32[t]), _mm256_mul_ps(dw, _mm256_broadcast_ss(&acts[t][b].d)), acc[t]);
    }
  }
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

template <int NT> struct Q4ZK { static void Run(const BlockQ4Z* w, const ActBlock* const* a, int64_t nb, float* o) { DotQ4T<NT>(w, a, nb, o); } };
void DotQ4Z(const void* row, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  Dispatch<BlockQ4Z, Q4ZK>(row, acts, nt, n / 32, out);
}
template <int NT> struct Q8_0K { static void Run(const BlockQ8_0* w, const ActBlock* const* a, int64_t nb, float* o) { DotQ8_0T<NT>(w, a, nb, o); } };
template <int NT> struct Q4_0K { static void Run(const BlockQ4_0* w, const ActBlock* const* a, int64_t nb, float* o) { DotQ4T<NT>(w, a, nb, o); } };
template <int NT> struct Q4_KK { static void Run(const BlockQ4_K* w, const ActBlockK* const* a, int64_t nb, float* o) { DotQ4_KT<NT>(w, a, nb, o); } };
template <int NT> struct Q6_KK { static void Run(const BlockQ6_K* w, const ActBlockK* const* a, int64_t nb, float* o) { DotQ6_KT<NT>(w, a, nb, o); } };

template <int NT> struct Q4_0x8K { static void Run(const BlockQ4_0x8* w, const ActBlock* const* a, int64_t nb, float* o) { DotQ4_0x8T<NT>(w, a, nb, o); } };

template <int NT> struct Q8_0x8K { static void Run(const BlockQ8_0x8* w, const ActBlock* const* a, int64_t nb, float* o) { DotQ8_0x8T<NT>(w, a, nb, o); } };

void DotQ8_0x8(const void* group, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  Dispatch<BlockQ8_0x8, Q8_0x8K>(group, acts, nt, n / 32, out);
}

void DotQ4_0x8(const void* group, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  Dispatch<BlockQ4_0x8, Q4_0x8K>(group, acts, nt, n / 32, out);
}

void DotQ8_0(const void* row, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  Dispatch<BlockQ8_0, Q8_0K>(row, acts, nt, n / 32, out);
}
void DotQ4_0(const void* row, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  Dispatch<BlockQ4_0, Q4_0K>(row, acts, nt, n / 32, out);
}
void DotQ4_K(const void* row, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
  Dispatch<BlockQ4_K, Q4_KK, ActBlockK>(row, acts, nt, n / 256, out);
}
void DotQ6_K(const void* row, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
  Dispatch<BlockQ6_K, Q6_KK, ActBlockK>(row, acts, nt, n / 256, out);
}

// Float weights. One summation order for every (row, token) whatever the batch, so that a
// token's result is bit-identical alone or batched: 8-lane chunks alternate between two
// accumulators (even and odd chunks; one chain would be bound by FMA latency), added at the end.
//
// One token (decode): rows one after another, a single stream for the prefetcher.
template <typename Load8>
float FloatRowDot(const uint8_t* row, const float* x, int64_t n, Load8 load8) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_fmadd_ps(load8(row, i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(load8(row, i + 8), _mm256_loadu_ps(x + i + 8), a1);
  }
  if (i < n) a0 = _mm256_fmadd_ps(load8(row, i), _mm256_loadu_ps(x + i), a0);
  return Hsum(_mm256_add_ps(a0, a1));
}

// Several tokens (prefill, batched decode): a register tile of NR <= 3 rows x NT <= 2 tokens x
// the two chains = 12 accumulators, plus one converted weight vector and one activation vector
// of AVX2's 16 registers. Each weight vector is converted once for NT tokens and each
// activation vector loaded once for NR rows, so the loop runs at the FMA units' rate rather
// than the load ports'. Same order per (row, token) as FloatRowDot.
template <int NR, int NT, typename Load8>
void FloatTile(const uint8_t* rows, int64_t stride, const float* const* xs, int64_t n, float* out, Load8 load8) {
  __m256 acc[2][NR][NT];
  QB_UNROLLED for (int c = 0; c < 2; ++c)
    QB_UNROLLED for (int r = 0; r < NR; ++r)
      QB_UNROLLED for (int t = 0; t < NT; ++t) acc[c][r][t] = _mm256_setzero_ps();
  auto chunk = [&](int64_t i, int c) {
    __m256 w[NR];
    QB_UNROLLED for (int r = 0; r < NR; ++r) w[r] = load8(rows + r * stride, i);
    QB_UNROLLED for (int t = 0; t < NT; ++t) {
      const __m256 x = _mm256_loadu_ps(xs[t] + i);
      QB_UNROLLED for (int r = 0; r < NR; ++r) acc[c][r][t] = _mm256_fmadd_ps(w[r], x, acc[c][r][t]);
    }
  };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    chunk(i, 0);
    chunk(i + 8, 1);
  }
  if (i < n) chunk(i, 0);
  QB_UNROLLED for (int r = 0; r < NR; ++r)
    QB_UNROLLED for (int t = 0; t < NT; ++t) out[t * kFloatRows + r] = Hsum(_mm256_add_ps(acc[0][r][t], acc[1][r][t]));
}

template <int NR, typename Load8>
void FloatTileNt(const uint8_t* rows, int64_t stride, const float* const* xs, int nt, int64_t n, float* out,
                 Load8 load8) {
  for (int t0 = 0; t0 < nt; t0 += 2) {  // token pairs, then a last single token
    if (nt - t0 >= 2)
      FloatTile<NR, 2>(rows, stride, xs + t0, n, out + t0 * kFloatRows, load8);
    else
      FloatTile<NR, 1>(rows, stride, xs + t0, n, out + t0 * kFloatRows, load8);
  }
}

template <typename Load8>
void FloatDotT(const void* rows, int64_t stride, int nr, const float* const* xs, int nt, int64_t n, float* out,
               Load8 load8) {
  static_assert(kFloatRows == 3, "FloatTile's instantiations assume tiles of up to 3 rows");
  const auto* r = static_cast<const uint8_t*>(rows);
  if (nt == 1) {
    for (int k = 0; k < nr; ++k) out[k] = FloatRowDot(r + k * stride, xs[0], n, load8);
    return;
  }
  switch (nr) {
    case 1: return FloatTileNt<1>(r, stride, xs, nt, n, out, load8);
    case 2: return FloatTileNt<2>(r, stride, xs, nt, n, out, load8);
    default: return FloatTileNt<3>(r, stride, xs, nt, n, out, load8);
  }
}

void DotF32(const void* rows, int64_t stride, int nr, const float* const* xs, int nt, int64_t n, float* out) {
  FloatDotT(rows, stride, nr, xs, nt, n, out,
            [](const uint8_t* r, int64_t i) { return _mm256_loadu_ps(reinterpret_cast<const float*>(r) + i); });
}

void DotF16(const void* rows, int64_t stride, int nr, const float* const* xs, int nt, int64_t n, float* out) {
  FloatDotT(rows, stride, nr, xs, nt, n, out, [](const uint8_t* r, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(r) + i)));
  });
}

void DotBF16(const void* rows, int64_t stride, int nr, const float* const* xs, int nt, int64_t n, float* out) {
  FloatDotT(rows, stride, nr, xs, nt, n, out, [](const uint8_t* r, int64_t i) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(r) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  });
}

float Dot(const float* a, const float* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float s = Hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void Axpy(float alpha, const float* x, float* y, int64_t n) {
  const __m256 a = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(a, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += alpha * x[i];
}

void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  int64_t i = 0;
  const __m256 one = _mm256_set1_ps(1.f), zero = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, Exp8(_mm256_sub_ps(zero, g))));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.f + std::exp(-gate[i])) * up[i];
}

// F16C's conversion rounds to nearest even, as F32ToF16 does (NaNs keep some payload bits).
void ToF16(const float* x, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) out[i] = F32ToF16(x[i]);
}

float ExpShifted(float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  const __m256 m = _mm256_set1_ps(mx);
  __m256 sum = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
    _mm256_storeu_ps(x + i, e);
    sum = _mm256_add_ps(sum, e);
  }
  float s = Hsum(sum);
  for (; i < n; ++i) s += (x[i] = std::exp(x[i] - mx));
  return s;
}

// KV storage types: Row(base, row, stride, offset) is the head's first element in row `row`
// (stride and offset in elements), Load8(head, d) its elements d..d+7 as f32 (d a multiple of 8).
template <typename E>
struct KvPlain {
  using T = E;
  static const E* Row(const void* base, int64_t row, int64_t stride, int64_t offset) {
    return static_cast<const E*>(base) + row * stride + offset;
  }
};
struct KvF32 : KvPlain<float> {
  static __m256 Load8(const float* p, int64_t d) { return _mm256_loadu_ps(p + d); }
};
struct KvF16 : KvPlain<uint16_t> {
  static __m256 Load8(const uint16_t* p, int64_t d) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + d)));
  }
};
struct KvBF16 : KvPlain<uint16_t> {
  static __m256 Load8(const uint16_t* p, int64_t d) {
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + d))), 16));
  }
};
// Q8_0 rows: blocks of 32 (stride and offset are multiples of 32); d * q, exact in f32.
struct KvQ8_0 {
  using T = BlockQ8_0;
  static const BlockQ8_0* Row(const void* base, int64_t row, int64_t stride, int64_t offset) {
    return static_cast<const BlockQ8_0*>(base) + (row * stride + offset) / 32;
  }
  static __m256 Load8(const BlockQ8_0* p, int64_t d) {
    const BlockQ8_0& b = p[d / 32];
    int64_t q8;
    std::memcpy(&q8, b.qs + d % 32, sizeof(q8));
    const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(q8)));
    return _mm256_mul_ps(q, _mm256_set1_ps(F16Table(b.d)));
  }
};


// scores[j] = scale * q . key(j) for j < n_keys: four keys at a time (four accumulators, one
// horizontal reduction for all four), then the remainder one by one.
template <typename Kv, typename KeyAt>
void Scores(const float* q, KeyAt key, int64_t n_keys, int64_t head_dim, float scale, float* scores) {
  int64_t j = 0;
  for (; j + 4 <= n_keys; j += 4) {
    const auto *k0 = key(j), *k1 = key(j + 1), *k2 = key(j + 2), *k3 = key(j + 3);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t d = 0; d < head_dim; d += 8) {
      const __m256 qv = _mm256_loadu_ps(q + d);
      a0 = _mm256_fmadd_ps(qv, Kv::Load8(k0, d), a0);
      a1 = _mm256_fmadd_ps(qv, Kv::Load8(k1, d), a1);
      a2 = _mm256_fmadd_ps(qv, Kv::Load8(k2, d), a2);
      a3 = _mm256_fmadd_ps(qv, Kv::Load8(k3, d), a3);
    }
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    _mm_storeu_ps(scores + j, _mm_mul_ps(s4, _mm_set1_ps(scale)));
  }
  for (; j < n_keys; ++j) {
    const auto* kj = key(j);
    __m256 a = _mm256_setzero_ps();
    for (int64_t d = 0; d < head_dim; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), Kv::Load8(kj, d), a);
    scores[j] = Hsum(a) * scale;
  }
}

// out[0..head_dim) += sum over j < n_keys of p[j] * value(j), 64 dimensions at a time with the
// running sums in registers (loaded from and stored back to out).
template <typename Kv, typename ValueAt>
void AccumulateValues(const float* p, ValueAt value, int64_t n_keys, int64_t head_dim, float* out) {
  for (int64_t d0 = 0; d0 < head_dim; d0 += 64) {
    __m256 o[8];
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; ++i) o[i] = _mm256_loadu_ps(out + d0 + 8 * i);
    for (int64_t j = 0; j < n_keys; ++j) {
      const __m256 pj = _mm256_set1_ps(p[j]);
      const auto* vj = value(j);
      _Pragma("GCC unroll 8") for (int i = 0; i < 8; ++i) o[i] = _mm256_fmadd_ps(pj, Kv::Load8(vj, d0 + 8 * i), o[i]);
    }
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; ++i) _mm256_storeu_ps(out + d0 + 8 * i, o[i]);
  }
}

inline void ScaleInPlace(float* x, int64_t n, float s) {
  const __m256 sv = _mm256_set1_ps(s);
  for (int64_t d = 0; d < n; d += 8) _mm256_storeu_ps(x + d, _mm256_mul_ps(_mm256_loadu_ps(x + d), sv));
}

// One query head: scores, softmax (AVX2 exp), the weighted sum of values, normalised at the end.
// head_dim must be a multiple of 64 (the dispatcher sends others to the portable version).
template <typename Kv>
void AttendT(const float* q, const void* k, const void* v, const int32_t* rows, int64_t n_keys, int64_t stride,
             int64_t offset, int64_t head_dim, float scale, float* scores, float* out) {
  Scores<Kv>(q, [&](int64_t j) { return Kv::Row(k, rows[j], stride, offset); }, n_keys, head_dim, scale, scores);
  const float inv = 1.f / ExpShifted(scores, n_keys);
  std::fill(out, out + head_dim, 0.f);
  AccumulateValues<Kv>(scores, [&](int64_t j) { return Kv::Row(v, rows[j], stride, offset); }, n_keys, head_dim, out);
  ScaleInPlace(out, head_dim, inv);
}

// The heads of a GQA group share their keys and values. Keys and values are taken a tile at a
// time (kKeyTile rows, converted to f32: exact), and every head of the group passes over the
// tile while it is in L1: first the scores of all heads, then the softmax per head, then the
// weighted values tile by tile (outputs kept in `out` between tiles). The arithmetic of each head
// is the same, in the same order, as AttendT's, so the result does not depend on the grouping.
void Attend(const float* q, int64_t n_q, const void* k, const void* v, DType kv_type, const int32_t* rows,
            int64_t n_keys, int64_t stride, int64_t offset, int64_t head_dim, float scale, float* scores, float* out) {
  if (head_dim % 64 != 0) {
    ScalarCpuKernels().attend(q, n_q, k, v, kv_type, rows, n_keys, stride, offset, head_dim, scale, scores, out);
    return;
  }
  auto run = [&](auto kv) {
    using Kv = decltype(kv);
    if (n_q == 1) {
      AttendT<Kv>(q, k, v, rows, n_keys, stride, offset, head_dim, scale, scores, out);
      return;
    }
    constexpr int64_t kKeyTile = 32;  // 2 x 32 rows x 64 dims x 4 bytes = 16 KiB
    thread_local std::vector<float> all_scores, tile, inv;
    all_scores.resize(static_cast<size_t>(n_q * n_keys));
    inv.resize(static_cast<size_t>(n_q));
    tile.resize(static_cast<size_t>(kKeyTile * head_dim));
    float* buf = tile.data();
    auto load_tile = [&](const void* src, int64_t j0, int64_t nj) {
      for (int64_t j = 0; j < nj; ++j) {
        const auto* row = Kv::Row(src, rows[j0 + j], stride, offset);
        for (int64_t d = 0; d < head_dim; d += 8) _mm256_storeu_ps(buf + j * head_dim + d, Kv::Load8(row, d));
      }
    };
    for (int64_t j0 = 0; j0 < n_keys; j0 += kKeyTile) {
      const int64_t nj = std::min(kKeyTile, n_keys - j0);
      load_tile(k, j0, nj);
      for (int64_t h = 0; h < n_q; ++h)
        Scores<KvF32>(q + h * head_dim, [&](int64_t j) { return buf + j * head_dim; }, nj, head_dim, scale,
                      all_scores.data() + h * n_keys + j0);
    }
    for (int64_t h = 0; h < n_q; ++h) {
      inv[static_cast<size_t>(h)] = 1.f / ExpShifted(all_scores.data() + h * n_keys, n_keys);
      std::fill(out + h * head_dim, out + (h + 1) * head_dim, 0.f);
    }
    for (int64_t j0 = 0; j0 < n_keys; j0 += kKeyTile) {
      const int64_t nj = std::min(kKeyTile, n_keys - j0);
      load_tile(v, j0, nj);
      for (int64_t h = 0; h < n_q; ++h)
        AccumulateValues<KvF32>(all_scores.data() + h * n_keys + j0, [&](int64_t j) { return buf + j * head_dim; }, nj,
                                head_dim, out + h * head_dim);
    }
    for (int64_t h = 0; h < n_q; ++h) ScaleInPlace(out + h * head_dim, head_dim, inv[static_cast<size_t>(h)]);
  };
  switch (kv_type) {
    case DType::kF16: run(KvF16{}); return;
    case DType::kBF16: run(KvBF16{}); return;
    case DType::kQ8_0: run(KvQ8_0{}); return;
    default: run(KvF32{}); return;
  }
}

}  // namespace

const CpuKernels& Avx2CpuKernels() {
  static const CpuKernels k = [] {
    CpuKernels v{Quantize, QuantizeK, DotQ8_0, DotQ4_0, DotQ4Z, DotQ4_K, DotQ6_K, DotQ4_0x8, DotQ8_0x8, DotF32, DotF16, DotBF16, Dot, Axpy, SiluMul, ExpShifted, Attend};
    v.to_f16 = ToF16;
    AddGgufAvx2Kernels(v);
    AddKQuantX8Avx2Kernels(v);
    AddAvx2AttentionKernels(v);
    return v;
  }();
  return k;
}

}  // namespace qb::kernels::cpu
