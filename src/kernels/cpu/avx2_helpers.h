// Small AVX2 helpers shared by the files compiled with -mavx2 -mfma -mf16c
// (linear_kernels_avx2.cc, linear_kernels_gguf_avx2.cc, linear_kernels_kx8_avx2.cc,
// attention_avx2.cc). Include it
// from such files only.
// Everything here has internal linkage (an unnamed namespace), on purpose: an inline function
// with external linkage compiled for AVX2 in one file could be the copy the linker keeps for a
// portable file too, and run on a CPU without AVX2.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/linear_kernels.h"

namespace qb::kernels::cpu {
namespace {  // NOLINT(google-build-namespaces): see above

inline float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float Hsum(__m128 v) {
  v = _mm_add_ps(v, _mm_movehl_ps(v, v));
  v = _mm_add_ss(v, _mm_movehdup_ps(v));
  return _mm_cvtss_f32(v);
}

// Pins a vector value in a register at this point of the code. GCC otherwise reassociates the
// integer sums of the interleaved kernels and computes every product first, which needs more
// than the 16 ymm registers and spills (measured: no faster than the spilling order).
template <typename V>
inline void KeepInRegister(V& v) {
  asm volatile("" : "+x"(v));
}

inline float F16Table(uint16_t h) { return kF16ToF32Table[h]; }

// exp(x) for 8 lanes: x = n ln2 + r with |r| <= ln2/2, exp(r) by a degree-6 polynomial
// (relative error ~1e-7 on the range used here), 2^n built in the exponent bits.
inline __m256 Exp8(__m256 x) {
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f)), _mm256_set1_ps(-87.3365447504f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // r = x - n ln2 in two steps (ln2 split into a high and a low part) for accuracy.
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}


// u8 (0..255) x s8 -> 8 x s32 sums of 4 products each.
inline __m256i DotU8S8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// Activations 4c..4c+3 of a block in every 32-bit lane (a byte copy: no int32 aliasing of int8).
inline __m256i Broadcast4(const ActBlock& a, int c) {
  int32_t v;
  std::memcpy(&v, a.q + 4 * c, sizeof(v));
  return _mm256_set1_epi32(v);
}

inline __m256i LoadQ(const ActBlock& a) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(a.q)); }

inline __m256i UnpackNibbles(const uint8_t* qs) {  // 16 bytes -> 32 u8: low nibbles, then high
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

// The 8 six-bit scales and mins of a Q4_K / Q5_K block, unpacked with 32-bit word arithmetic:
// bytes 0-3 hold scales 0-3 (+ the high bits of scales 4-7), bytes 4-7 mins 0-3 (+ high bits of
// mins 4-7), bytes 8-11 the low nibbles of scales and mins 4-7.
inline void UnpackQ4KScales(const uint8_t* s, uint64_t* scales, uint64_t* mins) {
  uint32_t w0, w1, w2;
  std::memcpy(&w0, s, 4);
  std::memcpy(&w1, s + 4, 4);
  std::memcpy(&w2, s + 8, 4);
  const uint32_t sc_lo = w0 & 0x3f3f3f3fu, m_lo = w1 & 0x3f3f3f3fu;
  const uint32_t sc_hi = (w2 & 0x0f0f0f0fu) | (((w0 >> 6) & 0x03030303u) << 4);
  const uint32_t m_hi = ((w2 >> 4) & 0x0f0f0f0fu) | (((w1 >> 6) & 0x03030303u) << 4);
  *scales = sc_lo | (static_cast<uint64_t>(sc_hi) << 32);
  *mins = m_lo | (static_cast<uint64_t>(m_hi) << 32);
}

// Shuffle masks that broadcast int16 element k of a 128-bit lane to the whole lane.
inline __m256i BroadcastMask16(int k) { return _mm256_set1_epi16(static_cast<int16_t>((2 * k) | ((2 * k + 1) << 8))); }

// nt (1..kMaxTokens) -> the template instance K<nt>::Run. The kernels are templates on the
// number of tokens so that the per-token accumulators live in registers.
template <typename Block, template <int> class K, typename Act = ActBlock>
void Dispatch(const void* row, const Act* const* acts, int nt, int64_t nb, float* out) {
  const auto* w = static_cast<const Block*>(row);
  switch (nt) {
    case 1: K<1>::Run(w, acts, nb, out); break;
    case 2: K<2>::Run(w, acts, nb, out); break;
    case 3: K<3>::Run(w, acts, nb, out); break;
    default: K<4>::Run(w, acts, nb, out); break;
  }
}

}  // namespace
}  // namespace qb::kernels::cpu
