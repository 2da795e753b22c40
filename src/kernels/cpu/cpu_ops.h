// The CPU implementations of the ops (threaded, ISA-dispatched). ops.cc routes here for every
// ExecContext except Isa::kReference. Arguments are raw, already checked by ops.cc.
#pragma once

#include <cstdint>
#include <functional>

#include "kernels/exec_context.h"
#include "tensor/dtype.h"

namespace qb::kernels::cpu {

void Linear(const ExecContext& ctx, const float* x, int64_t n, int64_t in, const void* w, DType w_type,
            int64_t out, const float* bias, float* y);
// Token t's keys: rows[row_start[t] .. row_start[t] + positions[t]], key row r of kv head h
// being the head_dim values from element r * kv_stride + h * head_offset on; consecutive tokens
// with the same row_start and consecutive positions are one sequence's run (ops.cc builds them so).
void Attention(const ExecContext& ctx, const float* q, int64_t n, int64_t n_heads, int64_t n_kv_heads,
               int64_t head_dim, const void* k, const void* v, DType kv_type, const int32_t* rows,
               const int64_t* row_start, const int32_t* positions, int64_t kv_stride, int64_t head_offset,
               float scale, float* out);
void RmsNorm(const ExecContext& ctx, const float* x, int64_t n, int64_t d, const float* weight, float eps, float* y);
// x += delta, then y = rmsnorm(x), row by row in one pass over the threads (the arithmetic of
// an add followed by RmsNorm).
void AddRmsNorm(const ExecContext& ctx, float* x, const float* delta, int64_t n, int64_t d, const float* weight,
                float eps, float* y);
// Rotates n tokens' `heads` heads of x and, when x2 is not null, `heads2` heads of x2 (queries and
// keys: one sine and cosine computation for both).
void Rope(const ExecContext& ctx, float* x, int64_t heads, float* x2, int64_t heads2, int64_t n, int64_t head_dim,
          const int32_t* positions, const float* inv_freq, float attention_scale);
// The output of a joined [q; k; v] projection, n rows of (heads + 2 kv_heads) heads: q gets each
// row's rotated q heads; store(t, k, v) receives token t's rotated k heads and its v heads (a
// scratch row and a pointer into qkv) on the thread that made them. The arithmetic of a column
// split followed by Rope of q and k.
void SplitRopeKv(const ExecContext& ctx, const float* qkv, int64_t n, int64_t heads, int64_t kv_heads, int64_t head_dim,
                 const int32_t* positions, const float* inv_freq, float attention_scale, float* q,
                 const std::function<void(int64_t t, const float* k, const float* v)>& store);
void SiluMul(const ExecContext& ctx, const float* gate, const float* up, int64_t count, float* out);
// n floats rounded to f16 (one row of an f16 KV cache; on the calling thread).
void ToF16(const ExecContext& ctx, const float* x, int64_t n, uint16_t* out);
// gate_up: n rows of 2d (gate, then up); out: n rows of d.
void SiluMulJoined(const ExecContext& ctx, const float* gate_up, int64_t n, int64_t d, float* out);

}  // namespace qb::kernels::cpu
