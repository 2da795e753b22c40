// The second half of a LoRA update (model/lora_apply.h): y += low · bt for one row, where low
// holds the row's r values of A x and bt is s B^T [r, out].
#pragma once

#include <cstdint>

namespace qb::kernels::cpu {

// y[j] += sum_k low[k] * bt[k * stride + j] for j < width.
void AddLowRankRowAvx2(float* y, const float* low, const float* bt, int64_t r, int64_t width, int64_t stride);

}  // namespace qb::kernels::cpu
