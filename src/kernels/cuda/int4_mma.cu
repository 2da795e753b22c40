// INT4 weight-only products on the tensor cores, for 1 to 32 tokens (decode and small batches),
// in the layout WeightFormat::kInt4Mma.
//
// Why: the CUDA-core GEMVs of int4.cu spend ~4 instructions per weight and token on decoding
// and FMAs, as many as the memory system needs to deliver the weight (run 3 on an H100: the
// int4 GEMVs read 700-1,350 GB/s of ~3,000), and past 4 tokens the model dequantized each
// matrix to bf16 for cuBLAS (3x the bytes). Here a warp decodes 8 weights with 5 logic ops and
// 4 packed f16 ops, and one mma.sync m16n8k16 (f16 inputs, f32 accumulation) multiplies a
// 16 x 16 block of weights with up to 8 tokens' activations: ~1.2 instructions per weight for
// 1-8 tokens, so the weight read is the limit.
//
// Layout (int4_mma_layout.h): rows padded to a multiple of 16 (padding codes 0, never stored);
// per 16-row tile and per 64 inputs, 32 lanes x 16 bytes, lane L's 16 bytes its A fragments of
// the 4 k-steps of 16 inputs, the nibbles placed so that OR-ing a nibble pair into the mantissas
// of f16 1024.0 (0x6400) gives {1024 + q, ..} exactly (bits 4-7 and 12-15: 1024 + 16 q), and
// subtracting 1024 + zero (or multiplying by 1/16 and subtracting 64 + zero) leaves q - zero, a
// small integer, exact in f16. Scales and zeros stay per (row, group) as in kInt4; each group's
// partial products (f32) are scaled once. A lane's activations of a k-step are 4 consecutive
// inputs (one 16-byte load).
//
// Activations are rounded to f16 for the tensor cores (relative error ~5e-4 per product, against
// the CUDA-core GEMV's exact f32; values beyond the f16 range, 65504, would overflow).
#include <atomic>
#include <cstring>

#include "kernels/cuda/cuda_api.h"
#include "kernels/cuda/gemv_common.cuh"
#include "kernels/cuda/int4_mma_layout.h"

namespace qb::cuda {

using namespace detail;

namespace {

constexpr int kMmaWarps = 8;       // warps per block; they split the inputs of the block's rows
constexpr int kChunkInputs = mma_layout::kChunkInputs;  // inputs per 16-byte code load (4 k-steps)
constexpr uint32_t kMagic = 0x64006400u;      // f16 1024.0 in both halves
constexpr uint32_t kSixteenth = 0x2C002C00u;  // f16 1/16 in both halves

__device__ __forceinline__ uint32_t AsU32(__half2 h) {
  uint32_t u;
  memcpy(&u, &h, 4);
  return u;
}
__device__ __forceinline__ __half2 AsHalf2(uint32_t u) {
  __half2 h;
  memcpy(&h, &u, 4);
  return h;
}

// d += A B: A 16x16 (f16, row fragment), B 16x8 (f16, column fragment), d 16x8 f32.
__device__ __forceinline__ void Mma(const uint32_t (&a)[4], uint32_t b0, uint32_t b1, float (&d)[4]) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// (w & mask) | magic in one instruction (nvcc emitted an AND and an OR).
__device__ __forceinline__ uint32_t AndOr(uint32_t w, uint32_t mask, uint32_t magic) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(r) : "r"(w), "r"(mask), "r"(magic));
  return r;
}

// One word of codes -> the A fragment of q - zero (exact f16 integers). zg = 1024 + zero of row
// g, zg8 = -(64 + zero) of row g + 8 (both halves).
__device__ __forceinline__ void DecodeWord(uint32_t w, __half2 zg, __half2 zg8, uint32_t (&a)[4]) {
  const uint32_t hi = w >> 8;
  const __half2 sixteenth = AsHalf2(kSixteenth);
  a[0] = AsU32(__hsub2(AsHalf2(AndOr(w, 0x000F000Fu, kMagic)), zg));
  a[1] = AsU32(__hfma2(AsHalf2(AndOr(w, 0x00F000F0u, kMagic)), sixteenth, zg8));
  a[2] = AsU32(__hsub2(AsHalf2(AndOr(hi, 0x000F000Fu, kMagic)), zg));
  a[3] = AsU32(__hfma2(AsHalf2(AndOr(hi, 0x00F000F0u, kMagic)), sixteenth, zg8));
}

