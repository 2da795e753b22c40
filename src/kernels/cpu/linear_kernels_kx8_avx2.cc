// AVX2 micro-kernels of the 8-row interleaved K-quant layouts (BlockQ2_Kx8 ... BlockQ6_Kx8): one
// row per 32-bit lane, as the Q4_0x8 kernel, with the K-quants' sub-block scales applied in
// integers (vpmaddwd with each row's scale) and one float multiply-add per 256-value
// super-block. Compiled with -mavx2 -mfma -mf16c; only called after a CPU check.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/avx2_helpers.h"
#include "tensor/quant_blocks.h"

namespace qb::kernels::cpu {

namespace {

// 4 bytes (int8 activations, or two int16 sums) in every 32-bit lane.
inline __m256i Broadcast4At(const void* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm256_set1_epi32(v);
}

// Shuffle masks that copy int16 p (0 or 1) of every 32-bit lane to both halves of the lane:
// from the int16 pairs (scale of sub-block 2k, 2k + 1) of a row, the scale of one sub-block.
inline __m256i DupPairMask(int p) {
  const int base = p == 0 ? 0x01000100 : 0x03020302;
  return _mm256_setr_epi32(base, base + 0x04040404, base + 0x08080808, base + 0x0c0c0c0c, base, base + 0x04040404,
                           base + 0x08080808, base + 0x0c0c0c0c);
}

inline __m256i Load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i Load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

// Q4_Kx8 and Q5_Kx8. Per sub-block (32 values of 8 rows: 4 loads of 32 bytes, low and high
// nibbles, plus for Q5_K one load of fifth bits, put in place by a shift and a mask per nibble
// half) every token passes over the codes; its vpmaddubsw results sum in int16 without overflow
// (Q4_K: all eight, 8 x 2 x 15 x 127 < 32768; Q5_K: four at a time, 4 x 2 x 31 x 127) and meet
// the rows' scales in vpmaddwd. The mins go through the activations' 32-value sums: 4 vpmaddwd
// per super-block and token.
template <typename Block, int NT>
void DotKx8T(const Block* w, const ActBlockK* const* acts, int64_t nsb, float* out) {
  constexpr bool kFifthBit = Block::kSubBlockBytes > 128;
  constexpr int kWiden = kFifthBit ? 2 : 4;  // byte groups summed in int16 before vpmaddwd
  __m256 acc[NT];
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i low = _mm256_set1_epi8(0x0f), top = _mm256_set1_epi8(0x30), bit4 = _mm256_set1_epi8(0x10);
  const __m256i dup0 = DupPairMask(0), dup1 = DupPairMask(1);
  alignas(32) uint8_t sm[128];  // scales by index (0..63), then mins (64..127)
  for (int64_t b = 0; b < nsb; ++b) {
    const Block& x = w[b];
    {
      const __m256i sl = Load256(x.scales_lo), ml = Load256(x.mins_lo), h = Load256(x.high);
      auto put = [&](int at, __m256i lo4, __m256i hi2) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(sm + at),
                           _mm256_or_si256(_mm256_and_si256(lo4, low), _mm256_and_si256(hi2, top)));
      };
      put(0, sl, _mm256_slli_epi16(h, 4));
      put(32, _mm256_srli_epi16(sl, 4), _mm256_slli_epi16(h, 2));
      put(64, ml, h);
      put(96, _mm256_srli_epi16(ml, 4), _mm256_srli_epi16(h, 2));
    }
    __m256i isum[NT];
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
    for (int k = 0; k < 4; ++k) {  // sub-blocks 2k and 2k + 1: their scales come as one pair vector
      const __m256i pair = _mm256_cvtepu8_epi16(Load128(sm + 16 * k));
      _Pragma("GCC unroll 2") for (int p = 0; p < 2; ++p) {
        const int s = 2 * k + p;
        const uint8_t* q = x.q + Block::kSubBlockBytes * s;
        const __m256i sc = _mm256_shuffle_epi8(pair, p == 0 ? dup0 : dup1);
        __m256i fifth = _mm256_setzero_si256();
        if constexpr (kFifthBit) fifth = Load256(q + 128);
        __m256i s16[NT];
        _Pragma("GCC unroll 4") for (int c = 0; c < 4; ++c) {
          const __m256i v = Load256(q + 32 * c);
          __m256i lo = _mm256_and_si256(v, low), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
          if constexpr (kFifthBit) {  // bit c -> bit 4 of the low nibble's byte, bit c + 4 -> the high one's
            lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(fifth, 4 - c), bit4));
            hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_srli_epi16(fifth, c), bit4));
          }
          _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
            const int8_t* a = acts[t][b].q + 32 * s + 4 * c;
            const __m256i prod = _mm256_add_epi16(_mm256_maddubs_epi16(lo, Broadcast4At(a)),
                                                  _mm256_maddubs_epi16(hi, Broadcast4At(a + 16)));
            s16[t] = c % kWiden == 0 ? prod : _mm256_add_epi16(s16[t], prod);
            KeepInRegister(s16[t]);
            if (c % kWiden == kWiden - 1) {
              isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s16[t], sc));
              KeepInRegister(isum[t]);
            }
          }
        }
      }
    }
    const __m256 d = _mm256_cvtph_ps(Load128(x.d)), dmin = _mm256_cvtph_ps(Load128(x.dmin));
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
      const ActBlockK& a = acts[t][b];
      __m256i ms = _mm256_madd_epi16(_mm256_cvtepu8_epi16(Load128(sm + 64)), Broadcast4At(a.bsums32));
      _Pragma("GCC unroll 3") for (int k = 1; k < 4; ++k) ms = _mm256_add_epi32(
          ms, _mm256_madd_epi16(_mm256_cvtepu8_epi16(Load128(sm + 64 + 16 * k)), Broadcast4At(a.bsums32 + 2 * k)));
      const __m256 ad = _mm256_broadcast_ss(&a.d);
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_mul_ps(d, ad), acc[t]);
      acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms), _mm256_mul_ps(dmin, ad), acc[t]);
    }
  }
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

