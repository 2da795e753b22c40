// Reference conversion of a row of any DType to f32. Slow and simple: the truth that fast
// kernels are tested against.
#pragma once

#include <cstdint>

#include "tensor/dtype.h"
#include "tensor/quant_blocks.h"

namespace qb {

// Converts `n` elements starting at `src` (n a multiple of the type's block size) to f32.
void DequantizeRow(DType type, const void* src, float* dst, int64_t n);

// Reference quantization of f32 values into block types (round to nearest), used by
// make-model and on-load quantization. `n` must be a multiple of the block size.
void QuantizeRowQ8_0(const float* src, BlockQ8_0* dst, int64_t n);
void QuantizeRowQ4_0(const float* src, BlockQ4_0* dst, int64_t n);
void QuantizeRowQ4_K(const float* src, BlockQ4_K* dst, int64_t n);
void QuantizeRowQ6_K(const float* src, BlockQ6_K* dst, int64_t n);
// What a query becomes before it meets a q8_0 KV cache (as in llama.cpp, which converts the
// query to the key cache's dot-product type): per block of 32, scale d = f16(amax / 127) and
// codes round-half-to-even(x * 127 / amax) in [-127, 127]; dst = d * code (exact in f32). The
// integer attention kernels recover the codes exactly from dst; every attention path (reference,
// scalar, AVX2, AVX-512) calls this one function, so they all score the same query.
void RoundRowQ8_0(const float* src, float* dst, int64_t n);
// Any type from f32: copies/rounds for F32/F16/BF16, quantizes the block types. `dst` holds
// RowBytes(type, n) bytes.
void QuantizeRow(DType type, const float* src, void* dst, int64_t n);

}  // namespace qb