// The per-(row, group) parameters one lane needs: its two rows' scales and decoding constants.
struct RowParams {
  float s_lo, s_hi;
  __half2 z_lo, z_hi;  // 1024 + zero (row g), -(64 + zero) (row g + 8)
};

__device__ __forceinline__ RowParams MakeParams(__half2 lo, __half2 hi) {
  RowParams p;
  p.s_lo = __low2float(lo);
  p.s_hi = __low2float(hi);
  p.z_lo = __half2half2(__hadd(__high2half(lo), __float2half(1024.f)));
  p.z_hi = __half2half2(__hneg(__hadd(__high2half(hi), __float2half(64.f))));
  return p;
}

// The kernels' epilogue: each accumulator slot's partial sums of the block's warps added in
// warp order (fixed: the result does not depend on timing), plus the bias, stored where the
// slot's output exists. where(lane, slot, &row, &token) says which output a slot is.
template <int kOut, typename Where>
__device__ __forceinline__ void StoreWarpSums(const float (&partial)[kMmaWarps][kOut][32], int64_t rows, int64_t n,
                                              const float* __restrict__ bias, float* __restrict__ y, int64_t ldy,
                                              Where where) {
  for (int idx = threadIdx.x; idx < kOut * 32; idx += kMmaWarps * 32) {
    const int l = idx % 32, slot = idx / 32;
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < kMmaWarps; ++w) v += partial[w][slot][l];
    int64_t row = 0, token = 0;
    if (where(l, slot, &row, &token) && row < rows && token < n) y[token * ldy + row] = v + (bias != nullptr ? bias[row] : 0.f);
  }
}

