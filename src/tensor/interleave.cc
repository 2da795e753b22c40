#include "tensor/interleave.h"

#include <cstring>

#include "tensor/dequantize.h"
#include "tensor/interleave_kquants.h"
#include "tensor/interleave_rows.h"
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
  if (t == DType::kQ2_K) return DType::kQ2_Kx8;
  if (t == DType::kQ3_K) return DType::kQ3_Kx8;
  return t;
}

bool CanInterleave(const Tensor& t) {
  return t.rank() == 2 && InterleavedType(t.dtype()) != t.dtype() && t.dim(0) % Info(InterleavedType(t.dtype())).row_group == 0;
}

namespace {

using interleave_detail::ElementOf;
using interleave_detail::InterleaveRows;

Tensor InterleaveQ8_0(const Tensor& t, ThreadPool* pool) {
  return InterleaveRows<BlockQ8_0, BlockQ8_0x8>(t, DType::kQ8_0x8, [](BlockQ8_0x8& o, const BlockQ8_0& in, int r) {
    o.d[r] = in.d;
    for (int c = 0; c < 8; ++c)
      for (int k = 0; k < 4; ++k) o.qs[32 * c + 4 * r + k] = in.qs[4 * c + k];
  }, pool);
}

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
Tensor InterleaveNibbles(const Tensor& t, DType out_type, ThreadPool* pool) {
  return InterleaveRows<In, Out>(t, out_type, [](Out& o, const In& in, int r) {
    o.d[r] = in.d;
    PlaceNibbles(in.qs, r, o.qs);
  }, pool);
}

// Q5_0 -> Q5_0x8, Q5_1 -> Q5_1x8 (the latter with its mins): the nibbles as above, and the
// fifth bits of byte group c's low / high nibbles as bits c / c + 4 of qh[4r + k].
template <typename In, typename Out>
Tensor InterleaveQ5(const Tensor& t, DType out_type, ThreadPool* pool) {
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
  }, pool);
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
}  // namespace

Tensor Interleave(const Tensor& t, ThreadPool* pool) {
  QB_CHECK(CanInterleave(t), "cannot interleave {} {}", Name(t.dtype()), ShapeToString(t.shape()));
  if (t.dtype() == DType::kQ8_0) return InterleaveQ8_0(t, pool);
  if (t.dtype() == DType::kQ5_0) return InterleaveQ5<BlockQ5_0, BlockQ5_0x8>(t, DType::kQ5_0x8, pool);
  if (t.dtype() == DType::kQ5_1) return InterleaveQ5<BlockQ5_1, BlockQ5_1x8>(t, DType::kQ5_1x8, pool);
  if (t.dtype() == DType::kIq4Nl) return InterleaveNibbles<BlockIq4Nl, BlockIq4Nlx8>(t, DType::kIq4Nlx8, pool);
  if (Info(t.dtype()).block_size == kQK_K) return InterleaveKQuant(t, pool);
  return InterleaveNibbles<BlockQ4_0, BlockQ4_0x8>(t, DType::kQ4_0x8, pool);
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
  if (DequantizeKQuantX8Row(data, type, cols, r, out)) return;
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
