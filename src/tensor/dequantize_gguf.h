// Dequantization of the GGUF block types that qwenbox reads but never writes (Q4_1, Q5_0, Q5_1,
// IQ4_NL, Q2_K, Q3_K, Q5_K; layouts in quant_blocks.h). Used by DequantizeRow.
#pragma once

#include <cstdint>

#include "tensor/dtype.h"

namespace qb {

// Writes nb blocks of `type` as f32; false if `type` is not one of the types above.
bool DequantizeGgufBlocks(DType type, const void* src, float* dst, int64_t nb);

// The 16 six-bit sub-block scales of a Q3_K block (each stored as value + 32), unpacked.
void UnpackQ3KScales(const uint8_t* packed, int8_t* scales);

}  // namespace qb
