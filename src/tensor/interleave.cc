#include "tensor/interleave.h"

#include <cstring>

#include "tensor/dequantize.h"
#include "tensor/dequantize_gguf.h"
#include "tensor/quant_blocks.h"
#include "util/check.h"
#include "util/half.h"

namespace qb {

DType InterleavedType(DType t) {
  if (t == DType::kQ4_0) return DType::kQ4_0x8;
  if (t == DType::kQ8_0) return DType::kQ8_0x8;
  if (t == DType::kQ5_0) return DType::kQ5_0x8;
  if (t == DType::kQ5_1) return DType::kQ5_1x8;
  if (t == DType::kIq4Nl) return DType::kIq4Nlx8;
  if (t == DType::kQ4_K) return DType::kQ4_Kx8;
  if (t == DType::kQ6_K) return DType::kQ6_Kx8;
  if (t == DType::kQ5_K) return DType::kQ5_Kx8;
  return t;
}

bool CanInterleave(const Tensor& t) {
  return t.rank() == 2 && InterleavedType(t.dtype()) != t.dtype() && t.dim(0) % Info(InterleavedType(t.dtype())).row_group == 0;
}

namespace {

// The repacking loop every layout shares: for each group of 8 rows and each block column,
// fill(out block, row r's block, r) for r = 0..7 (the caller's `fill` places row r's values).
template <typename In, typename Out, typename Fill>
Tensor InterleaveRows(const Tensor& t, DType out_type, Fill fill) {
  const int64_t rows = t.dim(0), nb = t.dim(1) / Info(t.dtype()).block_size;
  Tensor out = Tensor::Empty(out_type, t.shape());
  auto* dst = static_cast<Out*>(out.mutable_raw());
  const auto* src = static_cast<const In*>(t.raw());
  for (int64_t g = 0; g < rows / 8; ++g)
    for (int64_t b = 0; b < nb; ++b)
      for (int r = 0; r < 8; ++r) fill(dst[g * nb + b], src[(g * 8 + r) * nb + b], r);
  return out;
}

Tensor InterleaveQ8_0(const Tensor& t) {
  return InterleaveRows<BlockQ8_0, BlockQ8_0x8>(t, DType::kQ8_0x8, [](BlockQ8_0x8& o, const BlockQ8_0& in, int r) {
    o.d[r] = in.d;
    for (int c = 0; c < 8; ++c)
      for (int k = 0; k < 4; ++k) o.qs[32 * c + 4 * r + k] = in.qs[4 * c + k];
  });
}

// The value of element e (0..31) of a Q4_0 / Q5_0 block's byte layout and of the x8 layout:
// byte group c, lane byte k, nibble half h (0 low, 1 high) hold element 16h + 4c + k.
inline int ElementOf(int c, int k, int h) { return 16 * h + 4 * c + k; }

// Row r's 16 nibble bytes (element e: low nibble of qs[e] for e < 16, else high nibble of
// qs[e - 16]) placed in lane r of the x8 layout's 4 byte groups.
inline void PlaceNibbles(const uint8_t* in_qs, int r, uint8_t* out_qs) {
  for (int c = 0; c < 4; ++c)
    for (int k = 0; k < 4; ++k) {
      const uint8_t lo = in_qs[ElementOf(c, k, 0)] & 0x0f, hi = in_qs[ElementOf(c, k, 1) - 16] >> 4;
      out_qs[32 * c + 4 * r + k] = static_cast<uint8_t>(lo | (hi << 4));
    }
}

// Q4_0 -> Q4_0x8, IQ4_NL -> IQ4_NLx8: the nibbles rearranged, the scales gathered.
template <typename In, typename Out>
Tensor InterleaveNibbles(const Tensor& t, DType out_type) {
  return InterleaveRows<In, Out>(t, out_type, [](Out& o, const In& in, int r) {
    o.d[r] = in.d;
    PlaceNibbles(in.qs, r, o.qs);
  });
}

// Q5_0 -> Q5_0x8, Q5_1 -> Q5_1x8 (the latter with its mins): the nibbles as above, and the
// fifth bits of byte group c's low / high nibbles as bits c / c + 4 of qh[4r + k].
template <typename In, typename Out>
Tensor InterleaveQ5(const Tensor& t, DType out_type) {
  return InterleaveRows<In, Out>(t, out_type, [](Out& o, const In& in, int r) {
    uint32_t high;
    std::memcpy(&high, in.qh, sizeof(high));
    o.d[r] = in.d;
    if constexpr (requires { in.m; }) o.m[r] = in.m;
    PlaceNibbles(in.qs, r, o.qs);
    for (int k = 0; k < 4; ++k) {
      uint8_t bits = 0;
      for (int c = 0; c < 4; ++c)
        bits |= static_cast<uint8_t>(((high >> ElementOf(c, k, 0)) & 1u) << c | ((high >> ElementOf(c, k, 1)) & 1u) << (c + 4));
      o.qh[4 * r + k] = bits;
    }
  });
}

// Row r of a Q4_0x8 / IQ4_NLx8 matrix: d * value(code).
template <typename Block, typename Value>
void DequantizeNibblesX8Row(const Block* data, int64_t cols, int64_t r, float* out, Value value) {
  const int64_t nb = cols / kQK4_0, lane = r % 8;
  const Block* blocks = data + (r / 8) * nb;
  for (int64_t b = 0; b < nb; ++b) {
    const float d = F16ToF32(blocks[b].d[lane]);
    for (int c = 0; c < 4; ++c)
      for (int k = 0; k < 4; ++k) {
        const uint8_t v = blocks[b].qs[32 * c + 4 * lane + k];
        out[b * 32 + ElementOf(c, k, 0)] = d * static_cast<float>(value(v & 0x0f));
        out[b * 32 + ElementOf(c, k, 1)] = d * static_cast<float>(value(v >> 4));
      }
  }
}

// Row r of a Q5_0x8 / Q5_1x8 matrix: d * (q - 16), or d * q + m.
template <typename Block>
void DequantizeQ5x8Row(const Block* data, int64_t cols, int64_t r, float* out) {
  const int64_t nb = cols / kQK4_0, lane = r % 8;
  const Block* blocks = data + (r / 8) * nb;
  for (int64_t b = 0; b < nb; ++b) {
    const float d = F16ToF32(blocks[b].d[lane]);
    for (int c = 0; c < 4; ++c)
      for (int k = 0; k < 4; ++k) {
        const uint8_t v = blocks[b].qs[32 * c + 4 * lane + k], h = blocks[b].qh[4 * lane + k];
        const int lo = (v & 0x0f) | ((h >> c) & 1) << 4, hi = (v >> 4) | ((h >> (c + 4)) & 1) << 4;
        if constexpr (requires { blocks[b].m; }) {
          const float m = F16ToF32(blocks[b].m[lane]);
          out[b * 32 + ElementOf(c, k, 0)] = d * static_cast<float>(lo) + m;
          out[b * 32 + ElementOf(c, k, 1)] = d * static_cast<float>(hi) + m;
        } else {
          out[b * 32 + ElementOf(c, k, 0)] = d * static_cast<float>(lo - 16);
          out[b * 32 + ElementOf(c, k, 1)] = d * static_cast<float>(hi - 16);
        }
      }
  }
}


// Element e (0..255) of a Q4_K or Q5_K block: its 4- or 5-bit code.
template <typename Block>
int KCode(const Block& b, int e) {
  const uint8_t v = b.qs[32 * (e / 64) + e % 32];
  int code = e % 64 < 32 ? v & 0x0f : v >> 4;
  if constexpr (requires { b.qh; }) code |= ((b.qh[e % 32] >> (e / 32)) & 1) << 4;
  return code;
}

// Element e (0..255) of a Q6_K block: its 6-bit code (0..63).
inline int Q6KCode(const BlockQ6_K& b, int e) {
  const int h = e / 128, g = (e % 128) / 32, l = e % 32;
  const uint8_t lo = b.ql[64 * h + l + (g % 2) * 32];
  return ((g < 2 ? lo & 0x0f : lo >> 4) | (((b.qh[32 * h + l] >> (2 * g)) & 3) << 4));
}

// Q4_K -> Q4_Kx8, Q5_K -> Q5_Kx8: scales and mins by KScaleIndex, each sub-block's low 4 bits
// placed as one Q4_0 block of each row, Q5_K's fifth bits as in Q5_0x8.
template <typename In, typename Out>
Tensor InterleaveK(const Tensor& t, DType out_type) {
  return InterleaveRows<In, Out>(t, out_type, [](Out& o, const In& in, int r) {
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
          const int lo = KCode(in, 32 * s + ElementOf(c, k, 0)), hi = KCode(in, 32 * s + ElementOf(c, k, 1));
          q[32 * c + 4 * r + k] = static_cast<uint8_t>((lo & 0x0f) | (hi & 0x0f) << 4);
          if constexpr (Out::kSubBlockBytes > 128)
            q[128 + 4 * r + k] = static_cast<uint8_t>(q[128 + 4 * r + k] | (lo >> 4) << c | (hi >> 4) << (c + 4));
        }
    }
  });
}

