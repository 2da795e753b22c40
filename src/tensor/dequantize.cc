#include "tensor/dequantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/dequantize_gguf.h"
#include "tensor/quant_blocks.h"
#include "util/check.h"
#include "util/half.h"

namespace qb {

namespace {

void DequantQ8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = F16ToF32(b[i].d);
    for (int j = 0; j < kQK8_0; ++j) y[i * kQK8_0 + j] = d * static_cast<float>(b[i].qs[j]);
  }
}

void DequantQ4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  constexpr int kHalf = kQK4_0 / 2;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = F16ToF32(b[i].d);
    float* out = y + i * kQK4_0;
    for (int j = 0; j < kHalf; ++j) {
      out[j] = d * static_cast<float>((b[i].qs[j] & 0x0f) - 8);
      out[j + kHalf] = d * static_cast<float>((b[i].qs[j] >> 4) - 8);
    }
  }
}

void DequantQ4Z(const BlockQ4Z* b, float* y, int64_t nb) {
  constexpr int kHalf = kQK4_0 / 2;
  for (int64_t i = 0; i < nb; ++i) {
    const float d = F16ToF32(b[i].d);
    const int z = b[i].z;
    float* out = y + i * kQK4_0;
    for (int j = 0; j < kHalf; ++j) {
      out[j] = d * static_cast<float>((b[i].qs[j] & 0x0f) - z);
      out[j + kHalf] = d * static_cast<float>((b[i].qs[j] >> 4) - z);
    }
  }
}


void DequantQ4_K(const BlockQ4_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = F16ToF32(b[i].d);
    const float dmin = F16ToF32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    float* out = y + i * kQK_K;
    // Each 32 bytes of qs hold sub-blocks 2g (low nibbles) and 2g+1 (high nibbles).
    for (int g = 0; g < 4; ++g) {
      int sc0, m0, sc1, m1;
      KQuantScaleMin(b[i].scales, 2 * g, &sc0, &m0);
      KQuantScaleMin(b[i].scales, 2 * g + 1, &sc1, &m1);
      const float d0 = d * static_cast<float>(sc0), min0 = dmin * static_cast<float>(m0), d1 = d * static_cast<float>(sc1),
                  min1 = dmin * static_cast<float>(m1);
      for (int l = 0; l < 32; ++l) {
        out[64 * g + l] = d0 * static_cast<float>(q[32 * g + l] & 0x0f) - min0;
        out[64 * g + 32 + l] = d1 * static_cast<float>(q[32 * g + l] >> 4) - min1;
      }
    }
  }
}

void DequantQ6_K(const BlockQ6_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = F16ToF32(b[i].d);
    float* out = y + i * kQK_K;
    // Two halves of 128 values; in each, ql[0..63] and qh[0..31] cover four runs of 32.
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = b[i].ql + 64 * h;
      const uint8_t* qh = b[i].qh + 32 * h;
      const int8_t* sc = b[i].scales + 8 * h;
      float* o = out + 128 * h;
      for (int l = 0; l < 32; ++l) {
        const int s = l / 16;
        const int q0 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q1 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        o[l] = d * static_cast<float>(sc[s] * q0);
        o[l + 32] = d * static_cast<float>(sc[s + 2] * q1);
        o[l + 64] = d * static_cast<float>(sc[s + 4] * q2);
        o[l + 96] = d * static_cast<float>(sc[s + 6] * q3);
      }
    }
  }
}

}  // namespace