// Tokens n <= 8 NB, rows of TM 16-row tiles per block; the block's kMmaWarps warps split the
// 64-input chunks and sum their partial results through shared memory (a fixed order: the
// result does not depend on timing, nor on the other tokens of the launch).
template <int NB, int TM, int U, int MINB>
__global__ void __launch_bounds__(kMmaWarps * 32, MINB)
    Int4MmaKernel(const uint4* __restrict__ codes, const __half2* __restrict__ scale_zero, int64_t rows, int64_t cols,
                  int64_t group_size, const float* __restrict__ x, int64_t n, const float* __restrict__ bias,
                  float* __restrict__ y, int64_t ldy) {
  constexpr int kOut = TM * NB * 4;  // accumulators per lane
  __shared__ float partial[kMmaWarps][kOut][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int64_t tiles = (rows + 15) / 16, tile0 = static_cast<int64_t>(blockIdx.x) * TM;
  // 32-bit index arithmetic within a row: a 64-bit division is ~100 instructions, as many as a
  // chunk's decoding and products (the first version of this kernel divided per chunk).
  const int chunks = static_cast<int>(cols / kChunkInputs), groups = static_cast<int>(cols / group_size);
  const int pairs_per_group = static_cast<int>(group_size / 32);  // 32-input halves of a chunk
  const int per_warp = (chunks + kMmaWarps - 1) / kMmaWarps;
  const int c_begin = min(chunks, warp * per_warp), c_end = min(chunks, c_begin + per_warp);

  // Each B-fragment row's activations (token 8 b + g, or the last token for lanes past it).
  const float* x_row[NB];
#pragma unroll
  for (int b = 0; b < NB; ++b)
    x_row[b] = x + min(static_cast<int64_t>(8 * b + g), n - 1) * cols + mma_layout::ActivationInput(t);

  const uint4* tile_codes[TM];
  const __half2 *sz_lo[TM], *sz_hi[TM];
#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int64_t tile = min(tile0 + m, tiles - 1);  // a block's last tile may not exist: redo the one before
    tile_codes[m] = codes + tile * chunks * 32 + lane;
    sz_lo[m] = scale_zero + min(tile * 16 + g, rows - 1) * groups;
    sz_hi[m] = scale_zero + min(tile * 16 + g + 8, rows - 1) * groups;
  }
  // The first chunks' codes (constant) are requested before waiting for the activations.
#pragma unroll
  for (int u = 0; u < U; ++u)
#pragma unroll
    for (int m = 0; m < TM; ++m)
      if (c_begin + u < c_end) PrefetchL2(tile_codes[m] + (c_begin + u) * 32);
  WaitForPriorGrids();

  // One chain of partial sums (per tile and token block) in every variant: a token's result
  // must not depend on how many tokens share the launch (two chains for 1-8 tokens, tried on
  // the device, changed the sums' order against 9-32).
  float acc[TM][NB][4], part[TM][NB][4];
#pragma unroll
  for (int m = 0; m < TM; ++m)
#pragma unroll
    for (int b = 0; b < NB; ++b)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[m][b][i] = part[m][b][i] = 0.f;

  RowParams cur[TM];  // the scales and zeros of group cur_group
#pragma unroll
  for (int m = 0; m < TM; ++m) cur[m] = MakeParams(__half2(), __half2());
  int cur_group = -1;
  auto flush = [&]() {
#pragma unroll
    for (int m = 0; m < TM; ++m)
#pragma unroll
      for (int b = 0; b < NB; ++b) {
        acc[m][b][0] = fmaf(cur[m].s_lo, part[m][b][0], acc[m][b][0]);
        acc[m][b][1] = fmaf(cur[m].s_lo, part[m][b][1], acc[m][b][1]);
        acc[m][b][2] = fmaf(cur[m].s_hi, part[m][b][2], acc[m][b][2]);
        acc[m][b][3] = fmaf(cur[m].s_hi, part[m][b][3], acc[m][b][3]);
#pragma unroll
        for (int i = 0; i < 4; ++i) part[m][b][i] = 0.f;
      }
  };

  // Group cursors over 32-input halves (groups are multiples of 32 inputs): one for the loads
  // issued ahead, one for the arithmetic; a single division per warp.
  int load_group = 2 * c_begin / pairs_per_group, load_rem = 2 * c_begin % pairs_per_group;
  int group = load_group, rem = load_rem;

  // U chunks' codes (and their first half's scales and zeros) are loaded before any is used.
  constexpr int kU = U;
  for (int c = c_begin; c < c_end; c += kU) {
    uint4 raw[kU][TM];
    __half2 sz[kU][TM][2];
    int first_group[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const bool in = c + u < c_end;
      first_group[u] = load_group;
#pragma unroll
      for (int m = 0; m < TM; ++m) {
        raw[u][m] = in ? LoadStreaming(tile_codes[m] + (c + u) * 32) : make_uint4(0, 0, 0, 0);
        sz[u][m][0] = sz_lo[m][in ? load_group : 0];
        sz[u][m][1] = sz_hi[m][in ? load_group : 0];
      }
      load_rem += 2;
      while (load_rem >= pairs_per_group) {
        load_rem -= pairs_per_group;
        ++load_group;
      }
    }
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      if (c + u >= c_end) break;
      const int s0 = 4 * (c + u);  // the chunk's first k-step
      // B fragments of the chunk's 4 k-steps: token 8 b + g's 4 activations of each (one
      // 16-byte load), loaded together before any is used (one exposed load latency per chunk,
      // not per k-step), from a valid row for every lane (no branch around the loads).
      uint32_t bf[4][NB][2];
#pragma unroll
      for (int b = 0; b < NB; ++b) {
        const int64_t token = 8 * b + g;
        const float* xr = x_row[b] + s0 * 16;
        float4 v[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) v[j] = *reinterpret_cast<const float4*>(xr + 16 * j);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          bf[j][b][0] = token < n ? AsU32(__floats2half2_rn(v[j].x, v[j].y)) : 0u;
          bf[j][b][1] = token < n ? AsU32(__floats2half2_rn(v[j].z, v[j].w)) : 0u;
        }
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        if (group != cur_group) {
#pragma unroll
          for (int m = 0; m < TM; ++m)
            cur[m] = group == first_group[u] ? MakeParams(sz[u][m][0], sz[u][m][1])
                                             : MakeParams(sz_lo[m][group], sz_hi[m][group]);
          cur_group = group;
        }
#pragma unroll
        for (int j = 2 * h; j < 2 * h + 2; ++j) {
#pragma unroll
          for (int m = 0; m < TM; ++m) {
            const uint32_t word = j == 0 ? raw[u][m].x : j == 1 ? raw[u][m].y : j == 2 ? raw[u][m].z : raw[u][m].w;
            uint32_t a[4];
            DecodeWord(word, cur[m].z_lo, cur[m].z_hi, a);
#pragma unroll
            for (int b = 0; b < NB; ++b) Mma(a, bf[j][b][0], bf[j][b][1], part[m][b]);
          }
        }
        if (++rem == pairs_per_group) {
          flush();
          rem = 0;
          ++group;
        }
      }
    }
  }
  flush();  // a group cut by the end of the warp's range (no-op otherwise: part is 0)