Tensor InterleaveQ6_K(const Tensor& t) {
  return InterleaveRows<BlockQ6_K, BlockQ6_Kx8>(t, DType::kQ6_Kx8, [](BlockQ6_Kx8& o, const BlockQ6_K& in, int r) {
    o.d[r] = in.d;
    for (int s = 0; s < 16; ++s) {
      o.scales[KScaleIndex(s, r)] = in.scales[s];
      uint8_t* ql = o.q + 96 * s;
      uint8_t* qh = ql + 64;
      for (int k = 0; k < 4; ++k) {
        uint8_t top = 0;
        for (int g = 0; g < 4; ++g) top = static_cast<uint8_t>(top | (Q6KCode(in, 16 * s + 4 * g + k) >> 4) << (2 * g));
        qh[4 * r + k] = top;
        for (int c = 0; c < 2; ++c)
          ql[32 * c + 4 * r + k] = static_cast<uint8_t>((Q6KCode(in, 16 * s + 4 * c + k) & 0x0f) |
                                                        (Q6KCode(in, 16 * s + 8 + 4 * c + k) & 0x0f) << 4);
      }
    }
  });
}

// Row r of a Q4_Kx8 / Q5_Kx8 matrix: d * sc * q - dmin * m per sub-block.
template <typename Block>
void DequantizeKx8Row(const Block* data, int64_t cols, int64_t r, float* out) {
  const int64_t nb = cols / kQK_K;
  const int lane = static_cast<int>(r % 8);
  const Block* blocks = data + (r / 8) * nb;
  for (int64_t b = 0; b < nb; ++b) {
    const Block& x = blocks[b];
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
  }
}