// Q6_Kx8. Per sub-block (16 values of 8 rows) three loads give the four groups' 6-bit codes
// (low nibbles | the top 2 bits moved to bits 4-5). Two vpmaddubsw results sum in int16 without
// overflow (2 x 2 x 63 x 127 < 32768), so a sub-block is two vpmaddwd with the rows' scales.
// The codes' offset of 32 goes through the activations' 16-value sums (8 vpmaddwd per
// super-block and token).
template <int NT>
void DotQ6_Kx8T(const BlockQ6_Kx8* w, const ActBlockK* const* acts, int64_t nsb, float* out) {
  __m256 acc[NT];
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i low = _mm256_set1_epi8(0x0f), top = _mm256_set1_epi8(0x30);
  const __m256i dup0 = DupPairMask(0), dup1 = DupPairMask(1);
  for (int64_t b = 0; b < nsb; ++b) {
    const BlockQ6_Kx8& x = w[b];
    __m256i isum[NT];
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
    for (int k = 0; k < 8; ++k) {  // sub-blocks 2k and 2k + 1: their scales come as one pair vector
      const __m256i pair = _mm256_cvtepi8_epi16(Load128(x.scales + 16 * k));
      _Pragma("GCC unroll 2") for (int p = 0; p < 2; ++p) {
        const int s = 2 * k + p;
        const uint8_t* q = x.q + 96 * s;
        const __m256i l0 = Load256(q), l1 = Load256(q + 32), hb = Load256(q + 64);
        const __m256i q0 = _mm256_or_si256(_mm256_and_si256(l0, low), _mm256_and_si256(_mm256_slli_epi16(hb, 4), top));
        const __m256i q1 = _mm256_or_si256(_mm256_and_si256(l1, low), _mm256_and_si256(_mm256_slli_epi16(hb, 2), top));
        const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low), _mm256_and_si256(hb, top));
        const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low),
                                           _mm256_and_si256(_mm256_srli_epi16(hb, 2), top));
        const __m256i sc = _mm256_shuffle_epi8(pair, p == 0 ? dup0 : dup1);
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
          const int8_t* a = acts[t][b].q + 16 * s;
          const __m256i pa =
              _mm256_add_epi16(_mm256_maddubs_epi16(q0, Broadcast4At(a)), _mm256_maddubs_epi16(q1, Broadcast4At(a + 4)));
          const __m256i pb =
              _mm256_add_epi16(_mm256_maddubs_epi16(q2, Broadcast4At(a + 8)), _mm256_maddubs_epi16(q3, Broadcast4At(a + 12)));
          isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(_mm256_madd_epi16(pa, sc), _mm256_madd_epi16(pb, sc)));
          KeepInRegister(isum[t]);
        }
      }
    }
    const __m256 d = _mm256_cvtph_ps(Load128(x.d));
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
      const ActBlockK& a = acts[t][b];
      __m256i c = _mm256_madd_epi16(_mm256_cvtepi8_epi16(Load128(x.scales)), Broadcast4At(a.bsums));
      _Pragma("GCC unroll 7") for (int k = 1; k < 8; ++k) c = _mm256_add_epi32(
          c, _mm256_madd_epi16(_mm256_cvtepi8_epi16(Load128(x.scales + 16 * k)), Broadcast4At(a.bsums + 2 * k)));
      const __m256i total = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(c, 5));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_mul_ps(d, _mm256_broadcast_ss(&a.d)), acc[t]);
    }
  }
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

