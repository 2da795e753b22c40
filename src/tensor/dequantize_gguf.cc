#include "tensor/dequantize_gguf.h"

#include <cstring>

#include "tensor/quant_blocks.h"
#include "util/half.h"

namespace qb {

namespace {

constexpr int kHalf = kQK4_0 / 2;

uint32_t HighBits(const uint8_t* qh) {
  uint32_t h;
  std::memcpy(&h, qh, sizeof(h));
  return h;
}

// Q4_1 / Q5_1 / Q5_0 / IQ4_NL share the nibble layout: byte j holds elements j and j + 16.
template <typename Block, typename Value>
void DequantNibbleBlocks(const Block* b, float* y, int64_t nb, Value value) {
  for (int64_t i = 0; i < nb; ++i) {
    float* out = y + i * kQK4_0;
    for (int j = 0; j < kHalf; ++j) {
      out[j] = value(b[i], j, b[i].qs[j] & 0x0f);
      out[j + kHalf] = value(b[i], j + kHalf, b[i].qs[j] >> 4);
    }
  }
}

// Bit 4 of element j of a Q5_0 / Q5_1 block.
template <typename Block>
int High(const Block& b, int j) {
  return static_cast<int>((HighBits(b.qh) >> j) & 1u) << 4;
}


void DequantQ2_K(const BlockQ2_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = F16ToF32(b[i].d), dmin = F16ToF32(b[i].dmin);
    float* out = y + i * kQK_K;
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, j = e % 128 / 32, l = e % 32;  // half, 2-bit plane, byte
      const uint8_t sc = b[i].scales[e / 16];
      const int q = (b[i].qs[32 * h + l] >> (2 * j)) & 3;
      out[e] = d * static_cast<float>(sc & 0x0f) * static_cast<float>(q) - dmin * static_cast<float>(sc >> 4);
    }
  }
}

void DequantQ3_K(const BlockQ3_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = F16ToF32(b[i].d);
    int8_t sc[16];
    UnpackQ3KScales(b[i].scales, sc);
    float* out = y + i * kQK_K;
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, j = e % 128 / 32, l = e % 32;
      const int lo = (b[i].qs[32 * h + l] >> (2 * j)) & 3;
      const int hi = (b[i].hmask[l] >> (4 * h + j)) & 1;
      out[e] = d * static_cast<float>(sc[e / 16]) * static_cast<float>(lo + 4 * hi - 4);
    }
  }
}

void DequantQ5_K(const BlockQ5_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = F16ToF32(b[i].d), dmin = F16ToF32(b[i].dmin);
    float* out = y + i * kQK_K;
    for (int e = 0; e < kQK_K; ++e) {
      const int s = e / 32, g = e / 64, l = e % 32;  // sub-block, 32-byte group of qs, byte
      int sc, m;
      KQuantScaleMin(b[i].scales, s, &sc, &m);
      const uint8_t byte = b[i].qs[32 * g + l];
      const int q = ((s & 1) ? byte >> 4 : byte & 0x0f) | (((b[i].qh[l] >> s) & 1) << 4);
      out[e] = d * static_cast<float>(sc) * static_cast<float>(q) - dmin * static_cast<float>(m);
    }
  }
}

}  // namespace

void KQuantScaleMin(const uint8_t* scales, int s, int* sc, int* m) {
  if (s < 4) {
    *sc = scales[s] & 63;
    *m = scales[s + 4] & 63;
  } else {
    *sc = (scales[s + 4] & 0x0f) | ((scales[s - 4] >> 6) << 4);
    *m = (scales[s + 4] >> 4) | ((scales[s] >> 6) << 4);
  }
}

void UnpackQ3KScales(const uint8_t* packed, int8_t* scales) {
  // Scale s: low nibble from byte s % 8 (low nibble for s < 8, high above), high two bits from
  // byte 8 + s % 4, bits 2 * (s / 4)..+1.
  for (int s = 0; s < 16; ++s) {
    const int lo = (s < 8 ? packed[s] : packed[s - 8] >> 4) & 0x0f;
    const int hi = (packed[8 + s % 4] >> (2 * (s / 4))) & 3;
    scales[s] = static_cast<int8_t>((lo | (hi << 4)) - 32);
  }
}

bool DequantizeGgufBlocks(DType type, const void* src, float* dst, int64_t nb) {
  switch (type) {
    case DType::kQ4_1:
      DequantNibbleBlocks(static_cast<const BlockQ4_1*>(src), dst, nb, [](const BlockQ4_1& b, int, int q) {
        return F16ToF32(b.d) * static_cast<float>(q) + F16ToF32(b.m);
      });
      return true;
    case DType::kQ5_0:
      DequantNibbleBlocks(static_cast<const BlockQ5_0*>(src), dst, nb, [](const BlockQ5_0& b, int j, int q) {
        return F16ToF32(b.d) * static_cast<float>((q | High(b, j)) - 16);
      });
      return true;
    case DType::kQ5_1:
      DequantNibbleBlocks(static_cast<const BlockQ5_1*>(src), dst, nb, [](const BlockQ5_1& b, int j, int q) {
        return F16ToF32(b.d) * static_cast<float>(q | High(b, j)) + F16ToF32(b.m);
      });
      return true;
    case DType::kIq4Nl:
      DequantNibbleBlocks(static_cast<const BlockIq4Nl*>(src), dst, nb, [](const BlockIq4Nl& b, int, int q) {
        return F16ToF32(b.d) * static_cast<float>(kIq4NlValues[q]);
      });
      return true;
    case DType::kQ2_K: DequantQ2_K(static_cast<const BlockQ2_K*>(src), dst, nb); return true;
    case DType::kQ3_K: DequantQ3_K(static_cast<const BlockQ3_K*>(src), dst, nb); return true;
    case DType::kQ5_K: DequantQ5_K(static_cast<const BlockQ5_K*>(src), dst, nb); return true;
    default: return false;
  }
}

}  // namespace qb
