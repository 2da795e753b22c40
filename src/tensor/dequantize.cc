#include "tensor/dequantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

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

// The 6-bit scale and min of sub-block s (0..7) of a Q4_K block. Sub-blocks 0-3 keep their
// values in the low 6 bits of bytes s and s+4; sub-blocks 4-7 split theirs between a nibble of
// byte s+4 and the top two bits of bytes s-4 (scale) and s (min).
void Q4KScaleMin(const uint8_t* scales, int s, uint8_t* sc, uint8_t* m) {
  if (s < 4) {
    *sc = scales[s] & 63;
    *m = scales[s + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((scales[s + 4] & 0x0f) | ((scales[s - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((scales[s + 4] >> 4) | ((scales[s] >> 6) << 4));
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
      uint8_t sc0, m0, sc1, m1;
      Q4KScaleMin(b[i].scales, 2 * g, &sc0, &m0);
      Q4KScaleMin(b[i].scales, 2 * g + 1, &sc1, &m1);
      const float d0 = d * sc0, min0 = dmin * m0, d1 = d * sc1, min1 = dmin * m1;
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

}  // namespace qb
