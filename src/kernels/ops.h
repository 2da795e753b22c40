// The op API the model calls. Ops know nothing about models. Each op checks its operands'
// shapes and devices (a mismatch is a bug: QB_CHECK), then dispatches to the implementation for
// the device the tensors live on and the context's ISA: the scalar reference (kernels/ref) for
// Isa::kReference, the threaded SIMD kernels (kernels/cpu) otherwise; CUDA will slot in beside
// them.
//
// Activations are f32, row-major [tokens, features]. Weights may be any DType.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/exec_context.h"
#include "tensor/tensor.h"
#include "util/status.h"

namespace qb::kernels {

// Rotary embedding parameters: angle(pos, i) = pos * inv_freq[i] for i < head_dim / 2, and
// cos/sin multiplied by attention_scale (1 except for YaRN).
struct RopeTable {
  std::vector<float> inv_freq;
  float attention_scale = 1.0f;
};

// y[n, out] = x[n, in] · w[out, in]^T + bias[out] (bias f32 [out], optional). With `perm`
// (i32 [in], GPTQ act-order), w's columns are in permuted order: column p multiplies
// x[:, perm[p]].
void Linear(const ExecContext& ctx, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y,
            const Tensor* perm = nullptr);

// y = x / sqrt(mean(x^2) + eps) * weight, per row; weight f32 [d]. y may alias x.
void RmsNorm(const ExecContext& ctx, const Tensor& x, const Tensor& weight, float eps, Tensor& y);
// The residual add before a norm in one pass: x += delta, then y = rmsnorm(x) (the values of
// AddInPlace followed by RmsNorm; y must not alias x or delta).
void AddRmsNorm(const ExecContext& ctx, Tensor& x, const Tensor& delta, const Tensor& weight, float eps, Tensor& y);

// NEOX-style ("rotate half") rotary embedding, in place. x: [n, heads * head_dim]; token t is at
// positions[t]. Pairs are (i, i + head_dim / 2).
void Rope(const ExecContext& ctx, Tensor& x, int64_t head_dim, std::span<const int32_t> positions, const RopeTable& rope);
// Both at once, at the same positions (a forward pass's queries and keys).
void Rope(const ExecContext& ctx, Tensor& q, Tensor& k, int64_t head_dim, std::span<const int32_t> positions,
          const RopeTable& rope);

// out = silu(gate) * up, elementwise. out may alias gate.
void SiluMul(const ExecContext& ctx, const Tensor& gate, const Tensor& up, Tensor& out);
// The same on a joined projection: out [n, d] = silu(gate_up[:, :d]) * gate_up[:, d:], gate_up
// [n, 2d] (the output of [gate; up]). Bit-identical to SiluMul on the two halves.
void SiluMulJoined(const ExecContext& ctx, const Tensor& gate_up, Tensor& out);
// Copies the columns of x [n, sum of widths] into parts[i] [n, width_i], left to right (the
// output of a joined [q; k; v] projection into q, k and v).
void SplitColumns(const ExecContext& ctx, const Tensor& x, std::span<Tensor* const> parts);

// A joined [q; k; v] projection's output qkv [n, q_dim + 2 kv_dim] in one pass: q [n, q_dim] =
// its q columns rotated (RoPE at positions), and token t's rotated k and its v written to row
// slots[t] of k_cache and v_cache ([T, kv_dim], IsKvDType). The values of SplitColumns, Rope of
// q and k, and two ScatterRows.
void SplitRopeScatter(const ExecContext& ctx, const Tensor& qkv, int64_t head_dim, std::span<const int32_t> positions,
                      const RopeTable& rope, std::span<const int32_t> slots, Tensor& q, Tensor& k_cache,
                      Tensor& v_cache);

// Causal grouped-query attention over a paged KV cache. q: [n, n_heads * head_dim] f32;
// k, v: [rows, n_kv_heads * head_dim] (IsKvDType; q8_0 needs head_dim % 32 == 0), where key j of token t's sequence is
// row tables[t][j / block_size] * block_size + j % block_size. Query t sees keys 0..positions[t];
// query head h uses kv head h / (n_heads / n_kv_heads); scores are scaled by `scale`.
// (A contiguous cache is one block of block_size = rows with table {0}.)
void Attention(const ExecContext& ctx, const Tensor& q, const Tensor& k, const Tensor& v, int64_t head_dim,
               int64_t block_size, std::span<const int32_t> positions,
               std::span<const std::span<const int32_t>> tables, float scale, Tensor& out);

// out[t] = table[ids[t]] as f32. ids must be < table rows (checked by the caller).
void Embedding(std::span<const int32_t> ids, const Tensor& table, Tensor& out);

// acc += x, elementwise (with ctx: split across its threads).
void AddInPlace(Tensor& acc, const Tensor& x);
void AddInPlace(const ExecContext& ctx, Tensor& acc, const Tensor& x);

// The types a KV cache may be stored in: f32, f16, bf16, and q8_0 (blocks of 32 with a scale;
// half of f16's bytes; attention dequantizes it exactly).
bool IsKvDType(DType t);
// An error unless `t` can hold the KV cache of heads of `head_dim` values (q8_0: multiples of 32).
Status CheckKvDType(DType t, int64_t head_dim);

// Writes rows of src [n, d] (f32) into dst [T, d] (IsKvDType) at rows[t] (with ctx: split
// across its threads).
void ScatterRows(const Tensor& src, std::span<const int32_t> rows, Tensor& dst);
void ScatterRows(const ExecContext& ctx, const Tensor& src, std::span<const int32_t> rows, Tensor& dst);

}  // namespace qb::kernels
