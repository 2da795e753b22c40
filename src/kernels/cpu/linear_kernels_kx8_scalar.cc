// Portable micro-kernels of the 8-row interleaved K-quant layouts (BlockQ2_Kx8 ... BlockQ6_Kx8)
// against 256-value activation blocks: integer sums per sub-block with the integer scale, one
// float multiply per super-block, as the one-row Q4_K / Q6_K kernels and the AVX2 versions do.
#include "kernels/cpu/linear_kernels.h"
#include "tensor/interleave_kquants.h"
#include "tensor/quant_blocks.h"
#include "util/half.h"

namespace qb::kernels::cpu {

namespace {

// For each token t and row r of the group: add(acc, super-block, r, activations) over the
// row's super-blocks in order; writes out[t * 8 + r].
template <typename Block, typename Add>
void OverSuperBlocks8(const void* group, const ActBlockK* const* acts, int nt, int64_t n, float* out, Add add) {
  const auto* w = static_cast<const Block*>(group);
  for (int t = 0; t < nt; ++t)
    for (int r = 0; r < 8; ++r) {
      float acc = 0.f;
      for (int64_t b = 0; b < n / kQK_K; ++b) add(acc, w[b], r, acts[t][b]);
      out[t * 8 + r] = acc;
    }
}

// Q4_Kx8 and Q5_Kx8 (with the fifth bits after each sub-block's nibbles).
template <typename Block>
void DotKx8(const void* group, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
  OverSuperBlocks8<Block>(group, acts, nt, n, out, [](float& acc, const Block& w, int r, const ActBlockK& a) {
    int isum = 0, msum = 0;
    for (int s = 0; s < 8; ++s) {
      int sc, m;
      KScaleMinX8(w, s, r, &sc, &m);
      const uint8_t* q = w.q + Block::kSubBlockBytes * s;
      const int8_t* x = a.q + 32 * s;
      int dot = 0;
      for (int c = 0; c < 4; ++c)
        for (int k = 0; k < 4; ++k) {
          const uint8_t v = q[32 * c + 4 * r + k];
          int lo = v & 0x0f, hi = v >> 4;
          if constexpr (Block::kSubBlockBytes > 128) {
            lo |= ((q[128 + 4 * r + k] >> c) & 1) << 4;
            hi |= ((q[128 + 4 * r + k] >> (c + 4)) & 1) << 4;
          }
          dot += lo * x[4 * c + k] + hi * x[16 + 4 * c + k];
        }
      isum += sc * dot;
      msum += m * a.bsums32[s];
    }
    acc += a.d * (F16ToF32(w.d[r]) * static_cast<float>(isum) - F16ToF32(w.dmin[r]) * static_cast<float>(msum));
  });
}

void DotQ6_Kx8(const void* group, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
  OverSuperBlocks8<BlockQ6_Kx8>(group, acts, nt, n, out, [](float& acc, const BlockQ6_Kx8& w, int r, const ActBlockK& a) {
    int isum = 0;
    for (int s = 0; s < 16; ++s) {
      const uint8_t* q = w.q + 96 * s;
      int dot = 0;
      for (int g = 0; g < 4; ++g)
        for (int k = 0; k < 4; ++k) {
          const uint8_t lo = q[32 * (g % 2) + 4 * r + k];
          const int code = (g < 2 ? lo & 0x0f : lo >> 4) | ((q[64 + 4 * r + k] >> (2 * g)) & 3) << 4;
          dot += (code - 32) * a.q[16 * s + 4 * g + k];
        }
      isum += w.scales[KScaleIndex(s, r)] * dot;
    }
    acc += a.d * F16ToF32(w.d[r]) * static_cast<float>(isum);
  });
}

void DotQ2_Kx8(const void* group, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
  OverSuperBlocks8<BlockQ2_Kx8>(group, acts, nt, n, out, [](float& acc, const BlockQ2_Kx8& w, int r, const ActBlockK& a) {
    int isum = 0, msum = 0;
    for (int s = 0; s < 16; ++s) {
      const uint8_t sc = w.scales[KScaleIndex(s, r)];
      int dot = 0;
      for (int g = 0; g < 4; ++g)
        for (int k = 0; k < 4; ++k) dot += ((w.q[32 * s + 4 * r + k] >> (2 * g)) & 3) * a.q[16 * s + 4 * g + k];
      isum += (sc & 0x0f) * dot;
      msum += (sc >> 4) * a.bsums[s];
    }
    acc += a.d * (F16ToF32(w.d[r]) * static_cast<float>(isum) - F16ToF32(w.dmin[r]) * static_cast<float>(msum));
  });
}

void DotQ3_Kx8(const void* group, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
  OverSuperBlocks8<BlockQ3_Kx8>(group, acts, nt, n, out, [](float& acc, const BlockQ3_Kx8& w, int r, const ActBlockK& a) {
    int isum = 0;
    for (int s = 0; s < 16; ++s) {
      int dot = 0;
      for (int g = 0; g < 4; ++g)
        for (int k = 0; k < 4; ++k) dot += (Q3KCodeX8(w, s, r, g, k) - 4) * a.q[16 * s + 4 * g + k];
      isum += Q3KScaleX8(w, s, r) * dot;
    }
    acc += a.d * F16ToF32(w.d[r]) * static_cast<float>(isum);
  });
}

}  // namespace

void AddKQuantX8ScalarKernels(CpuKernels& k) {
  k.q4_kx8 = DotKx8<BlockQ4_Kx8>;
  k.q5_kx8 = DotKx8<BlockQ5_Kx8>;
  k.q6_kx8 = DotQ6_Kx8;
  k.q2_kx8 = DotQ2_Kx8;
  k.q3_kx8 = DotQ3_Kx8;
}

}  // namespace qb::kernels::cpu
