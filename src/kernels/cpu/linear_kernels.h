// Per-ISA micro-kernels of Linear: the dot products of one weight row with up to kMaxTokens
// activation rows. Quantized weights meet activations quantized to 8 bits in blocks of 32
// (ActBlock); float weights meet float activations.
#pragma once

#include <cstdint>

#include "tensor/dtype.h"

namespace qb::kernels::cpu {

inline constexpr int kMaxTokens = 4;  // activation rows per micro-kernel call
inline constexpr int kFloatRows = 3;  // weight rows per float micro-kernel call (3 x 4 accumulators)

// 32 activations as int8 with one scale: x[i] ~= d * q[i]. ds16[h] = d * (sum of q[16h..16h+15]),
// the block's sums for the zero points and mins of Q4_K / Q6_K; qsum = sum of all 32 q, for
// zero points applied in integers (Q4_0x8). neg8_qsum = -8 qsum and neg128_qsum = -128 qsum are
// the integer corrections of Q4_0's offset of 8 and of Q8_0 weights taken as unsigned (w + 128),
// stored so that the AVX-512 kernels start their sums from one broadcast load.
// 64 bytes and 64-byte aligned, so that loading q never splits a cache line.
struct alignas(64) ActBlock {
  int8_t q[32];
  float d;
  float ds16[2];
  int32_t qsum;
  int32_t neg8_qsum;
  int32_t neg128_qsum;
};
static_assert(sizeof(ActBlock) == 64);

// 256 activations as int8 with one scale, for the K-quants (whose 6-bit sub-block scales are
// applied in integers, so one float multiply per 256 values): x[i] ~= d * q[i];
// bsums[j] = sum of q[16j..16j+15]; bsums32[j] = sum of q[32j..32j+31].
struct alignas(64) ActBlockK {
  int8_t q[256];
  float d;
  int16_t bsums[16];
  int16_t bsums32[8];
};

// row: one weight row; acts[t]: ActBlocks (or floats) of token t; nt <= kMaxTokens;
// n: elements in the row. Writes out[t] for t < nt.
using QuantDot = void (*)(const void* row, const ActBlock* const* acts, int nt, int64_t n, float* out);
using QuantDotK = void (*)(const void* row, const ActBlockK* const* acts, int nt, int64_t n, float* out);
// Float weights: nr <= kFloatRows consecutive rows, `stride` bytes apart, against nt tokens;
// writes out[t * kFloatRows + r] (each weight vector loaded once for all the tokens).
using FloatDot = void (*)(const void* rows, int64_t stride, int nr, const float* const* xs, int nt, int64_t n,
                          float* out);

// BF16 weights (rows as FloatDot) against activations already rounded to bf16; n a multiple of 32.
using Bf16Dot = void (*)(const void* rows, int64_t stride, int nr, const uint16_t* const* xs, int nt, int64_t n,
                         float* out);

// For 8-row interleaved weights: `group` is one group of 8 rows; writes out[t * 8 + r].
using QuantDot8 = void (*)(const void* group, const ActBlock* const* acts, int nt, int64_t n, float* out);
// Four 8-row groups (32 rows), each `group_bytes` after the one before; writes
// out[t * out_stride + r]. Block b of the call also prefetches (into L2) the cache lines of
// [prefetch + b * prefetch_step, prefetch + (b + 1) * prefetch_step), step a multiple of 64
// (0: none): the caller's next tile of weights, fetched a little at a time while this one is
// computed.
using QuantDot32 = void (*)(const void* groups, int64_t group_bytes, const ActBlock* const* acts, int nt, int64_t n,
                            float* out, int64_t out_stride, const uint8_t* prefetch, int64_t prefetch_step);
// Likewise for the 8-row interleaved K-quants, against 256-value activation blocks.
using QuantDotK8 = void (*)(const void* group, const ActBlockK* const* acts, int nt, int64_t n, float* out);

struct CpuKernels {
  void (*quantize)(const float* x, int64_t n, ActBlock* out);     // n a multiple of 32
  void (*quantize_k)(const float* x, int64_t n, ActBlockK* out);  // n a multiple of 256
  QuantDot q8_0, q4_0, q4z;
  QuantDotK q4_k, q6_k;
  QuantDot8 q4_0x8, q8_0x8;
  FloatDot f32, f16, bf16;
  // Vector helpers for attention: sum a[i] * b[i]; y[i] += alpha * x[i].
  float (*dot)(const float* a, const float* b, int64_t n);
  void (*axpy)(float alpha, const float* x, float* y, int64_t n);
  // out[i] = silu(gate[i]) * up[i]
  void (*silu_mul)(const float* gate, const float* up, int64_t n, float* out);
  // x[i] = exp(x[i] - max(x)); returns the sum of the new values.
  float (*exp_shifted)(float* x, int64_t n);
  // n_q query heads (q[h * head_dim ...], the heads of one GQA group) over the same n_keys
  // keys/values: key j is row rows[j] of k/v (rows of `stride` elements of kv_type: f32, f16,
  // bf16, or q8_0 with stride and offset multiples of 32), from element `offset` on. softmax(q_h.k * scale) . v into out[h * head_dim ...];
  // `scores` is scratch of n_q * n_keys floats.
  void (*attend)(const float* q, int64_t n_q, const void* k, const void* v, DType kv_type, const int32_t* rows,
                 int64_t n_keys, int64_t stride, int64_t offset, int64_t head_dim, float scale, float* scores,
                 float* out);
  // The GGUF types qwenbox reads but never writes (linear_kernels_gguf_*.cc).
  QuantDot q4_1 = nullptr, q5_0 = nullptr, q5_1 = nullptr, iq4_nl = nullptr;
  QuantDotK q2_k = nullptr, q3_k = nullptr, q5_k = nullptr;
  QuantDot8 q5_0x8 = nullptr, q5_1x8 = nullptr, iq4_nlx8 = nullptr;
  // The 8-row interleaved K-quants (linear_kernels_kx8_*.cc).
  QuantDotK8 q2_kx8 = nullptr, q3_kx8 = nullptr, q4_kx8 = nullptr, q5_kx8 = nullptr, q6_kx8 = nullptr;
  // Four 8-row groups a call, where that pays (AVX-512: 16 rows a vector, each activation
  // broadcast feeding two vectors).
  QuantDot32 q4_0x32 = nullptr, q8_0x32 = nullptr;
  // A run of m consecutive query tokens of one sequence and the n_q query heads of one GQA
  // group: token i's queries at q + i * q_stride (heads head_dim apart), its keys the first
  // n_keys0 + i of `rows`, its output at out + i * out_stride. head_dim a multiple of 64 (<= 256),
  // m * n_q <= attend_run_max_rows; scratch: m * n_q * head_dim floats. With a q8_0 cache the
  // queries come rounded by RoundRowQ8_0 (tensor/dequantize.h; cpu::Attention does it), and the
  // AVX-512 kernel scores them in integers. A token's result is the same bits whatever the run
  // it is part of. Null where the table has none (scalar: `attend` runs token by token).
  void (*attend_run)(const float* q, int64_t q_stride, int64_t m, int64_t n_q, const void* k, const void* v,
                     DType kv_type, const int32_t* rows, int64_t n_keys0, int64_t stride, int64_t offset,
                     int64_t head_dim, float scale, float* scratch, float* out, int64_t out_stride) = nullptr;
  int64_t attend_run_max_rows = 0;
  // Rounds n floats to f16 (nearest even; every non-NaN value as util/half.h's F32ToF16): the
  // f16 KV cache's writes.
  void (*to_f16)(const float* x, int64_t n, uint16_t* out) = nullptr;
  // BF16 weights on bf16 activations (AVX512_BF16): to_bf16 rounds n (a multiple of 16) floats.
  void (*to_bf16)(const float* x, int64_t n, uint16_t* out) = nullptr;
  Bf16Dot bf16_bf16 = nullptr;
};

// Every f16 bit pattern as f32 (65,536 floats), for the SIMD kernels' scale loads: one load
// instead of an insert and a convert. Built at start-up in portable code (not in a file compiled
// for AVX2: its initializer would run before any CPU check).
extern const float* const kF16ToF32Table;

// Fill in the kernels of the GGUF types qwenbox reads but never writes.
void AddGgufScalarKernels(CpuKernels& k);
void AddGgufAvx2Kernels(CpuKernels& k);  // only call when the CPU has AVX2, FMA and F16C
// Fill in the kernels of the 8-row interleaved K-quant layouts.
void AddKQuantX8ScalarKernels(CpuKernels& k);
void AddKQuantX8Avx2Kernels(CpuKernels& k);  // only call when the CPU has AVX2, FMA and F16C

const CpuKernels& ScalarCpuKernels();
const CpuKernels& Avx2CpuKernels();  // only call when the CPU has AVX2, FMA and F16C
void AddAvx2AttentionKernels(CpuKernels& k);  // attention_avx2.cc, likewise
// The AVX2 table with the 8-row interleaved kernels on vpdpbusd; only call when the CPU also has
// AVX-512 F, BW, VL and VNNI. `wide`: with the 512-bit kernels (32 rows a call); else 256-bit only.
const CpuKernels& Avx512VnniCpuKernels(bool wide);
// The 512-bit float-weight kernels (F16, BF16) and attention, for the 512-bit table above
// (linear_kernels_avx512_float.cc); only call when the CPU has AVX-512 F/BW/VL.
void AddAvx512FloatKernels(CpuKernels& k);
void AddAvx512AttentionKernels(CpuKernels& k);  // attention_avx512.cc, likewise
// That table plus the bf16 dot products; only call when the CPU also has AVX512_BF16.
const CpuKernels& Avx512Bf16CpuKernels(bool wide);
void AddAvx512Bf16Kernels(CpuKernels& k);  // linear_kernels_avx512bf16.cc

}  // namespace qb::kernels::cpu