#pragma unroll
  for (int m = 0; m < TM; ++m)
#pragma unroll
    for (int b = 0; b < NB; ++b)
#pragma unroll
      for (int i = 0; i < 4; ++i) partial[warp][(m * NB + b) * 4 + i][lane] = acc[m][b][i];
  __syncthreads();
  StoreWarpSums(partial, rows, n, bias, y, ldy, [&](int l, int slot, int64_t* row, int64_t* token) {
    const int i = slot % 4, b = (slot / 4) % NB, m = slot / (4 * NB);
    *row = (tile0 + m) * 16 + l / 4 + 8 * (i >> 1);
    *token = 8 * b + 2 * (l % 4) + (i & 1);
    return tile0 + m < tiles;
  });
}

// The same products for groups of a multiple of 64 inputs (AWQ and GPTQ files: 128), with less
// bookkeeping per chunk than Int4MmaKernel (which ran ~37 instructions per k-step on an H200 for
// ~15 of decoding and products): a group starts only at a chunk boundary, so one counter per
// chunk replaces the per-half-chunk group checks, and the next group's scales are loaded a group
// ahead; 32-bit offsets; no zeroing of the B fragments of tokens past n (a token's column of the
// product depends only on its own column of B, and columns past n are never stored). One
// 16-row tile per block, tokens n <= 8 NB. Sums in the same order as Int4MmaKernel (chunks and
// k-steps in order, one chain, groups scaled at the same points, warps summed in the same
// order): the same bits. XA: the chunks' activations are loaded with their codes (U chunks
// ahead) rather than at use.
template <int NB, int U, bool XA, int MINB>
__global__ void __launch_bounds__(kMmaWarps * 32, MINB)
    Int4MmaLeanKernel(const uint4* __restrict__ codes, const __half2* __restrict__ scale_zero, int rows, int cols,
                      int group_size, const float* __restrict__ x, int n, const float* __restrict__ bias,
                      float* __restrict__ y, int ldy) {
  constexpr int kOut = NB * 4;  // accumulators per lane
  __shared__ float partial[kMmaWarps][kOut][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int tile = blockIdx.x;
  const int chunks = cols / kChunkInputs, groups = cols / group_size, chunks_per_group = group_size / kChunkInputs;
  const int per_warp = (chunks + kMmaWarps - 1) / kMmaWarps;
  const int c_begin = min(chunks, warp * per_warp), c_end = min(chunks, c_begin + per_warp);

  // Per chunk: 32 uint4 of codes; per token block 16 float4 of activations (4 per k-step, lane
  // t's at + t); token 8 b + g, or the last token for lanes past it.
  const uint4* wp = codes + (tile * chunks + c_begin) * 32 + lane;
  const float4* xp[NB];
#pragma unroll
  for (int b = 0; b < NB; ++b)
    xp[b] = reinterpret_cast<const float4*>(x + min(8 * b + g, n - 1) * cols + mma_layout::ActivationInput(t)) +
            c_begin * (kChunkInputs / 4);
  const __half2* sz_lo = scale_zero + min(tile * 16 + g, rows - 1) * groups;
  const __half2* sz_hi = scale_zero + min(tile * 16 + g + 8, rows - 1) * groups;
  // The first chunks' codes (constant) are requested before waiting for the activations.
#pragma unroll
  for (int u = 0; u < U; ++u)
    if (c_begin + u < c_end) PrefetchL2(wp + u * 32);
  WaitForPriorGrids();

  int group = min(c_begin / chunks_per_group, groups - 1);
  int left = chunks_per_group - c_begin % chunks_per_group;  // chunks of the current group still to come
  RowParams cur = MakeParams(sz_lo[group], sz_hi[group]);
  __half2 next_lo = sz_lo[min(group + 1, groups - 1)], next_hi = sz_hi[min(group + 1, groups - 1)];

  float acc[NB][4], part[NB][4];
#pragma unroll
  for (int b = 0; b < NB; ++b)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[b][i] = part[b][i] = 0.f;
  auto flush = [&]() {
#pragma unroll
    for (int b = 0; b < NB; ++b) {
      acc[b][0] = fmaf(cur.s_lo, part[b][0], acc[b][0]);
      acc[b][1] = fmaf(cur.s_lo, part[b][1], acc[b][1]);
      acc[b][2] = fmaf(cur.s_hi, part[b][2], acc[b][2]);
      acc[b][3] = fmaf(cur.s_hi, part[b][3], acc[b][3]);
#pragma unroll
      for (int i = 0; i < 4; ++i) part[b][i] = 0.f;
    }
  };

  for (int c = c_begin; c < c_end; c += U) {
    uint4 raw[U];
    float4 xv[XA ? U : 1][XA ? NB : 1][4];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (c + u >= c_end) break;  // (the chunks past the range are not used below either)
      raw[u] = LoadStreaming(wp + u * 32);
      if constexpr (XA) {
#pragma unroll
        for (int b = 0; b < NB; ++b)
#pragma unroll
          for (int j = 0; j < 4; ++j) xv[u][b][j] = xp[b][u * 16 + 4 * j];
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (c + u >= c_end) break;
      // B fragments of the chunk's 4 k-steps for each token block.
      uint32_t bf[4][NB][2];
#pragma unroll
      for (int b = 0; b < NB; ++b) {
        float4 v[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) v[j] = XA ? xv[XA ? u : 0][XA ? b : 0][j] : xp[b][u * 16 + 4 * j];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          bf[j][b][0] = AsU32(__floats2half2_rn(v[j].x, v[j].y));
          bf[j][b][1] = AsU32(__floats2half2_rn(v[j].z, v[j].w));
        }
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const uint32_t word = j == 0 ? raw[u].x : j == 1 ? raw[u].y : j == 2 ? raw[u].z : raw[u].w;
        uint32_t a[4];
        DecodeWord(word, cur.z_lo, cur.z_hi, a);
#pragma unroll
        for (int b = 0; b < NB; ++b) Mma(a, bf[j][b][0], bf[j][b][1], part[b]);
      }
      if (--left == 0) {  // the group ends with this chunk: scale its sums, move to the next
        flush();
        cur = MakeParams(next_lo, next_hi);
        group = min(group + 1, groups - 1);
        next_lo = sz_lo[min(group + 1, groups - 1)];
        next_hi = sz_hi[min(group + 1, groups - 1)];
        left = chunks_per_group;
      }
    }
    wp += U * 32;
#pragma unroll
    for (int b = 0; b < NB; ++b) xp[b] += U * (kChunkInputs / 4);
  }
  flush();  // a group cut by the end of the warp's range (no-op otherwise: part is 0)

#pragma unroll
  for (int b = 0; b < NB; ++b)
#pragma unroll
    for (int i = 0; i < 4; ++i) partial[warp][b * 4 + i][lane] = acc[b][i];
  __syncthreads();
  StoreWarpSums(partial, rows, n, bias, y, ldy, [&](int l, int slot, int64_t* row, int64_t* token) {
    const int i = slot % 4, b = slot / 4;
    *row = tile * 16 + l / 4 + 8 * (i >> 1);
    *token = 8 * b + 2 * (l % 4) + (i & 1);
    return true;
  });
}

