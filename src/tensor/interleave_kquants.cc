#include "tensor/interleave_kquants.h"

#include "tensor/dequantize_gguf.h"
#include "tensor/interleave_rows.h"
#include "tensor/quant_blocks.h"
#include "util/check.h"
#include "util/half.h"

namespace qb {

namespace {

using interleave_detail::ElementOf;
using interleave_detail::InterleaveRows;

// The 256 codes of a Q4_K or Q5_K block (4 or 5 bits), in element order.
template <typename Block>
void KCodes(const Block& b, uint8_t* q) {
  for (int g = 0; g < 4; ++g)  // 32 bytes of qs: sub-block 2g in the low nibbles, 2g + 1 high
    for (int l = 0; l < 32; ++l) {
      q[64 * g + l] = b.qs[32 * g + l] & 0x0f;
      q[64 * g + 32 + l] = b.qs[32 * g + l] >> 4;
    }
  if constexpr (requires { b.qh; })
    for (int e = 0; e < kQK_K; ++e) q[e] = static_cast<uint8_t>(q[e] | ((b.qh[e % 32] >> (e / 32)) & 1) << 4);
}

// The 256 six-bit codes (0..63) of a Q6_K block, in element order: in each half of 128 values,
// ql byte l and l + 32 hold the low 4 bits of elements l, l + 32 (low nibbles) and l + 64,
// l + 96 (high nibbles); qh byte l their top 2 bits (bit pairs 0-3).
void Q6KCodes(const BlockQ6_K& b, uint8_t* q) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = b.ql + 64 * h;
    const uint8_t* qh = b.qh + 32 * h;
    uint8_t* o = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      o[l] = static_cast<uint8_t>((ql[l] & 0x0f) | (qh[l] & 3) << 4);
      o[l + 32] = static_cast<uint8_t>((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4);
      o[l + 64] = static_cast<uint8_t>((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4);
      o[l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4);
    }
  }
}

// Q4_K -> Q4_Kx8, Q5_K -> Q5_Kx8: scales and mins by KScaleIndex, each sub-block's low 4 bits
// placed as one Q4_0 block of each row, Q5_K's fifth bits as in Q5_0x8.
template <typename In, typename Out>
Tensor InterleaveK(const Tensor& t, DType out_type, ThreadPool* pool) {
  return InterleaveRows<In, Out>(t, out_type, [](Out& o, const In& in, int r) {
    uint8_t codes[kQK_K];
    KCodes(in, codes);
    o.d[r] = in.d;
    o.dmin[r] = in.dmin;
    for (int s = 0; s < 8; ++s) {
      int sc, m;
      KQuantScaleMin(in.scales, s, &sc, &m);
      const int i = KScaleIndex(s, r), byte = i % 32, half = i / 32;
      o.scales_lo[byte] = static_cast<uint8_t>(o.scales_lo[byte] | (sc & 0x0f) << (4 * half));
      o.mins_lo[byte] = static_cast<uint8_t>(o.mins_lo[byte] | (m & 0x0f) << (4 * half));
      o.high[byte] = static_cast<uint8_t>(o.high[byte] | (sc >> 4) << (2 * half) | (m >> 4) << (4 + 2 * half));
      // Element 16h + 4c + k of the sub-block in nibble h of byte 32c + 4r + k, its fifth bit
      // in bit c + 4h of byte 128 + 4r + k.
      uint8_t* q = o.q + Out::kSubBlockBytes * s;
      for (int c = 0; c < 4; ++c)
        for (int k = 0; k < 4; ++k) {
          const int lo = codes[32 * s + ElementOf(c, k, 0)], hi = codes[32 * s + ElementOf(c, k, 1)];
          q[32 * c + 4 * r + k] = static_cast<uint8_t>((lo & 0x0f) | (hi & 0x0f) << 4);
          if constexpr (Out::kSubBlockBytes > 128)
            q[128 + 4 * r + k] = static_cast<uint8_t>(q[128 + 4 * r + k] | (lo >> 4) << c | (hi >> 4) << (c + 4));
        }
    }
  }, pool);
}

Tensor InterleaveQ6_K(const Tensor& t, ThreadPool* pool) {
  return InterleaveRows<BlockQ6_K, BlockQ6_Kx8>(t, DType::kQ6_Kx8, [](BlockQ6_Kx8& o, const BlockQ6_K& in, int r) {
    uint8_t codes[kQK_K];
    Q6KCodes(in, codes);
    o.d[r] = in.d;
    for (int s = 0; s < 16; ++s) {
      o.scales[KScaleIndex(s, r)] = in.scales[s];
      uint8_t* ql = o.q + 96 * s;
      uint8_t* qh = ql + 64;
      for (int k = 0; k < 4; ++k) {
        uint8_t top = 0;
        for (int g = 0; g < 4; ++g) top = static_cast<uint8_t>(top | (codes[16 * s + 4 * g + k] >> 4) << (2 * g));
        qh[4 * r + k] = top;
        for (int c = 0; c < 2; ++c)
          ql[32 * c + 4 * r + k] =
              static_cast<uint8_t>((codes[16 * s + 4 * c + k] & 0x0f) | (codes[16 * s + 8 + 4 * c + k] & 0x0f) << 4);
      }
    }
  }, pool);
}

// The 2-bit plane of element e (0..255) of a Q2_K / Q3_K block, and Q3_K's third bit.
inline int Low2(const uint8_t* qs, int e) { return (qs[32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32))) & 3; }
inline int Q3KHigh(const BlockQ3_K& b, int e) { return (b.hmask[e % 32] >> (e / 32)) & 1; }

