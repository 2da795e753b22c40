// The K-quants' 8-row interleaved layouts (Q2_Kx8 ... Q6_Kx8, quant_blocks.h): the repacking
// (used through interleave.h) and element access for portable code (the scalar kernels).
// Include it from portable files only: an inline function with external linkage compiled into an
// AVX2 file could be the copy the linker keeps for every caller.
#pragma once

#include <cstdint>

#include "tensor/quant_blocks.h"
#include "tensor/tensor.h"
#include "util/thread_pool.h"

namespace qb {

// Index of the scale (and min) of sub-block s of row r in the K-quant x8 layouts: 16 consecutive
// indices hold the 8 rows' scale pairs (sub-blocks 2k, 2k + 1), one row per 4 bytes once widened.
inline int KScaleIndex(int s, int r) { return 16 * (s / 2) + 2 * r + s % 2; }

// The signed scale (-32..31) of sub-block s of row r of a BlockQ3_Kx8.
inline int Q3KScaleX8(const BlockQ3_Kx8& b, int s, int r) {
  const int i = KScaleIndex(s, r);
  return (((b.scales_lo[i % 64] >> (4 * (i / 64))) & 0x0f) | ((b.scales_hi[i % 32] >> (2 * (i / 32))) & 3) << 4) - 32;
}

// The 3-bit code (0..7) of element 4g + k of sub-block s of row r of a BlockQ3_Kx8.
inline int Q3KCodeX8(const BlockQ3_Kx8& b, int s, int r, int g, int k) {
  const uint8_t* q = b.q + 96 * (s / 2);
  return ((q[32 * (s % 2) + 4 * r + k] >> (2 * g)) & 3) | ((q[64 + 4 * r + k] >> (g + 4 * (s % 2))) & 1) << 2;
}

// The six-bit scale and min of sub-block s of row r of a BlockQ4_Kx8 or BlockQ5_Kx8.
template <typename Block>
void KScaleMinX8(const Block& b, int s, int r, int* sc, int* m) {
  const int i = KScaleIndex(s, r), byte = i % 32, half = i / 32;
  *sc = ((b.scales_lo[byte] >> (4 * half)) & 0x0f) | ((b.high[byte] >> (2 * half)) & 3) << 4;
  *m = ((b.mins_lo[byte] >> (4 * half)) & 0x0f) | ((b.high[byte] >> (4 + 2 * half)) & 3) << 4;
}

// Q2_K, Q3_K, Q4_K, Q5_K or Q6_K (a matrix of whole groups of 8 rows) in its x8 layout.
Tensor InterleaveKQuant(const Tensor& t, ThreadPool* pool);
// Row r of a matrix in one of those layouts, as f32 (with the float operations of the file
// type's own dequantization); false if `type` is not one of them.
bool DequantizeKQuantX8Row(const void* data, DType type, int64_t cols, int64_t r, float* out);

}  // namespace qb