// dst word (tile, k-step, lane) from the row-major kInt4 codes (zero past the last row).
__global__ void RepackKernel(const uint32_t* __restrict__ src, int64_t rows, int64_t cols, uint32_t* __restrict__ dst,
                             int64_t words) {
  WaitForPriorGrids();
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= words) return;
  const int64_t chunks = cols / kChunkInputs;
  const int j = static_cast<int>(idx % 4), lane = static_cast<int>((idx / 4) % 32);
  const int64_t c = (idx / 128) % chunks, tile = idx / (128 * chunks);
  const int64_t k0 = (4 * c + j) * mma_layout::kKStepInputs;
  uint32_t word = 0;
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    const mma_layout::CodeSlot slot = mma_layout::WordElement(e, lane >> 2, lane & 3);
    const int64_t row = tile * 16 + slot.row, col = k0 + slot.input;
    if (row < rows) word |= ((src[row * (cols / 8) + col / 8] >> (4 * (col % 8))) & 0xfu) << slot.bit;
  }
  dst[idx] = word;
}

// bf16 [rows, cols] = scale * (code - zero), from the kInt4Mma layout (one thread per word: its
// 16 inputs lie in one group, so two scale loads; per row, its 4 consecutive inputs in one
// 8-byte store).
__global__ void DequantMmaKernel(const uint32_t* __restrict__ codes, const __half2* __restrict__ scale_zero, int64_t rows,
                                 int64_t cols, int64_t group_size, int64_t words, __nv_bfloat16* __restrict__ out) {
  WaitForPriorGrids();
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= words) return;
  const int chunks = static_cast<int>(cols / kChunkInputs);
  const int j = static_cast<int>(idx % 4), lane = static_cast<int>((idx / 4) % 32);
  const int64_t c = (idx / 128) % chunks, tile = idx / (128 * chunks);
  const int g = lane >> 2, t = lane & 3;
  const int64_t k0 = (4 * c + j) * mma_layout::kKStepInputs, group = k0 / group_size, groups = cols / group_size;
  const int first = mma_layout::ActivationInput(t);
  const uint32_t word = codes[idx];
