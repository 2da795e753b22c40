// Dequantization of the GGUF block types that qwenbox reads but never writes (Q4_1, Q5_0, Q5_1,
// IQ4_NL, Q2_K, Q3_K, Q5_K; layouts in quant_blocks.h), used by DequantizeRow, and the K-quants'
// packed sub-block scales, read the same way by the dequantizers and the portable kernels.
#pragma once

#include <cstdint>

#include "tensor/dtype.h"

namespace qb {

// Writes nb blocks of `type` as f32; false if `type` is not one of the types above.
bool DequantizeGgufBlocks(DType type, const void* src, float* dst, int64_t nb);

// The 6-bit scale and min of sub-block s (0..7) of a Q4_K / Q5_K block: sub-blocks 0-3 keep
// theirs in the low 6 bits of bytes s and s + 4; sub-blocks 4-7 split theirs between a nibble of
// byte s + 4 and the top two bits of bytes s - 4 (scale) and s (min).
void KQuantScaleMin(const uint8_t* scales, int s, int* sc, int* m);

// The 16 six-bit sub-block scales of a Q3_K block (each stored as value + 32), unpacked.
void UnpackQ3KScales(const uint8_t* packed, int8_t* scales);

}  // namespace qb