// Q2_Kx8: as Q6_Kx8 with 2-bit codes (one load, a shift and a mask per group) and 4-bit scales
// and mins in one byte per sub-block; all four groups of a sub-block sum in int16
// (4 x 2 x 3 x 127). The mins go through the activations' 16-value sums.
template <int NT>
void DotQ2_Kx8T(const BlockQ2_Kx8* w, const ActBlockK* const* acts, int64_t nsb, float* out) {
  __m256 acc[NT];
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i three = _mm256_set1_epi8(3), low16 = _mm256_set1_epi16(0x0f);
  const __m256i dup0 = DupPairMask(0), dup1 = DupPairMask(1);
  for (int64_t b = 0; b < nsb; ++b) {
    const BlockQ2_Kx8& x = w[b];
    __m256i isum[NT];
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
    for (int k = 0; k < 8; ++k) {  // sub-blocks 2k and 2k + 1
      const __m256i pair = _mm256_and_si256(_mm256_cvtepu8_epi16(Load128(x.scales + 16 * k)), low16);
      _Pragma("GCC unroll 2") for (int p = 0; p < 2; ++p) {
        const int s = 2 * k + p;
        const __m256i v = Load256(x.q + 32 * s);
        const __m256i q0 = _mm256_and_si256(v, three), q1 = _mm256_and_si256(_mm256_srli_epi16(v, 2), three);
        const __m256i q2 = _mm256_and_si256(_mm256_srli_epi16(v, 4), three), q3 = _mm256_and_si256(_mm256_srli_epi16(v, 6), three);
        const __m256i sc = _mm256_shuffle_epi8(pair, p == 0 ? dup0 : dup1);
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
          const int8_t* a = acts[t][b].q + 16 * s;
          const __m256i pa =
              _mm256_add_epi16(_mm256_maddubs_epi16(q0, Broadcast4At(a)), _mm256_maddubs_epi16(q1, Broadcast4At(a + 4)));
          const __m256i pb =
              _mm256_add_epi16(_mm256_maddubs_epi16(q2, Broadcast4At(a + 8)), _mm256_maddubs_epi16(q3, Broadcast4At(a + 12)));
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_add_epi16(pa, pb), sc));
          KeepInRegister(isum[t]);
        }
      }
    }
    const __m256 d = _mm256_cvtph_ps(Load128(x.d)), dmin = _mm256_cvtph_ps(Load128(x.dmin));
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
      const ActBlockK& a = acts[t][b];
      __m256i ms = _mm256_setzero_si256();
      _Pragma("GCC unroll 8") for (int k = 0; k < 8; ++k) ms = _mm256_add_epi32(
          ms, _mm256_madd_epi16(_mm256_srli_epi16(_mm256_cvtepu8_epi16(Load128(x.scales + 16 * k)), 4), Broadcast4At(a.bsums + 2 * k)));
      const __m256 ad = _mm256_broadcast_ss(&a.d);
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_mul_ps(d, ad), acc[t]);
      acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms), _mm256_mul_ps(dmin, ad), acc[t]);
    }
  }
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

// Bit `from` of every byte moved to bit 2 (the other bits are masked off afterwards).
inline __m256i BitTo2(__m256i v, int from) { return from <= 2 ? _mm256_slli_epi16(v, 2 - from) : _mm256_srli_epi16(v, from - 2); }