#pragma unroll
  for (int half = 0; half < 2; ++half) {  // rows g and g + 8
    const int64_t row = tile * 16 + g + 8 * half;
    if (row >= rows) continue;
    const float2 s = __half22float2(scale_zero[row * groups + group]);
    float v[4] = {};
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const mma_layout::CodeSlot slot = mma_layout::WordElement(e, g, t);
      if (slot.row == g + 8 * half) v[slot.input - first] = s.x * (static_cast<float>((word >> slot.bit) & 0xfu) - s.y);
    }
    const __nv_bfloat162 lo = __floats2bfloat162_rn(v[0], v[1]), hi = __floats2bfloat162_rn(v[2], v[3]);
    uint32_t ulo, uhi;
    memcpy(&ulo, &lo, 4);
    memcpy(&uhi, &hi, 4);
    __stwb(reinterpret_cast<uint2*>(out + row * cols + k0 + first), make_uint2(ulo, uhi));  // one 8-byte store
  }
}

template <int NB, int TM, int U, int MINB>
void Launch(const DeviceMatrix& w, const float* x, int64_t n, const float* bias, float* y, int64_t ldy) {
  const int64_t tiles = (w.rows + 15) / 16;
  LaunchKernel(Int4MmaKernel<NB, TM, U, MINB>, Blocks(tiles, TM), kMmaWarps * 32, static_cast<const uint4*>(w.data),
               static_cast<const __half2*>(w.scale_zero), w.rows, w.cols, w.group_size, x, n, bias, y, ldy);
  QB_CUDA_CHECK_LAUNCH();
}

