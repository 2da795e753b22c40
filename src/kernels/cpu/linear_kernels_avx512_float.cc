// AVX-512 versions of the float-weight micro-kernels (F16 and BF16 weights against f32
// activations) and of attention over a GQA group: 16-lane FMAs, twice AVX2's work per
// instruction, with 32 registers for wider register tiles. The 512-bit table of
// linear_kernels_avx512vnni.cc takes them (AddAvx512FloatKernels).
//
// Compiled with AVX-512 options and only called after a CPU check; no headers beyond intrinsics,
// the kernel table and the block layouts, no namespace-scope initializers (see
// linear_kernels_avx512vnni.cc).
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/linear_kernels.h"
#include "tensor/quant_blocks.h"

// GCC 12 reports the undefined pass-through operand inside its own 512-bit intrinsics
// (_mm512_cvtph_ps, _mm512_reduce_add_ps) as uninitialized (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace qb::kernels::cpu {

namespace {

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

// Attention of a GQA group (n_q query heads over the same keys), 512-bit. Scores: the keys a
// tile of 32 rows at a time converted to f32 (exact) on the stack, and for each head the scores
// of 8 keys at a time (one 16-lane accumulator per key over head_dim, then one reduction tree
// for the 8). Softmax: per head, 16 lanes at a time (the max, then exp and the sum). Values: up
// to 8 heads at once over 32 dimensions (16 accumulators), each value row converted once, read
// straight from the cache, and used by every head. Every head's arithmetic is the same whatever
// n_q and whatever the tiles: a head's result does not depend on its group, nor a token's on its
// batch. `scratch` holds n_q * n_keys floats.
//
// Kv::Load(base, row, stride, offset, hd, dst) converts a row's head_dim values to f32 at dst;
// Kv::Load32(base, row, stride, offset, d, lo, hi) its values d..d+31 (d a multiple of 32).
struct KvRowsF32 {
  static int64_t RowBytes(int64_t hd) { return 4 * hd; }
  static const float* Row(const void* base, int64_t row, int64_t stride, int64_t offset) {
    return static_cast<const float*>(base) + row * stride + offset;
  }
  static void Load(const void* base, int64_t row, int64_t stride, int64_t offset, int64_t hd, float* dst) {
    const float* p = Row(base, row, stride, offset);
    for (int64_t d = 0; d < hd; d += 16) _mm512_storeu_ps(dst + d, _mm512_loadu_ps(p + d));
  }
  static void Load32(const void* base, int64_t row, int64_t stride, int64_t offset, int64_t d, __m512& lo, __m512& hi) {
    const float* p = Row(base, row, stride, offset) + d;
    lo = _mm512_loadu_ps(p);
    hi = _mm512_loadu_ps(p + 16);
  }
};
template <typename Cvt>
struct KvRowsHalf {
  static int64_t RowBytes(int64_t hd) { return 2 * hd; }
  static const uint16_t* Row(const void* base, int64_t row, int64_t stride, int64_t offset) {
    return static_cast<const uint16_t*>(base) + row * stride + offset;
  }
  static void Load(const void* base, int64_t row, int64_t stride, int64_t offset, int64_t hd, float* dst) {
    const uint16_t* p = Row(base, row, stride, offset);
    for (int64_t d = 0; d < hd; d += 16) _mm512_storeu_ps(dst + d, Cvt::Load(p + d));
  }
  static void Load32(const void* base, int64_t row, int64_t stride, int64_t offset, int64_t d, __m512& lo, __m512& hi) {
    const uint16_t* p = Row(base, row, stride, offset) + d;
    lo = Cvt::Load(p);
    hi = Cvt::Load(p + 16);
  }
};
using KvRowsF16 = KvRowsHalf<F16To32>;
using KvRowsBF16 = KvRowsHalf<Bf16To32>;
struct KvRowsQ8_0 {  // blocks of 32 (stride and offset multiples of 32): d * q, exact in f32
  static int64_t RowBytes(int64_t hd) { return hd / 32 * static_cast<int64_t>(sizeof(BlockQ8_0)); }
  static const BlockQ8_0* Row(const void* base, int64_t row, int64_t stride, int64_t offset) {
    return static_cast<const BlockQ8_0*>(base) + (row * stride + offset) / 32;
  }
  static void Load(const void* base, int64_t row, int64_t stride, int64_t offset, int64_t hd, float* dst) {
    for (int64_t d = 0; d < hd; d += 32) Load32(base, row, stride, offset, d, *reinterpret_cast<__m512*>(dst + d), *reinterpret_cast<__m512*>(dst + d + 16));
  }
  static void Load32(const void* base, int64_t row, int64_t stride, int64_t offset, int64_t d, __m512& lo, __m512& hi) {
    const BlockQ8_0* b = Row(base, row, stride, offset) + d / 32;
    const __m512 scale = _mm512_set1_ps(kF16ToF32Table[b->d]);
    const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs));
    const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b->qs + 16));
    lo = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), scale);
    hi = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), scale);
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

