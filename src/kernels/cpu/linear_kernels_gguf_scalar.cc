// Portable micro-kernels of the GGUF types qwenbox reads but never writes (Q4_1, Q5_0, Q5_1,
// IQ4_NL against 32-value activation blocks; Q2_K, Q3_K, Q5_K against 256-value ones): integer
// sums per block or sub-block, float scales applied per block, as the AVX2 versions do.
#include <cstring>

#include "kernels/cpu/linear_kernels.h"
#include "tensor/dequantize_gguf.h"
#include "tensor/quant_blocks.h"
#include "util/half.h"

namespace qb::kernels::cpu {

namespace {

// The 32 unsigned codes of a nibble block (element j), plus bit 4 from qh where there is one.
template <typename Block>
void Codes(const Block& b, int* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = b.qs[j] & 0x0f;
    q[j + 16] = b.qs[j] >> 4;
  }
  if constexpr (requires { b.qh; }) {
    uint32_t h;
    std::memcpy(&h, b.qh, sizeof(h));
    for (int j = 0; j < 32; ++j) q[j] |= static_cast<int>((h >> j) & 1u) << 4;
  }
}

// The loops every kernel here shares: for each token, add(acc, block, activations) over the
// row's blocks in order (Act: 32- or 256-value activation blocks).
template <typename Block, typename Act, typename Add>
void OverBlocks(const void* row, const Act* const* acts, int nt, int64_t n, float* out, Add add) {
  const auto* w = static_cast<const Block*>(row);
  const int64_t nb = n / static_cast<int64_t>(sizeof(Act::q));
  for (int t = 0; t < nt; ++t) {
    float acc = 0.f;
    for (int64_t b = 0; b < nb; ++b) add(acc, w[b], acts[t][b]);
    out[t] = acc;
  }
}

// The same for 8 interleaved rows: add(acc, group block, row, activations); out[t * 8 + r].
template <typename Block, typename Add>
void OverBlocks8(const void* group, const ActBlock* const* acts, int nt, int64_t n, float* out, Add add) {
  const auto* w = static_cast<const Block*>(group);
  for (int t = 0; t < nt; ++t)
    for (int r = 0; r < 8; ++r) {
      float acc = 0.f;
      for (int64_t b = 0; b < n / 32; ++b) add(acc, w[b], r, acts[t][b]);
      out[t * 8 + r] = acc;
    }
}

// x . w over 32-value blocks with w = d * (code - zero) (Q5_0) or d * code + m (Q4_1, Q5_1):
// d_w * d_x * sum(code * q_x), and the offset times the block's activation sum.
template <typename Block>
void DotAffine(const void* row, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  OverBlocks<Block>(row, acts, nt, n, out, [](float& acc, const Block& w, const ActBlock& a) {
    int q[32];
    Codes(w, q);
    int s = 0;
    for (int i = 0; i < 32; ++i) s += q[i] * a.q[i];
    const float dw = F16ToF32(w.d);
    float offset;
    if constexpr (requires { w.m; }) offset = F16ToF32(w.m);
    else offset = -16.f * dw;
    acc += dw * a.d * static_cast<float>(s) + offset * (a.ds16[0] + a.ds16[1]);
  });
}

void DotIq4Nl(const void* row, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  OverBlocks<BlockIq4Nl>(row, acts, nt, n, out, [](float& acc, const BlockIq4Nl& w, const ActBlock& a) {
    int q[32];
    Codes(w, q);
    int s = 0;
    for (int i = 0; i < 32; ++i) s += kIq4NlValues[q[i]] * a.q[i];
    acc += F16ToF32(w.d) * a.d * static_cast<float>(s);
  });
}

// The 2-bit plane of element e (0..255) of a Q2_K / Q3_K block.
inline int Low2(const uint8_t* qs, int e) { return (qs[32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32))) & 3; }

void DotQ2_K(const void* row, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
  OverBlocks<BlockQ2_K>(row, acts, nt, n, out, [](float& acc, const BlockQ2_K& w, const ActBlockK& a) {
    int isum = 0, msum = 0;
    for (int s = 0; s < 16; ++s) {
      int dot = 0;
      for (int e = 16 * s; e < 16 * s + 16; ++e) dot += Low2(w.qs, e) * a.q[e];
      isum += (w.scales[s] & 0x0f) * dot;
      msum += (w.scales[s] >> 4) * a.bsums[s];
    }
    acc += a.d * (F16ToF32(w.d) * static_cast<float>(isum) - F16ToF32(w.dmin) * static_cast<float>(msum));
  });
}