// Int4MmaLeanKernel's conditions: groups of a multiple of 64 inputs, every offset in 32 bits.
bool LeanFits(const DeviceMatrix& w, int64_t n, int64_t ldy) {
  constexpr int64_t kMax = int64_t{1} << 31;
  const int64_t tiles = (w.rows + 15) / 16;
  return w.group_size % kChunkInputs == 0 && tiles * (w.cols / kChunkInputs) * 32 < kMax && n * w.cols < kMax &&
         n * ldy < kMax && w.rows * (w.cols / w.group_size) < kMax;
}

template <int NB, int U, bool XA, int MINB>
void LaunchLean(const DeviceMatrix& w, const float* x, int64_t n, const float* bias, float* y, int64_t ldy) {
  const int64_t tiles = (w.rows + 15) / 16;
  LaunchKernel(Int4MmaLeanKernel<NB, U, XA, MINB>, static_cast<unsigned>(tiles), kMmaWarps * 32,
               static_cast<const uint4*>(w.data), static_cast<const __half2*>(w.scale_zero), static_cast<int>(w.rows),
               static_cast<int>(w.cols), static_cast<int>(w.group_size), x, static_cast<int>(n), bias, y,
               static_cast<int>(ldy));
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace

namespace {
std::atomic<int> g_mma_tiles{2};
}  // namespace

void SetInt4MmaTiles(int tiles) {
  QB_CUDA_REQUIRE(tiles == 1 || tiles == 2, "SetInt4MmaTiles: 1 or 2");
  g_mma_tiles.store(tiles);
}
int Int4MmaTiles() { return g_mma_tiles.load(); }

namespace {
std::atomic<int> g_mma_variant{0};
}  // namespace

void SetInt4MmaVariant(int variant) {
  QB_CUDA_REQUIRE(variant >= 0 && variant < kInt4MmaVariants, "SetInt4MmaVariant: 0 to kInt4MmaVariants - 1");
  g_mma_variant.store(variant);
}
int Int4MmaVariant() { return g_mma_variant.load(); }

bool Int4MmaSupported(const DeviceMatrix& w) {
  return (w.format == WeightFormat::kInt4 || w.format == WeightFormat::kInt4Mma) && w.cols % kChunkInputs == 0 &&
         w.group_size % 32 == 0 && w.group_size > 0 && w.cols % w.group_size == 0;
}

int64_t Int4MmaCodeBytes(int64_t rows, int64_t cols) { return (rows + 15) / 16 * 16 * cols / 2; }

DeviceMatrix RepackInt4ForMma(const DeviceMatrix& w, void* dst) {
  QB_CUDA_REQUIRE(w.format == WeightFormat::kInt4 && Int4MmaSupported(w),
                  "RepackInt4ForMma: an int4 matrix with in_features a multiple of 64 expected");
  const int64_t words = Int4MmaCodeBytes(w.rows, w.cols) / 4;
  LaunchKernel(RepackKernel, Blocks(words, 256), 256, static_cast<const uint32_t*>(w.data), w.rows, w.cols,
               static_cast<uint32_t*>(dst), words);
  QB_CUDA_CHECK_LAUNCH();
  DeviceMatrix m = w;
  m.format = WeightFormat::kInt4Mma;
  m.data = dst;
  return m;
}

namespace detail {

void DequantizeInt4MmaToBF16(const DeviceMatrix& w, void* out) {
  const int64_t words = Int4MmaCodeBytes(w.rows, w.cols) / 4;
  if (words == 0) return;
  QB_CUDA_REQUIRE(reinterpret_cast<uintptr_t>(out) % 8 == 0, "DequantizeInt4ToBF16: output must be 8-byte aligned");
  LaunchKernel(DequantMmaKernel, Blocks(words, 256), 256, static_cast<const uint32_t*>(w.data),
               static_cast<const __half2*>(w.scale_zero), w.rows, w.cols, w.group_size, words,
               static_cast<__nv_bfloat16*>(out));
  QB_CUDA_CHECK_LAUNCH();
}

void GemvInt4Mma(const DeviceMatrix& w, const float* x, int64_t n, const float* bias, float* y, int64_t ldy) {
  QB_CUDA_REQUIRE(w.format == WeightFormat::kInt4Mma && Int4MmaSupported(w), "int4 mma: not a kInt4Mma matrix");
  QB_CUDA_REQUIRE(reinterpret_cast<uintptr_t>(w.data) % 16 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0,
                  "int4 mma: codes and activations must be 16-byte aligned");
  // One 16-row tile per block for up to 8 tokens; above, two by default, so that each
  // activation fragment (which grows with the tokens) serves two tiles (SetInt4MmaTiles).
  const bool two = Int4MmaTiles() == 2;
  if (n <= 8) {
    // (tiles per block, chunks loaded ahead, blocks per SM the registers must allow)
    const int variant = Int4MmaVariant();
    if (variant >= 5 && LeanFits(w, n, ldy)) {
      // Int4MmaLeanKernel <token blocks, chunks loaded ahead, activations loaded with the
      // codes, blocks per SM>; prepared without a GPU (2026-11-28), not yet measured: the
      // candidate for the default if a device run finds it faster (docs/CUDA_PERF.md, run 12).
      switch (variant) {
        case 5: LaunchLean<1, 2, true, 3>(w, x, n, bias, y, ldy); break;
        case 6: LaunchLean<1, 2, false, 4>(w, x, n, bias, y, ldy); break;
        default: LaunchLean<1, 4, false, 3>(w, x, n, bias, y, ldy);
      }
      return;
    }
    switch (variant) {
      // The default was the fastest 7B decode step of these on an H200 (run 9, 2026-11-28:
      // 3.25 ms against 3.36-3.47; per matrix they differ by up to 25% either way).
      case 1: Launch<1, 1, 2, 4>(w, x, n, bias, y, ldy); break;
      case 2: Launch<1, 1, 4, 3>(w, x, n, bias, y, ldy); break;
      case 3: Launch<1, 2, 2, 2>(w, x, n, bias, y, ldy); break;
      case 4: Launch<1, 1, 4, 2>(w, x, n, bias, y, ldy); break;
      default: Launch<1, 1, 2, 3>(w, x, n, bias, y, ldy);
    }
  } else if (n <= 32 && Int4MmaVariant() >= 5 && LeanFits(w, n, ldy)) {
    // The lean kernel for 9-32 tokens too (one tile per block, activations loaded at use).
    if (n <= 16)
      LaunchLean<2, 2, false, 2>(w, x, n, bias, y, ldy);
    else if (n <= 24)
      LaunchLean<3, 2, false, 2>(w, x, n, bias, y, ldy);
    else
      LaunchLean<4, 2, false, 2>(w, x, n, bias, y, ldy);
  } else if (n <= 16) {
    two ? Launch<2, 2, 2, 1>(w, x, n, bias, y, ldy) : Launch<2, 1, 2, 2>(w, x, n, bias, y, ldy);
  } else if (n <= 24) {
    two ? Launch<3, 2, 2, 1>(w, x, n, bias, y, ldy) : Launch<3, 1, 2, 2>(w, x, n, bias, y, ldy);
  } else if (n <= 32) {
    two ? Launch<4, 2, 2, 1>(w, x, n, bias, y, ldy) : Launch<4, 1, 2, 2>(w, x, n, bias, y, ldy);
  } else {
    QB_CUDA_REQUIRE(false, "int4 mma: 1 to 32 tokens per launch");
  }
}

}  // namespace detail

}  // namespace qb::cuda