// exp(x) for 16 lanes: the AVX2 Exp8's operations lane for lane (the same values).
inline __m512 Exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f)), _mm512_set1_ps(-87.3365447504f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
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

// x[i] = exp(x[i] - max x); returns 1 / the sum.
float SoftmaxInPlace(float* x, int64_t n) {
  __m512 mv = _mm512_set1_ps(-__builtin_inff());
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) mv = _mm512_max_ps(mv, _mm512_loadu_ps(x + i));
  const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1);
  if (tail != 0) mv = _mm512_mask_max_ps(mv, tail, mv, _mm512_maskz_loadu_ps(tail, x + i));
  const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mv));
  __m512 sum = _mm512_setzero_ps();
  for (i = 0; i + 16 <= n; i += 16) {
    const __m512 e = Exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
    _mm512_storeu_ps(x + i, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (tail != 0) {
    const __m512 e = Exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + i), m));
    _mm512_mask_storeu_ps(x + i, tail, e);
    sum = _mm512_mask_add_ps(sum, tail, sum, e);
  }
  return 1.f / _mm512_reduce_add_ps(sum);
}

// out[h][d0..d0+32) = inv[h] * sum over keys j of p[h][j] * value(j)[d0..d0+32), NH heads.
template <typename Kv, int NH>
void ValuesHeads(const float* p, int64_t n_keys, const void* v, const int32_t* rows, int64_t stride, int64_t offset,
                 int64_t hd, const float* inv, float* out) {
  for (int64_t d0 = 0; d0 < hd; d0 += 32) {
    __m512 o[NH][2];
    for (int h = 0; h < NH; ++h) o[h][0] = o[h][1] = _mm512_setzero_ps();
    for (int64_t j = 0; j < n_keys; ++j) {
      __m512 lo, hi;
      Kv::Load32(v, rows[j], stride, offset, d0, lo, hi);
      for (int h = 0; h < NH; ++h) {
        const __m512 pj = _mm512_set1_ps(p[h * n_keys + j]);
        o[h][0] = _mm512_fmadd_ps(pj, lo, o[h][0]);
        o[h][1] = _mm512_fmadd_ps(pj, hi, o[h][1]);
      }
    }
    for (int h = 0; h < NH; ++h) {
      const __m512 s = _mm512_set1_ps(inv[h]);
      _mm512_storeu_ps(out + h * hd + d0, _mm512_mul_ps(o[h][0], s));
      _mm512_storeu_ps(out + h * hd + d0 + 16, _mm512_mul_ps(o[h][1], s));
    }
  }
}

constexpr int64_t kMaxHeadDim = 256, kAttnTile = 32;

template <typename Kv>
void AttendGroup(const float* q, int64_t n_q, const void* k, const void* v, const int32_t* rows, int64_t n_keys,
                 int64_t stride, int64_t offset, int64_t hd, float scale, float* all_scores, float* out) {
  alignas(64) float tile[kAttnTile * kMaxHeadDim];
  float inv[64];
  const int64_t row_bytes = Kv::RowBytes(hd);
  for (int64_t j = 0; j < n_keys; ++j) {
    const char* kr = reinterpret_cast<const char*>(Kv::Row(k, rows[j], stride, offset));
    const char* vr = reinterpret_cast<const char*>(Kv::Row(v, rows[j], stride, offset));
    for (int64_t b = 0; b < row_bytes; b += 64) {
      _mm_prefetch(kr + b, _MM_HINT_T1);
      _mm_prefetch(vr + b, _MM_HINT_T1);
    }
  }
  for (int64_t j0 = 0; j0 < n_keys; j0 += kAttnTile) {
    const int64_t nj = n_keys - j0 < kAttnTile ? n_keys - j0 : kAttnTile;
    for (int64_t j = 0; j < nj; ++j) Kv::Load(k, rows[j0 + j], stride, offset, hd, tile + j * hd);
    for (int64_t h = 0; h < n_q; ++h) TileScores(q + h * hd, tile, nj, hd, scale, all_scores + h * n_keys + j0);
  }
  for (int64_t h = 0; h < n_q; ++h) inv[h] = SoftmaxInPlace(all_scores + h * n_keys, n_keys);
  for (int64_t h0 = 0; h0 < n_q; h0 += 8) {
    const float* p = all_scores + h0 * n_keys;
    float* o = out + h0 * hd;
    switch (n_q - h0 < 8 ? n_q - h0 : 8) {
      case 1: ValuesHeads<Kv, 1>(p, n_keys, v, rows, stride, offset, hd, inv + h0, o); break;
      case 2: ValuesHeads<Kv, 2>(p, n_keys, v, rows, stride, offset, hd, inv + h0, o); break;
      case 3: ValuesHeads<Kv, 3>(p, n_keys, v, rows, stride, offset, hd, inv + h0, o); break;
      case 4: ValuesHeads<Kv, 4>(p, n_keys, v, rows, stride, offset, hd, inv + h0, o); break;
      case 5: ValuesHeads<Kv, 5>(p, n_keys, v, rows, stride, offset, hd, inv + h0, o); break;
      case 6: ValuesHeads<Kv, 6>(p, n_keys, v, rows, stride, offset, hd, inv + h0, o); break;
      case 7: ValuesHeads<Kv, 7>(p, n_keys, v, rows, stride, offset, hd, inv + h0, o); break;
      default: ValuesHeads<Kv, 8>(p, n_keys, v, rows, stride, offset, hd, inv + h0, o); break;
    }
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

}  // namespace

void AddAvx512FloatKernels(CpuKernels& k) {
  k.f16 = DotHalfZ<F16To32>;
  k.bf16 = DotHalfZ<Bf16To32>;
  k.attend = Attend512;
  k.silu_mul = SiluMul512;
}

}  // namespace qb::kernels::cpu