// Row r of a Q6_Kx8 matrix: d * sc * (q - 32) per sub-block.
void DequantizeQ6_Kx8Row(const BlockQ6_Kx8* data, int64_t cols, int64_t r, float* out) {
  const int64_t nb = cols / kQK_K;
  const int lane = static_cast<int>(r % 8);
  const BlockQ6_Kx8* blocks = data + (r / 8) * nb;
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ6_Kx8& x = blocks[b];
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
  }
}

}  // namespace

Tensor Interleave(const Tensor& t) {
  QB_CHECK(CanInterleave(t), "cannot interleave {} {}", Name(t.dtype()), ShapeToString(t.shape()));
  if (t.dtype() == DType::kQ8_0) return InterleaveQ8_0(t);
  if (t.dtype() == DType::kQ5_0) return InterleaveQ5<BlockQ5_0, BlockQ5_0x8>(t, DType::kQ5_0x8);
  if (t.dtype() == DType::kQ5_1) return InterleaveQ5<BlockQ5_1, BlockQ5_1x8>(t, DType::kQ5_1x8);
  if (t.dtype() == DType::kIq4Nl) return InterleaveNibbles<BlockIq4Nl, BlockIq4Nlx8>(t, DType::kIq4Nlx8);
  if (t.dtype() == DType::kQ4_K) return InterleaveK<BlockQ4_K, BlockQ4_Kx8>(t, DType::kQ4_Kx8);
  if (t.dtype() == DType::kQ5_K) return InterleaveK<BlockQ5_K, BlockQ5_Kx8>(t, DType::kQ5_Kx8);
  if (t.dtype() == DType::kQ6_K) return InterleaveQ6_K(t);
  return InterleaveNibbles<BlockQ4_0, BlockQ4_0x8>(t, DType::kQ4_0x8);
}

void DequantizeMatrixRow(const void* data, DType type, int64_t cols, int64_t r, float* out) {
  if (type == DType::kQ8_0x8) {
    const int64_t nb = cols / kQK8_0, lane = r % 8;
    const auto* blocks = static_cast<const BlockQ8_0x8*>(data) + (r / 8) * nb;
    for (int64_t b = 0; b < nb; ++b) {
      const float d = F16ToF32(blocks[b].d[lane]);
      for (int c = 0; c < 8; ++c)
        for (int k = 0; k < 4; ++k) out[b * 32 + 4 * c + k] = d * static_cast<float>(blocks[b].qs[32 * c + 4 * lane + k]);
    }
    return;
  }
  if (type == DType::kQ4_Kx8) {
    DequantizeKx8Row(static_cast<const BlockQ4_Kx8*>(data), cols, r, out);
    return;
  }
  if (type == DType::kQ5_Kx8) {
    DequantizeKx8Row(static_cast<const BlockQ5_Kx8*>(data), cols, r, out);
    return;
  }
  if (type == DType::kQ6_Kx8) {
    DequantizeQ6_Kx8Row(static_cast<const BlockQ6_Kx8*>(data), cols, r, out);
    return;
  }
  if (type == DType::kQ5_0x8) {
    DequantizeQ5x8Row(static_cast<const BlockQ5_0x8*>(data), cols, r, out);
    return;
  }
  if (type == DType::kQ5_1x8) {
    DequantizeQ5x8Row(static_cast<const BlockQ5_1x8*>(data), cols, r, out);
    return;
  }
  if (type == DType::kQ4_0x8) {
    DequantizeNibblesX8Row(static_cast<const BlockQ4_0x8*>(data), cols, r, out, [](int q) { return q - 8; });
    return;
  }
  if (type == DType::kIq4Nlx8) {
    DequantizeNibblesX8Row(static_cast<const BlockIq4Nlx8*>(data), cols, r, out, [](int q) { return kIq4NlValues[q]; });
    return;
  }
  DequantizeRow(type, static_cast<const uint8_t*>(data) + r * RowBytes(type, cols), out, cols);
}

}  // namespace qb
