// The AVX-512 attention kernels (kernels/cpu/attention_avx512.cc) on any x86-64 CPU: this file
// compiles that source against SIMDe's portable AVX-512 (Debian's libsimde-dev) and runs its
// run kernel directly, so machines without AVX-512 (where kernels_test skips that path) still
// check it against the reference, for every cache type, and bit for bit between a prefill chunk
// and one-token decodes. The emulation is exact for every operation the kernels use (integer
// and IEEE float arithmetic lane by lane); SIMDe 0.7.4 lacks a few intrinsics, defined below
// from their Intel definitions. Built only where the header is found (tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "tensor/dequantize.h"
#include "util/half.h"

#include <immintrin.h>
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

// Intrinsics SIMDe 0.7.4 does not provide (or, for _mm512_shuffle_f32x4, does not alias).
namespace emulated {
template <typename T, int N, typename V>
void Lanes(V v, T (&out)[N]) {
  static_assert(sizeof(V) == sizeof(out));
  std::memcpy(out, &v, sizeof(out));
}
template <typename V, typename T, int N>
V FromLanes(const T (&in)[N]) {
  static_assert(sizeof(V) == sizeof(in));
  V v;
  std::memcpy(&v, in, sizeof(v));
  return v;
}
// 16 lanes of TIn converted one by one to TOut (a C++ conversion: exact, or truncating for the
// narrowing integer one, as vpmovdb).
template <typename TIn, typename TOut, typename VOut, typename VIn>
VOut Convert16(VIn a) {
  TIn x[16];
  TOut y[16];
  Lanes(a, x);
  for (int i = 0; i < 16; ++i) y[i] = static_cast<TOut>(x[i]);
  return FromLanes<VOut>(y);
}
inline simde__m512 cvtepi32_ps(simde__m512i a) { return Convert16<int32_t, float, simde__m512>(a); }
inline simde__m512i cvtepi8_epi32(simde__m128i a) { return Convert16<int8_t, int32_t, simde__m512i>(a); }
inline simde__m512i cvtepu16_epi32(simde__m256i a) { return Convert16<uint16_t, int32_t, simde__m512i>(a); }
inline simde__m128i cvtepi32_epi8(simde__m512i a) { return Convert16<int32_t, int8_t, simde__m128i>(a); }
inline simde__m512i cvtps_epi32(simde__m512 a) {  // the default rounding: nearest, ties to even
  float x[16];
  int32_t y[16];
  Lanes(a, x);
  for (int i = 0; i < 16; ++i) y[i] = static_cast<int32_t>(std::nearbyint(x[i]));
  return FromLanes<simde__m512i>(y);
}
inline simde__m512 cvtph_ps(simde__m256i a) {
  uint16_t x[16];
  float y[16];
  Lanes(a, x);
  for (int i = 0; i < 16; ++i) y[i] = qb::F16ToF32(x[i]);
  return FromLanes<simde__m512>(y);
}
inline simde__m256i maskz_loadu_epi16(simde__mmask16 m, const void* p) {
  uint16_t y[16] = {};
  for (int i = 0; i < 16; ++i)
    if ((m >> i) & 1) std::memcpy(&y[i], static_cast<const uint16_t*>(p) + i, 2);
  return FromLanes<simde__m256i>(y);
}
inline float cvtss_f32(simde__m512 a) {
  float x[16];
  Lanes(a, x);
  return x[0];
}
inline int32_t reduce_add_epi32(simde__m512i a) {
  int32_t x[16];
  Lanes(a, x);
  int32_t s = 0;
  for (int i = 0; i < 16; ++i) s += x[i];
  return s;
}
inline float reduce_add_ps(simde__m512 a) {  // halves added pairwise, as GCC's sequence
  float x[16];
  Lanes(a, x);
  for (int w = 8; w >= 1; w /= 2)
    for (int i = 0; i < w; ++i) x[i] += x[i + w];
  return x[0];
}
inline float reduce_max_ps(simde__m512 a) {
  float x[16];
  Lanes(a, x);
  float m = x[0];
  for (int i = 1; i < 16; ++i) m = x[i] > m ? x[i] : m;
  return m;
}
inline simde__m512 shuffle_f32x4(simde__m512 a, simde__m512 b, int imm) {
  float x[16], y[16], z[16];
  Lanes(a, x);
  Lanes(b, y);
  for (int l = 0; l < 4; ++l) {  // lanes 0-1 from a, 2-3 from b, each chosen by 2 bits of imm
    const float* src = l < 2 ? x : y;
    const int sel = (imm >> (2 * l)) & 3;
    for (int i = 0; i < 4; ++i) z[4 * l + i] = src[4 * sel + i];
  }
  return FromLanes<simde__m512>(z);
}
}  // namespace emulated