// Q3_Kx8: 3-bit codes (two low bits as in Q2_Kx8, the third from a byte shared by two
// sub-blocks), six-bit scales unpacked once per super-block as Q4_Kx8's are; the codes' offset
// of 4 goes through the activations' 16-value sums, as Q6_K's 32.
template <int NT>
void DotQ3_Kx8T(const BlockQ3_Kx8* w, const ActBlockK* const* acts, int64_t nsb, float* out) {
  __m256 acc[NT];
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i low = _mm256_set1_epi8(0x0f), top = _mm256_set1_epi8(0x30), three = _mm256_set1_epi8(3);
  const __m256i four = _mm256_set1_epi8(4), bias = _mm256_set1_epi8(32);
  const __m256i dup0 = DupPairMask(0), dup1 = DupPairMask(1);
  alignas(32) int8_t sm[128];  // the signed scales by index
  for (int64_t b = 0; b < nsb; ++b) {
    const BlockQ3_Kx8& x = w[b];
    {
      const __m256i l0 = Load256(x.scales_lo), l1 = Load256(x.scales_lo + 32), h = Load256(x.scales_hi);
      auto put = [&](int at, __m256i lo4, __m256i hi2) {
        const __m256i stored = _mm256_or_si256(_mm256_and_si256(lo4, low), _mm256_and_si256(hi2, top));
        _mm256_store_si256(reinterpret_cast<__m256i*>(sm + at), _mm256_sub_epi8(stored, bias));
      };
      put(0, l0, _mm256_slli_epi16(h, 4));
      put(32, l1, _mm256_slli_epi16(h, 2));
      put(64, _mm256_srli_epi16(l0, 4), h);
      put(96, _mm256_srli_epi16(l1, 4), _mm256_srli_epi16(h, 2));
    }
    __m256i isum[NT];
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
    for (int j = 0; j < 8; ++j) {  // sub-blocks 2j and 2j + 1
      const uint8_t* q = x.q + 96 * j;
      const __m256i pair = _mm256_cvtepi8_epi16(Load128(sm + 16 * j));
      const __m256i hb = Load256(q + 64);
      _Pragma("GCC unroll 2") for (int p = 0; p < 2; ++p) {
        const int s = 2 * j + p;
        const __m256i v = Load256(q + 32 * p);
        __m256i c[4];
        _Pragma("GCC unroll 4") for (int g = 0; g < 4; ++g) c[g] = _mm256_or_si256(
            _mm256_and_si256(g == 0 ? v : _mm256_srli_epi16(v, 2 * g), three), _mm256_and_si256(BitTo2(hb, g + 4 * p), four));
        const __m256i sc = _mm256_shuffle_epi8(pair, p == 0 ? dup0 : dup1);
        _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
          const int8_t* a = acts[t][b].q + 16 * s;
          const __m256i pa =
              _mm256_add_epi16(_mm256_maddubs_epi16(c[0], Broadcast4At(a)), _mm256_maddubs_epi16(c[1], Broadcast4At(a + 4)));
          const __m256i pb =
              _mm256_add_epi16(_mm256_maddubs_epi16(c[2], Broadcast4At(a + 8)), _mm256_maddubs_epi16(c[3], Broadcast4At(a + 12)));
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_add_epi16(pa, pb), sc));
          KeepInRegister(isum[t]);
        }
      }
    }
    const __m256 d = _mm256_cvtph_ps(Load128(x.d));
    _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) {
      const ActBlockK& a = acts[t][b];
      __m256i corr = _mm256_setzero_si256();
      _Pragma("GCC unroll 8") for (int k = 0; k < 8; ++k) corr = _mm256_add_epi32(
          corr, _mm256_madd_epi16(_mm256_cvtepi8_epi16(Load128(sm + 16 * k)), Broadcast4At(a.bsums + 2 * k)));
      const __m256i total = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(corr, 2));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_mul_ps(d, _mm256_broadcast_ss(&a.d)), acc[t]);
    }
  }
  _Pragma("GCC unroll 4") for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

template <typename Block>
struct Kx8 {
  template <int NT> struct K { static void Run(const Block* w, const ActBlockK* const* a, int64_t nb, float* o) { DotKx8T<Block, NT>(w, a, nb, o); } };
};
template <int NT> struct Q2_Kx8K { static void Run(const BlockQ2_Kx8* w, const ActBlockK* const* a, int64_t nb, float* o) { DotQ2_Kx8T<NT>(w, a, nb, o); } };
template <int NT> struct Q3_Kx8K { static void Run(const BlockQ3_Kx8* w, const ActBlockK* const* a, int64_t nb, float* o) { DotQ3_Kx8T<NT>(w, a, nb, o); } };
template <int NT> struct Q6_Kx8K { static void Run(const BlockQ6_Kx8* w, const ActBlockK* const* a, int64_t nb, float* o) { DotQ6_Kx8T<NT>(w, a, nb, o); } };

}  // namespace

void AddKQuantX8Avx2Kernels(CpuKernels& k) {
  k.q2_kx8 = [](const void* group, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
    Dispatch<BlockQ2_Kx8, Q2_Kx8K, ActBlockK>(group, acts, nt, n / kQK_K, out);
  };
  k.q3_kx8 = [](const void* group, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
    Dispatch<BlockQ3_Kx8, Q3_Kx8K, ActBlockK>(group, acts, nt, n / kQK_K, out);
  };
  k.q4_kx8 = [](const void* group, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
    Dispatch<BlockQ4_Kx8, Kx8<BlockQ4_Kx8>::K, ActBlockK>(group, acts, nt, n / kQK_K, out);
  };
  k.q5_kx8 = [](const void* group, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
    Dispatch<BlockQ5_Kx8, Kx8<BlockQ5_Kx8>::K, ActBlockK>(group, acts, nt, n / kQK_K, out);
  };
  k.q6_kx8 = [](const void* group, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
    Dispatch<BlockQ6_Kx8, Q6_Kx8K, ActBlockK>(group, acts, nt, n / kQK_K, out);
  };
}

}  // namespace qb::kernels::cpu