void DequantizeRow(DType type, const void* src, float* dst, int64_t n) {
  const DTypeInfo& info = Info(type);
  QB_CHECK(n % info.block_size == 0, "{} elements are not whole {} blocks", n, info.name);
  const int64_t nb = n / info.block_size;
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = F16ToF32(s[i]);
      return;
    }
    case DType::kBF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = BF16ToF32(s[i]);
      return;
    }
    case DType::kI32: {
      const auto* s = static_cast<const int32_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::kI8: {
      const auto* s = static_cast<const int8_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::kU8: {
      const auto* s = static_cast<const uint8_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::kQ8_0: DequantQ8_0(static_cast<const BlockQ8_0*>(src), dst, nb); return;
    case DType::kQ4_0: DequantQ4_0(static_cast<const BlockQ4_0*>(src), dst, nb); return;
    case DType::kQ4_K: DequantQ4_K(static_cast<const BlockQ4_K*>(src), dst, nb); return;
    case DType::kQ6_K: DequantQ6_K(static_cast<const BlockQ6_K*>(src), dst, nb); return;
    case DType::kQ4Z: DequantQ4Z(static_cast<const BlockQ4Z*>(src), dst, nb); return;
    case DType::kQ4_1:
    case DType::kQ5_0:
    case DType::kQ5_1:
    case DType::kIq4Nl:
    case DType::kQ2_K:
    case DType::kQ3_K:
    case DType::kQ5_K: DequantizeGgufBlocks(type, src, dst, nb); return;
    case DType::kQ4_0x8:
    case DType::kQ5_0x8:
    case DType::kQ5_1x8:
    case DType::kIq4Nlx8:
    case DType::kQ4_Kx8:
    case DType::kQ6_Kx8:
    case DType::kQ5_Kx8:
    case DType::kQ2_Kx8:
    case DType::kQ3_Kx8:
    case DType::kQ8_0x8: break;  // rows are interleaved: use DequantizeMatrixRow
  }
  QB_CHECK(false, "unhandled dtype {}", static_cast<int>(type));
}

void QuantizeRowQ8_0(const float* src, BlockQ8_0* dst, int64_t n) {
  QB_CHECK(n % kQK8_0 == 0);
  for (int64_t i = 0; i < n / kQK8_0; ++i) {
    const float* x = src + i * kQK8_0;
    float amax = 0.f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    const float inv = d != 0.f ? 1.f / d : 0.f;
    dst[i].d = F32ToF16(d);
    for (int j = 0; j < kQK8_0; ++j)
      dst[i].qs[j] = static_cast<int8_t>(std::clamp(std::lround(x[j] * inv), -127L, 127L));
  }
}

void RoundRowQ8_0(const float* src, float* dst, int64_t n) {
  QB_CHECK(n % kQK8_0 == 0);
  constexpr float kRound = 12582912.f;  // 1.5 * 2^23: (c + kRound) - kRound rounds |c| < 2^22 half to even
  for (int64_t i = 0; i < n; i += kQK8_0) {
    float amax = 0.f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(src[i + j]));
    const float d = amax / 127.f;
    const float inv = d != 0.f ? 1.f / d : 0.f;
    const float dh = F16ToF32(F32ToF16(d));
    for (int j = 0; j < kQK8_0; ++j) {
      const float code = std::clamp((src[i + j] * inv + kRound) - kRound, -127.f, 127.f);
      dst[i + j] = dh * code;
    }
  }
}

void QuantizeRowQ4_0(const float* src, BlockQ4_0* dst, int64_t n) {
  QB_CHECK(n % kQK4_0 == 0);
  constexpr int kHalf = kQK4_0 / 2;
  for (int64_t i = 0; i < n / kQK4_0; ++i) {
    const float* x = src + i * kQK4_0;
    // The value of largest magnitude maps to -8, so its sign decides the sign of d.
    float extreme = 0.f;
    for (int j = 0; j < kQK4_0; ++j)
      if (std::fabs(x[j]) > std::fabs(extreme)) extreme = x[j];
    const float d = extreme / -8.f;
    const float inv = d != 0.f ? 1.f / d : 0.f;
    dst[i].d = F32ToF16(d);
    auto q = [&](float v) { return static_cast<uint8_t>(std::clamp(std::lround(v * inv) + 8, 0L, 15L)); };
    for (int j = 0; j < kHalf; ++j)
      dst[i].qs[j] = static_cast<uint8_t>(q(x[j]) | (q(x[j + kHalf]) << 4));
  }
}

