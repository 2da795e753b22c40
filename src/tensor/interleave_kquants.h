// The K-quants' 8-row interleaved layouts (Q2_Kx8 ... Q6_Kx8, quant_blocks.h): internal to
// src/tensor, used through interleave.h.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace qb {

// Q2_K, Q3_K, Q4_K, Q5_K or Q6_K (a matrix of whole groups of 8 rows) in its x8 layout.
Tensor InterleaveKQuant(const Tensor& t);
// Row r of a matrix in one of those layouts, as f32 (with the float operations of the file
// type's own dequantization); false if `type` is not one of them.
bool DequantizeKQuantX8Row(const void* data, DType type, int64_t cols, int64_t r, float* out);

}  // namespace qb
