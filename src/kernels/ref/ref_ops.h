// Scalar reference implementations of every op (plain loops, f64 accumulation). They define
// what the ops compute; fast kernels are tested against them.
#pragma once

#include <cstdint>

#include "tensor/dtype.h"

namespace qb::kernels::ref {

void Linear(const float* x, int64_t n, int64_t in, const void* w, DType w_type, int64_t out,
            const float* bias, float* y);
void RmsNorm(const float* x, int64_t n, int64_t d, const float* weight, float eps, float* y);
void Rope(float* x, int64_t n, int64_t heads, int64_t head_dim, const int32_t* positions,
          const float* inv_freq, float attention_scale);
void SiluMul(const float* gate, const float* up, int64_t count, float* out);
// Token t attends to the keys rows[row_start[t] .. row_start[t] + positions[t]] of k and v
// (kv_type): key row r of kv head h is the head_dim values from element r * kv_stride + h *
// head_offset on. With a q8_0 cache each query head is first rounded by RoundRowQ8_0.
void Attention(const float* q, int64_t n, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, const void* k,
               const void* v, DType kv_type, const int32_t* rows, const int64_t* row_start, const int32_t* positions,
               int64_t kv_stride, int64_t head_offset, float scale, float* out);
void Embedding(const int32_t* ids, int64_t n, const void* table, DType table_type, int64_t d,
               float* out);
void Add(float* acc, const float* x, int64_t count);
// y[j] += sum_k low[k] * bt[k * stride + j] for j < width (a LoRA update's second half, one
// row or a span of it).
void AddLowRankRow(float* y, const float* low, const float* bt, int64_t r, int64_t width, int64_t stride);

}  // namespace qb::kernels::ref