// Q4_K: per 32-value sub-block, x ~= scale * q - min with q in 0..15; the sub-blocks' scales
// and mins are then quantized to 6 bits against the super-block's d and dmin.
void QuantizeRowQ4_K(const float* src, BlockQ4_K* dst, int64_t n) {
  QB_CHECK(n % kQK_K == 0);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float* x = src + i * kQK_K;
    float scale[8], min[8];
    float max_scale = 0.f, max_min = 0.f;
    for (int s = 0; s < 8; ++s) {
      float lo = x[32 * s], hi = x[32 * s];
      for (int j = 1; j < 32; ++j) {
        lo = std::min(lo, x[32 * s + j]);
        hi = std::max(hi, x[32 * s + j]);
      }
      lo = std::min(lo, 0.f);  // the offset only ever lowers the grid's origin
      scale[s] = (hi - lo) / 15.f;
      min[s] = -lo;
      max_scale = std::max(max_scale, scale[s]);
      max_min = std::max(max_min, min[s]);
    }
    const float d = max_scale / 63.f, dmin = max_min / 63.f;
    BlockQ4_K& b = dst[i];
    b.d = F32ToF16(d);
    b.dmin = F32ToF16(dmin);
    const float d16 = F16ToF32(b.d), dmin16 = F16ToF32(b.dmin);
    int sc[8], m[8];
    for (int s = 0; s < 8; ++s) {
      sc[s] = d16 > 0.f ? static_cast<int>(std::clamp(std::lround(scale[s] / d16), 0L, 63L)) : 0;
      m[s] = dmin16 > 0.f ? static_cast<int>(std::clamp(std::lround(min[s] / dmin16), 0L, 63L)) : 0;
    }
    for (int s = 0; s < 4; ++s) {
      b.scales[s] = static_cast<uint8_t>((sc[s] & 63) | ((sc[s + 4] >> 4) << 6));
      b.scales[s + 4] = static_cast<uint8_t>((m[s] & 63) | ((m[s + 4] >> 4) << 6));
      b.scales[s + 8] = static_cast<uint8_t>((sc[s + 4] & 15) | ((m[s + 4] & 15) << 4));
    }
    for (int g = 0; g < 4; ++g) {
      uint8_t q[2][32];
      for (int h = 0; h < 2; ++h) {
        const int s = 2 * g + h;
        const float step = d16 * static_cast<float>(sc[s]), off = dmin16 * static_cast<float>(m[s]);
        for (int j = 0; j < 32; ++j)
          q[h][j] = step > 0.f ? static_cast<uint8_t>(std::clamp(std::lround((x[32 * s + j] + off) / step), 0L, 15L)) : 0;
      }
      for (int j = 0; j < 32; ++j) b.qs[32 * g + j] = static_cast<uint8_t>(q[0][j] | (q[1][j] << 4));
    }
  }
}

// Q6_K: per 16-value sub-block, x ~= scale * (q - 32) with q in 0..63; the value of largest
// magnitude maps to -32; scales quantized to int8 against the super-block's d.
void QuantizeRowQ6_K(const float* src, BlockQ6_K* dst, int64_t n) {
  QB_CHECK(n % kQK_K == 0);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float* x = src + i * kQK_K;
    float scale[16];
    float max_abs_scale = 0.f;
    for (int s = 0; s < 16; ++s) {
      float extreme = 0.f;
      for (int j = 0; j < 16; ++j)
        if (std::fabs(x[16 * s + j]) > std::fabs(extreme)) extreme = x[16 * s + j];
      scale[s] = extreme / -32.f;
      max_abs_scale = std::max(max_abs_scale, std::fabs(scale[s]));
    }
    BlockQ6_K& b = dst[i];
    const float d = max_abs_scale / 127.f;
    b.d = F32ToF16(d);
    const float d16 = F16ToF32(b.d);
    int q[kQK_K];
    for (int s = 0; s < 16; ++s) {
      const int sc = d16 > 0.f ? static_cast<int>(std::clamp(std::lround(scale[s] / d16), -127L, 127L)) : 0;
      b.scales[s] = static_cast<int8_t>(sc);
      const float step = d16 * static_cast<float>(sc);
      for (int j = 0; j < 16; ++j)
        q[16 * s + j] = step != 0.f ? static_cast<int>(std::clamp(std::lround(x[16 * s + j] / step) + 32, 0L, 63L)) : 32;
    }
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 32; ++l) {
        const int* qq = q + 128 * h;
        b.ql[64 * h + l] = static_cast<uint8_t>((qq[l] & 15) | ((qq[l + 64] & 15) << 4));
        b.ql[64 * h + l + 32] = static_cast<uint8_t>((qq[l + 32] & 15) | ((qq[l + 96] & 15) << 4));
        b.qh[32 * h + l] = static_cast<uint8_t>((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) | ((qq[l + 64] >> 4) << 4) |
                                                ((qq[l + 96] >> 4) << 6));
      }
  }
}

void QuantizeRow(DType type, const float* src, void* dst, int64_t n) {
  switch (type) {
    case DType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = F32ToF16(src[i]);
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = F32ToBF16(src[i]);
      return;
    case DType::kQ8_0: QuantizeRowQ8_0(src, static_cast<BlockQ8_0*>(dst), n); return;
    case DType::kQ4_0: QuantizeRowQ4_0(src, static_cast<BlockQ4_0*>(dst), n); return;
    case DType::kQ4_K: QuantizeRowQ4_K(src, static_cast<BlockQ4_K*>(dst), n); return;
    case DType::kQ6_K: QuantizeRowQ6_K(src, static_cast<BlockQ6_K*>(dst), n); return;
    default: QB_CHECK(false, "cannot quantize to {}", Name(type));
  }
}

}  // namespace qb