Tensor InterleaveQ2_K(const Tensor& t, ThreadPool* pool) {
  return InterleaveRows<BlockQ2_K, BlockQ2_Kx8>(t, DType::kQ2_Kx8, [](BlockQ2_Kx8& o, const BlockQ2_K& in, int r) {
    o.d[r] = in.d;
    o.dmin[r] = in.dmin;
    for (int s = 0; s < 16; ++s) {
      o.scales[KScaleIndex(s, r)] = in.scales[s];
      for (int k = 0; k < 4; ++k) {
        uint8_t v = 0;
        for (int g = 0; g < 4; ++g) v = static_cast<uint8_t>(v | Low2(in.qs, 16 * s + 4 * g + k) << (2 * g));
        o.q[32 * s + 4 * r + k] = v;
      }
    }
  }, pool);
}

Tensor InterleaveQ3_K(const Tensor& t, ThreadPool* pool) {
  return InterleaveRows<BlockQ3_K, BlockQ3_Kx8>(t, DType::kQ3_Kx8, [](BlockQ3_Kx8& o, const BlockQ3_K& in, int r) {
    o.d[r] = in.d;
    int8_t sc[16];
    UnpackQ3KScales(in.scales, sc);
    for (int s = 0; s < 16; ++s) {
      const int i = KScaleIndex(s, r), stored = sc[s] + 32;
      o.scales_lo[i % 64] = static_cast<uint8_t>(o.scales_lo[i % 64] | (stored & 0x0f) << (4 * (i / 64)));
      o.scales_hi[i % 32] = static_cast<uint8_t>(o.scales_hi[i % 32] | (stored >> 4) << (2 * (i / 32)));
      uint8_t* q = o.q + 96 * (s / 2);
      for (int k = 0; k < 4; ++k) {
        uint8_t low = 0, high = 0;
        for (int g = 0; g < 4; ++g) {
          const int e = 16 * s + 4 * g + k;
          low = static_cast<uint8_t>(low | Low2(in.qs, e) << (2 * g));
          high = static_cast<uint8_t>(high | Q3KHigh(in, e) << (g + 4 * (s % 2)));
        }
        q[32 * (s % 2) + 4 * r + k] = low;
        q[64 + 4 * r + k] = static_cast<uint8_t>(q[64 + 4 * r + k] | high);
      }
    }
  }, pool);
}

// The super-blocks of row r of an x8 matrix: fn(block, the row's lane, block index).
template <typename Block, typename Fn>
void OverRowBlocks(const Block* data, int64_t cols, int64_t r, Fn fn) {
  const int64_t nb = cols / kQK_K;
  const Block* blocks = data + (r / 8) * nb;
  for (int64_t b = 0; b < nb; ++b) fn(blocks[b], static_cast<int>(r % 8), b);
}

// Rows of Q2_Kx8 / Q3_Kx8 matrices, with the float operations of DequantQ2_K / DequantQ3_K.
void DequantizeQ2_Kx8Row(const BlockQ2_Kx8* data, int64_t cols, int64_t r, float* out) {
  OverRowBlocks(data, cols, r, [&](const BlockQ2_Kx8& x, int lane, int64_t b) {
    const float d = F16ToF32(x.d[lane]), dmin = F16ToF32(x.dmin[lane]);
    for (int s = 0; s < 16; ++s) {
      const uint8_t sc = x.scales[KScaleIndex(s, lane)];
      for (int e = 0; e < 16; ++e) {
        const int q = (x.q[32 * s + 4 * lane + e % 4] >> (2 * (e / 4))) & 3;
        out[b * kQK_K + 16 * s + e] = d * static_cast<float>(sc & 0x0f) * static_cast<float>(q) - dmin * static_cast<float>(sc >> 4);
      }
    }
  });
}