#undef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps emulated::cvtepi32_ps
#undef _mm512_cvtps_epi32
#define _mm512_cvtps_epi32 emulated::cvtps_epi32
#undef _mm512_cvtepi8_epi32
#define _mm512_cvtepi8_epi32 emulated::cvtepi8_epi32
#undef _mm512_cvtepu16_epi32
#define _mm512_cvtepu16_epi32 emulated::cvtepu16_epi32
#undef _mm512_cvtepi32_epi8
#define _mm512_cvtepi32_epi8 emulated::cvtepi32_epi8
#undef _mm512_cvtph_ps
#define _mm512_cvtph_ps emulated::cvtph_ps
#undef _mm256_maskz_loadu_epi16
#define _mm256_maskz_loadu_epi16 emulated::maskz_loadu_epi16
#undef _mm512_cvtss_f32
#define _mm512_cvtss_f32 emulated::cvtss_f32
#undef _mm512_reduce_add_epi32
#define _mm512_reduce_add_epi32 emulated::reduce_add_epi32
#undef _mm512_reduce_add_ps
#define _mm512_reduce_add_ps emulated::reduce_add_ps
#undef _mm512_reduce_max_ps
#define _mm512_reduce_max_ps emulated::reduce_max_ps
#undef _mm512_shuffle_f32x4
#define _mm512_shuffle_f32x4 emulated::shuffle_f32x4

// The kernel source itself; its one external symbol renamed so it cannot clash with the real one.
#define AddAvx512AttentionKernels AddEmulatedAvx512AttentionKernels
#include "kernels/cpu/attention_avx512.cc"  // NOLINT(bugprone-suspicious-include)

namespace qb::kernels {
namespace {

Tensor RandomF32(Shape shape, uint32_t seed) {
  Tensor t = Tensor::Empty(DType::kF32, shape);
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = dist(rng);
  return t;
}

// One sequence of n tokens (positions 0..n-1) in a paged pool, n_heads query heads over n_kv
// kv heads: the reference output, and the emulated run kernel's called the way cpu::Attention
// calls it (key rows block * block_size * n_kv + slot, stride head_dim, head offset block_size x
// head_dim; a q8_0 cache's queries rounded by RoundRowQ8_0 first) for a chunk [t0, t0 + m).
struct Case {
  int64_t hd, n_heads, n_kv, n, block = 16;
  DType kv_type;
  float scale = 0.125f;
  Tensor q, kc, vc;
  std::vector<int32_t> table, rows;

  Case(int64_t head_dim, int64_t heads, int64_t kv_heads, int64_t tokens, DType type)
      : hd(head_dim), n_heads(heads), n_kv(kv_heads), n(tokens), kv_type(type) {
    q = RandomF32({n, n_heads * hd}, static_cast<uint32_t>(61 + hd + heads));
    const Tensor k = RandomF32({n, n_kv * hd}, 62), v = RandomF32({n, n_kv * hd}, 63);
    const int64_t n_blocks = (n + block - 1) / block;
    for (int64_t b = 0; b < n_blocks; ++b) table.push_back(static_cast<int32_t>((b * 3 + 1) % n_blocks));  // shuffled
    std::vector<int32_t> slots;
    for (int64_t j = 0; j < n; ++j) {
      const int32_t b = table[static_cast<size_t>(j / block)];
      slots.push_back(static_cast<int32_t>(b * block + j % block));
      rows.push_back(static_cast<int32_t>(b * block * n_kv + j % block));
    }
    kc = Tensor::Empty(kv_type, {n_blocks * block, n_kv * hd});
    vc = Tensor::Empty(kv_type, {n_blocks * block, n_kv * hd});
    ScatterKv(ExecContext::Reference(), k, slots, kc, hd, block);
    ScatterKv(ExecContext::Reference(), v, slots, vc, hd, block);
  }