void DotQ3_K(const void* row, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
  OverBlocks<BlockQ3_K>(row, acts, nt, n, out, [](float& acc, const BlockQ3_K& w, const ActBlockK& a) {
    int8_t sc[16];
    UnpackQ3KScales(w.scales, sc);
    int isum = 0;
    for (int s = 0; s < 16; ++s) {
      int dot = 0;
      for (int e = 16 * s; e < 16 * s + 16; ++e) {
        const int hi = (w.hmask[e % 32] >> (e / 32)) & 1;  // bit 4h + j for e = 128h + 32j + l
        dot += (Low2(w.qs, e) + 4 * hi - 4) * a.q[e];
      }
      isum += sc[s] * dot;
    }
    acc += a.d * F16ToF32(w.d) * static_cast<float>(isum);
  });
}


void DotQ5_K(const void* row, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
  OverBlocks<BlockQ5_K>(row, acts, nt, n, out, [](float& acc, const BlockQ5_K& w, const ActBlockK& a) {
    int isum = 0, msum = 0;
    for (int s = 0; s < 8; ++s) {
      int sc, m;
      KQuantScaleMin(w.scales, s, &sc, &m);
      const uint8_t* q = w.qs + 32 * (s / 2);
      int dot = 0;
      for (int l = 0; l < 32; ++l) {
        const int code = ((s & 1) ? q[l] >> 4 : q[l] & 0x0f) | (((w.qh[l] >> s) & 1) << 4);
        dot += code * a.q[32 * s + l];
      }
      isum += sc * dot;
      msum += m * a.bsums32[s];
    }
    acc += a.d * (F16ToF32(w.d) * static_cast<float>(isum) - F16ToF32(w.dmin) * static_cast<float>(msum));
  });
}

// Q5_0 / Q5_1 of 8 interleaved rows (BlockQ5_0x8, BlockQ5_1x8).
template <typename Block>
void DotQ5x8(const void* group, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  OverBlocks8<Block>(group, acts, nt, n, out, [](float& acc, const Block& w, int r, const ActBlock& a) {
    constexpr bool kHasMin = requires { w.m; };
    int s = 0;
    for (int c = 0; c < 4; ++c)
      for (int k = 0; k < 4; ++k) {
        const uint8_t v = w.qs[32 * c + 4 * r + k], h = w.qh[4 * r + k];
        const int lo = (v & 0x0f) | ((h >> c) & 1) << 4, hi = (v >> 4) | ((h >> (c + 4)) & 1) << 4;
        const int z = kHasMin ? 0 : 16;
        s += (lo - z) * a.q[4 * c + k] + (hi - z) * a.q[16 + 4 * c + k];
      }
    acc += F16ToF32(w.d[r]) * a.d * static_cast<float>(s);
    if constexpr (kHasMin) acc += F16ToF32(w.m[r]) * (a.ds16[0] + a.ds16[1]);
  });
}

// IQ4_NL of 8 interleaved rows (BlockIq4Nlx8, the Q4_0x8 layout).
void DotIq4Nlx8(const void* group, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  OverBlocks8<BlockIq4Nlx8>(group, acts, nt, n, out, [](float& acc, const BlockIq4Nlx8& w, int r, const ActBlock& a) {
    int s = 0;
    for (int c = 0; c < 4; ++c)
      for (int k = 0; k < 4; ++k) {
        const uint8_t v = w.qs[32 * c + 4 * r + k];
        s += kIq4NlValues[v & 0x0f] * a.q[4 * c + k] + kIq4NlValues[v >> 4] * a.q[16 + 4 * c + k];
      }
    acc += F16ToF32(w.d[r]) * a.d * static_cast<float>(s);
  });
}

}  // namespace

void AddGgufScalarKernels(CpuKernels& k) {
  k.iq4_nlx8 = DotIq4Nlx8;
  k.q5_0x8 = DotQ5x8<BlockQ5_0x8>;
  k.q5_1x8 = DotQ5x8<BlockQ5_1x8>;
  k.q4_1 = DotAffine<BlockQ4_1>;
  k.q5_0 = DotAffine<BlockQ5_0>;
  k.q5_1 = DotAffine<BlockQ5_1>;
  k.iq4_nl = DotIq4Nl;
  k.q2_k = DotQ2_K;
  k.q3_k = DotQ3_K;
  k.q5_k = DotQ5_K;
}

}  // namespace qb::kernels::cpu
