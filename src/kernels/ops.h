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

// The CPU's paged KV pool, one tensor [num_blocks * block_size, kv_dim] (IsKvDType) per layer
// for K and one for V: block b holds its block_size slots head by head, so the head_dim values
// of kv head h at pool slot s (slot s % block_size of block s / block_size) start at element
// KvHeadElement(s, h, ...) (RowBytes of that many elements in). One head's keys of a block are
// thus one contiguous run (2 KiB for 16 slots of 64 f16 values), which decode attention reads
// at about twice the rate of the same bytes spread over slot rows of all heads (the memory
// system streams a run but not every other pair of lines; docs/KERNELS.md). The CUDA pool keeps
// slot rows (cuda_api.h); KvPoolFromSlotRows converts one to the other.
inline int64_t KvHeadElement(int64_t slot, int64_t h, int64_t head_dim, int64_t n_kv_heads, int64_t block_size) {
  return ((slot / block_size) * n_kv_heads + h) * block_size * head_dim + slot % block_size * head_dim;
}

// Writes token t's row of src [n, kv_dim] (f32, head after head) into pool slot slots[t] of
// `cache` (the layout above), split across ctx's threads.
void ScatterKv(const ExecContext& ctx, const Tensor& src, std::span<const int32_t> slots, Tensor& cache,
               int64_t head_dim, int64_t block_size);
// The pool above holding the values of `slot_rows` (row s = slot s, all heads; same type and
// shape), byte for byte.
Tensor KvPoolFromSlotRows(const Tensor& slot_rows, int64_t head_dim, int64_t block_size);

// A joined [q; k; v] projection's output qkv [n, q_dim + 2 kv_dim] in one pass: q [n, q_dim] =
// its q columns rotated (RoPE at positions), and token t's rotated k and its v written to pool
// slot slots[t] of k_cache and v_cache (the pool layout above, blocks of block_size). The
// values of SplitColumns, Rope of q and k, and two ScatterKv.
void SplitRopeScatter(const ExecContext& ctx, const Tensor& qkv, int64_t head_dim, int64_t block_size,
                      std::span<const int32_t> positions, const RopeTable& rope, std::span<const int32_t> slots,
                      Tensor& q, Tensor& k_cache, Tensor& v_cache);

// Causal grouped-query attention over a paged KV cache. q: [n, n_heads * head_dim] f32;
// k, v: pools of n_kv_heads heads in blocks of block_size (the layout above; IsKvDType, q8_0
// needs head_dim % 32 == 0), where key j of token t's sequence is pool slot
// tables[t][j / block_size] * block_size + j % block_size. Query t sees keys 0..positions[t];
// query head h uses kv head h / (n_heads / n_kv_heads); scores are scaled by `scale`.
// (A contiguous cache is one block of block_size = rows with table {0}.)
void Attention(const ExecContext& ctx, const Tensor& q, const Tensor& k, const Tensor& v, int64_t head_dim,
               int64_t block_size, std::span<const int32_t> positions,
               std::span<const std::span<const int32_t>> tables, float scale, Tensor& out);

// out[t] = table[ids[t]] as f32. ids must be < table rows (checked by the caller).
void Embedding(std::span<const int32_t> ids, const Tensor& table, Tensor& out);

// acc += x, elementwise (with ctx: split across its threads).
// A LoRA update's second half: y[rows[i], offset + j] += sum_k low[i, k] * bt[k, j], for each
// of low's m rows. low f32 [m, r], bt f32 [r, out], y f32 [.., >= offset + out].
void AddLowRank(const ExecContext& ctx, const Tensor& low, const Tensor& bt, std::span<const int32_t> rows, Tensor& y,
                int64_t offset);

void AddInPlace(Tensor& acc, const Tensor& x);
void AddInPlace(const ExecContext& ctx, Tensor& acc, const Tensor& x);

// The types a KV cache may be stored in: f32, f16, bf16, and q8_0 (blocks of 32 with a scale;
// half of f16's bytes; attention dequantizes it exactly).
bool IsKvDType(DType t);
// An error unless `t` can hold the KV cache of heads of `head_dim` values (q8_0: multiples of 32).
Status CheckKvDType(DType t, int64_t head_dim);

// Writes rows of src [n, d] (f32) into dst [T, d] (IsKvDType) at rows[t] (with ctx: split
// across its threads): a pool of slot rows, as the CUDA backend keeps (the CPU's: ScatterKv).
void ScatterRows(const Tensor& src, std::span<const int32_t> rows, Tensor& dst);
void ScatterRows(const ExecContext& ctx, const Tensor& src, std::span<const int32_t> rows, Tensor& dst);

}  // namespace qb::kernels