  Tensor Reference() const {
    std::vector<int32_t> pos(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) pos[static_cast<size_t>(t)] = static_cast<int32_t>(t);
    const std::vector<std::span<const int32_t>> tables(pos.size(), std::span<const int32_t>(table));
    Tensor out = Tensor::Empty(DType::kF32, {n, n_heads * hd});
    Attention(ExecContext::Reference(), q, kc, vc, hd, block, pos, tables, scale, out);
    return out;
  }

  // Tokens [t0, t0 + m) of every kv head's group into out (n x n_heads * hd).
  void Run(int64_t t0, int64_t m, Tensor& out) const {
    const int64_t q_stride = n_heads * hd, group = n_heads / n_kv;
    std::vector<float> qs(q.data<float>() + t0 * q_stride, q.data<float>() + (t0 + m) * q_stride);
    if (kv_type == DType::kQ8_0) RoundRowQ8_0(qs.data(), qs.data(), m * q_stride);
    std::vector<float> scratch(static_cast<size_t>(m * group * hd));
    for (int64_t h = 0; h < n_kv; ++h)
      cpu::AttendRun512(qs.data() + h * group * hd, q_stride, m, group, kc.raw(), vc.raw(), kv_type, rows.data(), t0 + 1,
                        hd, h * block * hd, hd, scale, scratch.data(),
                        out.mutable_data<float>() + t0 * q_stride + h * group * hd, q_stride);
  }
};

TEST(EmulatedAvx512AttentionTest, RunsMatchTheReferenceAndDecodeGivesTheBitsOfAChunk) {
  struct HeadShape {
    int64_t hd, heads, kv;
  };
  for (const HeadShape shape : {HeadShape{64, 7, 1}, HeadShape{128, 4, 2}, HeadShape{64, 14, 2}}) {
    for (DType kv_type : {DType::kF16, DType::kBF16, DType::kQ8_0, DType::kF32}) {
      const Case c(shape.hd, shape.heads, shape.kv, 75, kv_type);
      const std::string what = std::string(Name(kv_type)) + " hd " + std::to_string(shape.hd) + " heads " +
                               std::to_string(shape.heads) + "/" + std::to_string(shape.kv);
      const Tensor want = c.Reference();
      // Chunks of up to 16 tokens (kRunMaxRows / group bounds a call), as cpu::Attention splits a prompt.
      const int64_t per_chunk = std::min<int64_t>(16, 128 / (shape.heads / shape.kv));
      Tensor chunks = Tensor::Empty(DType::kF32, {c.n, shape.heads * shape.hd});
      for (int64_t t0 = 0; t0 < c.n; t0 += per_chunk) c.Run(t0, std::min(per_chunk, c.n - t0), chunks);
      Tensor alone = Tensor::Empty(DType::kF32, {c.n, shape.heads * shape.hd});
      for (int64_t t = 0; t < c.n; ++t) c.Run(t, 1, alone);
      for (int64_t i = 0; i < want.numel(); ++i) {
        ASSERT_NEAR(chunks.data<float>()[i], want.data<float>()[i], 1e-5) << what << " element " << i;
        ASSERT_EQ(alone.data<float>()[i], chunks.data<float>()[i]) << what << " element " << i;
      }
    }
  }
}

}  // namespace
}  // namespace qb::kernels