void DequantizeQ3_Kx8Row(const BlockQ3_Kx8* data, int64_t cols, int64_t r, float* out) {
  OverRowBlocks(data, cols, r, [&](const BlockQ3_Kx8& x, int lane, int64_t b) {
    const float d = F16ToF32(x.d[lane]);
    for (int s = 0; s < 16; ++s) {
      const int sc = Q3KScaleX8(x, s, lane);
      for (int e = 0; e < 16; ++e)
        out[b * kQK_K + 16 * s + e] = d * static_cast<float>(sc) * static_cast<float>(Q3KCodeX8(x, s, lane, e / 4, e % 4) - 4);
    }
  });
}

// Row r of a Q4_Kx8 / Q5_Kx8 matrix: d * sc * q - dmin * m per sub-block.
template <typename Block>
void DequantizeKx8Row(const Block* data, int64_t cols, int64_t r, float* out) {
  OverRowBlocks(data, cols, r, [&](const Block& x, int lane, int64_t b) {
    const float d = F16ToF32(x.d[lane]), dmin = F16ToF32(x.dmin[lane]);
    for (int s = 0; s < 8; ++s) {
      int sc, m;
      KScaleMinX8(x, s, lane, &sc, &m);
      const float ds = d * static_cast<float>(sc), ms = dmin * static_cast<float>(m);  // as DequantQ4_K
      const uint8_t* q = x.q + Block::kSubBlockBytes * s;
      for (int c = 0; c < 4; ++c)
        for (int k = 0; k < 4; ++k)
          for (int h = 0; h < 2; ++h) {
            int code = (q[32 * c + 4 * lane + k] >> (4 * h)) & 0x0f;
            if constexpr (Block::kSubBlockBytes > 128) code |= ((q[128 + 4 * lane + k] >> (c + 4 * h)) & 1) << 4;
            out[b * kQK_K + 32 * s + ElementOf(c, k, h)] = ds * static_cast<float>(code) - ms;
          }
    }
  });
}

// Row r of a Q6_Kx8 matrix: d * sc * (q - 32) per sub-block.
void DequantizeQ6_Kx8Row(const BlockQ6_Kx8* data, int64_t cols, int64_t r, float* out) {
  OverRowBlocks(data, cols, r, [&](const BlockQ6_Kx8& x, int lane, int64_t b) {
    const float d = F16ToF32(x.d[lane]);
    for (int s = 0; s < 16; ++s) {
      const int sc = x.scales[KScaleIndex(s, lane)];
      for (int e = 0; e < 16; ++e) {
        const int g = e / 4, k = e % 4, c = g % 2;
        const uint8_t* q = x.q + 96 * s;
        const uint8_t lo = q[32 * c + 4 * lane + k];
        const int code = (g < 2 ? lo & 0x0f : lo >> 4) | ((q[64 + 4 * lane + k] >> (2 * g)) & 3) << 4;
        out[b * kQK_K + 16 * s + e] = d * static_cast<float>(sc * (code - 32));
      }
    }
  });
}

}  // namespace

Tensor InterleaveKQuant(const Tensor& t, ThreadPool* pool) {
  switch (t.dtype()) {
    case DType::kQ2_K: return InterleaveQ2_K(t, pool);
    case DType::kQ3_K: return InterleaveQ3_K(t, pool);
    case DType::kQ4_K: return InterleaveK<BlockQ4_K, BlockQ4_Kx8>(t, DType::kQ4_Kx8, pool);
    case DType::kQ5_K: return InterleaveK<BlockQ5_K, BlockQ5_Kx8>(t, DType::kQ5_Kx8, pool);
    case DType::kQ6_K: return InterleaveQ6_K(t, pool);
    default: QB_CHECK(false, "{} has no interleaved K-quant layout", Name(t.dtype()));
  }
  return {};
}

bool DequantizeKQuantX8Row(const void* data, DType type, int64_t cols, int64_t r, float* out) {
  switch (type) {
    case DType::kQ2_Kx8: DequantizeQ2_Kx8Row(static_cast<const BlockQ2_Kx8*>(data), cols, r, out); return true;
    case DType::kQ3_Kx8: DequantizeQ3_Kx8Row(static_cast<const BlockQ3_Kx8*>(data), cols, r, out); return true;
    case DType::kQ4_Kx8: DequantizeKx8Row(static_cast<const BlockQ4_Kx8*>(data), cols, r, out); return true;
    case DType::kQ5_Kx8: DequantizeKx8Row(static_cast<const BlockQ5_Kx8*>(data), cols, r, out); return true;
    case DType::kQ6_Kx8: DequantizeQ6_Kx8Row(static_cast<const BlockQ6_Kx8*>(data), cols, r, out); return true;
    default: return false;
  }
}

}  // namespace qb
