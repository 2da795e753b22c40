// Row-interleaved weight layouts that the CPU kernels prefer (see BlockQ4_0x8), made from the
// file's layout at load time (lossless), and row access that works on either layout.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"
#include "util/thread_pool.h"

namespace qb {

// The interleaved type for `t`, if there is one (Q4_0 -> Q4_0x8, Q8_0 -> Q8_0x8, Q4_K -> Q4_Kx8,
// ...; the definition lists them all), else t.
DType InterleavedType(DType t);
// Whether `t` (a matrix) can be interleaved: it has such a type and whole groups of rows.
bool CanInterleave(const Tensor& t);
// A new tensor in the interleaved layout (same shape, same values); groups of rows are repacked
// in parallel on `pool` when there is one.
Tensor Interleave(const Tensor& t, ThreadPool* pool = nullptr);
// Row r of a weight matrix in any layout, as f32.
void DequantizeMatrixRow(const void* data, DType type, int64_t cols, int64_t r, float* out);

}  // namespace qb
