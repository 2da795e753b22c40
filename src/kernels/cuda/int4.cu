// INT4 weight-only kernels (GPTQ/AWQ after repacking, see int4_repack.h).
//
// Layout: codes u32 [rows, cols / 8], nibble i of word w = input 8w + i, so one 16-byte load is
// 32 consecutive inputs of one row, in one quantization group (groups are multiples of 32); per
// (row, group) one 4-byte pair {f16 scale, f16 zero}. A row's codes are contiguous, so the
// GEMV streams them exactly like the bf16 kernel, at a quarter of the bytes.
//
// Decoding without integer-to-float conversions (a quarter-rate instruction): OR-ing a nibble
// into the mantissa of 2^23 (0x4B000000) gives the float 2^23 + q exactly, and subtracting
// 2^23 + zero leaves q - zero exactly; the group's partial sum is then scaled once. Each warp
// owns kRows rows so that every activation load serves four rows.
#include "kernels/cuda/cuda_api.h"
#include "kernels/cuda/gemv_common.cuh"

namespace qb::cuda {

using namespace detail;

namespace {

constexpr int kRows = 4;
constexpr int kUnroll = 2;

// sum_i (q_i - z) * x_i over the 32 inputs of one 16-byte chunk; `magic_z` = 2^23 + z.
__device__ __forceinline__ float ChunkDot(uint4 codes, float magic_z, const float* xv) {
  const uint32_t words[4] = {codes.x, codes.y, codes.z, codes.w};
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const float q = __uint_as_float(((words[k] >> (4 * i)) & 0xfu) | 0x4B000000u);
      s = fmaf(q - magic_z, xv[8 * k + i], s);
    }
  }
  return s;
}

// The codes and {scale, zero} of chunks base, base + 32, ... (kUnroll of them) of the warp's
// kRows rows (zeros past the end of the row).
__device__ __forceinline__ void LoadChunks(const uint32_t* __restrict__ codes, const __half2* __restrict__ scale_zero,
                                           const int64_t (&rr)[kRows], int64_t cols, int64_t chunks, int64_t groups,
                                           int64_t chunks_per_group, int64_t base, uint4 (&raw)[kUnroll][kRows],
                                           __half2 (&sz)[kUnroll][kRows]) {
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t c = base + 32 * u;
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      if (c < chunks) {
        raw[u][r] = LoadStreaming(codes + rr[r] * (cols / 8) + c * 4);
        sz[u][r] = scale_zero[rr[r] * groups + static_cast<int>(c) / static_cast<int>(chunks_per_group)];
      } else {
        raw[u][r] = make_uint4(0, 0, 0, 0);
        sz[u][r] = __floats2half2_rn(0.f, 0.f);
      }
    }
  }
}

// acc[r][t] += the group-scaled dot products of the loaded chunks with token t's activations
// (v1's arithmetic: each weight decoded again per token).
template <int NT>
__device__ __forceinline__ void AccumulateChunks(const uint4 (&raw)[kUnroll][kRows], const __half2 (&sz)[kUnroll][kRows],
                                                 int64_t base, int64_t chunks, int64_t cols, const float* __restrict__ x,
                                                 float (&acc)[kRows][NT]) {
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int64_t c = base + 32 * u;
    if (c >= chunks) break;
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      float xv[32];
#pragma unroll
      for (int k = 0; k < 4; ++k) Load8(x + t * cols + c * 32 + 8 * k, xv + 8 * k);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const float2 s = __half22float2(sz[u][r]);
        acc[r][t] = fmaf(s.x, ChunkDot(raw[u][r], 8388608.f + s.y, xv), acc[r][t]);
      }
    }
  }
}

// y[t, row0 + r] = the warp's sum of acc[r][t] (+ bias), by lane 0, for the rows that exist.
template <int R, int NT>
__device__ __forceinline__ void StoreRows(const float (&acc)[R][NT], int lane, int64_t row0, int64_t rows,
                                          const float* __restrict__ bias, float* __restrict__ y, int64_t ldy) {
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int64_t row = row0 + r;
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      const float v = WarpSum(acc[r][t]);
      if (lane == 0 && row < rows) y[t * ldy + row] = v + (bias != nullptr ? bias[row] : 0.f);
    }
  }
}

template <int NT>
__global__ void __launch_bounds__(kGemvWarps * 32)
    Int4GemvKernel(const uint32_t* __restrict__ codes, const __half2* __restrict__ scale_zero, int64_t rows,
                   int64_t cols, int64_t group_size, const float* __restrict__ x, const float* __restrict__ bias,
                   float* __restrict__ y, int64_t ldy) {
  WaitForPriorGrids();
  const int lane = threadIdx.x % 32;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * kGemvWarps + threadIdx.x / 32) * kRows;
  if (row0 >= rows) return;
  const int64_t chunks = cols / 32, groups = cols / group_size, chunks_per_group = group_size / 32;
  int64_t rr[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) rr[r] = min(row0 + r, rows - 1);  // clamp: no reads past the end

  float acc[kRows][NT];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[r][t] = 0.f;

  for (int64_t base = lane; base < chunks; base += 32 * kUnroll) {
    uint4 raw[kUnroll][kRows];
    __half2 sz[kUnroll][kRows];
    LoadChunks(codes, scale_zero, rr, cols, chunks, groups, chunks_per_group, base, raw, sz);
    AccumulateChunks<NT>(raw, sz, base, chunks, cols, x, acc);
  }
  StoreRows(acc, lane, row0, rows, bias, y, ldy);
}

// v3 (candidate, first compiled in a session without a GPU; QB_CUDA_GEMV=3): v1's shape and
// arithmetic with the loop software-pipelined: a lane issues the loads of its next kUnroll x
// kRows chunks before the arithmetic on the current ones. v1 issues its loads, waits for them,
// then computes with nothing in flight, so unless the SM has enough other warps the memory
// pipe idles during the ~1,000 decode instructions of each iteration (run 3: gate_up read at
// 1,350 GB/s of ~3,000). Same results as v1 bit for bit (the same operations in the same order).
template <int NT>
__global__ void __launch_bounds__(kGemvWarps * 32)
    Int4GemvKernelV3(const uint32_t* __restrict__ codes, const __half2* __restrict__ scale_zero, int64_t rows,
                     int64_t cols, int64_t group_size, const float* __restrict__ x, const float* __restrict__ bias,
                     float* __restrict__ y, int64_t ldy) {
  WaitForPriorGrids();
  const int lane = threadIdx.x % 32;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * kGemvWarps + threadIdx.x / 32) * kRows;
  if (row0 >= rows) return;
  const int64_t chunks = cols / 32, groups = cols / group_size, chunks_per_group = group_size / 32;
  int64_t rr[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) rr[r] = min(row0 + r, rows - 1);  // clamp: no reads past the end

  float acc[kRows][NT];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[r][t] = 0.f;

  uint4 raw[kUnroll][kRows];
  __half2 sz[kUnroll][kRows];
  LoadChunks(codes, scale_zero, rr, cols, chunks, groups, chunks_per_group, lane, raw, sz);
  for (int64_t base = lane; base < chunks; base += 32 * kUnroll) {
    uint4 next_raw[kUnroll][kRows];
    __half2 next_sz[kUnroll][kRows];
    LoadChunks(codes, scale_zero, rr, cols, chunks, groups, chunks_per_group, base + 32 * kUnroll, next_raw, next_sz);
    AccumulateChunks<NT>(raw, sz, base, chunks, cols, x, acc);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        raw[u][r] = next_raw[u][r];
        sz[u][r] = next_sz[u][r];
      }
  }
  StoreRows(acc, lane, row0, rows, bias, y, ldy);
}

// v2: the same layout and exact decoding, but each weight is decoded once (to q - z as f32)
// and then multiplied with every token's activation, instead of being re-decoded per token;
// fewer rows per warp for one or two tokens (twice the warps: the v1 kernel left most of the
// SM's issue slots idle on the 3584-wide matrices) and up to 8 chunk loads (128 bytes) in flight
// per lane; 1-8 tokens.
template <int NT>
struct Int4V2Shape {
  static constexpr int kRows = NT <= 2 ? 2 : 4;
  static constexpr int kUnroll = NT <= 2 ? 4 : 2;
};

__device__ __forceinline__ uint32_t Word(const uint4& v, int k) {
  return k == 0 ? v.x : (k == 1 ? v.y : (k == 2 ? v.z : v.w));
}

template <int NT, int R, int U>
__global__ void __launch_bounds__(kGemvWarps * 32)
    Int4GemvKernelV2(const uint32_t* __restrict__ codes, const __half2* __restrict__ scale_zero, int64_t rows,
                     int64_t cols, int64_t group_size, const float* __restrict__ x, const float* __restrict__ bias,
                     float* __restrict__ y, int64_t ldy) {
  WaitForPriorGrids();
  const int lane = threadIdx.x % 32;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * kGemvWarps + threadIdx.x / 32) * R;
  if (row0 >= rows) return;
  const int64_t chunks = cols / 32, groups = cols / group_size, chunks_per_group = group_size / 32;
  int64_t rr[R];
#pragma unroll
  for (int r = 0; r < R; ++r) rr[r] = min(row0 + r, rows - 1);  // clamp: no reads past the end

  float acc[R][NT];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[r][t] = 0.f;

  for (int64_t base = lane; base < chunks; base += 32 * U) {
    uint4 raw[U][R];
    __half2 sz[U][R];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t c = base + 32 * u;
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (c < chunks) {
          raw[u][r] = LoadStreaming(codes + rr[r] * (cols / 8) + c * 4);
          sz[u][r] = scale_zero[rr[r] * groups + static_cast<int>(c) / static_cast<int>(chunks_per_group)];
        } else {
          raw[u][r] = make_uint4(0, 0, 0, 0);
          sz[u][r] = __floats2half2_rn(0.f, 0.f);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t c = base + 32 * u;
      if (c >= chunks) break;
      float magic_z[R], part[R][NT];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        magic_z[r] = 8388608.f + __high2float(sz[u][r]);
#pragma unroll
        for (int t = 0; t < NT; ++t) part[r][t] = 0.f;
      }
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        float wv[R][8];
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const uint32_t word = Word(raw[u][r], k);
#pragma unroll
          for (int i = 0; i < 8; ++i) wv[r][i] = __uint_as_float(((word >> (4 * i)) & 0xfu) | 0x4B000000u) - magic_z[r];
        }
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          float xv[8];
          Load8(x + t * cols + c * 32 + 8 * k, xv);
#pragma unroll
          for (int r = 0; r < R; ++r)
#pragma unroll
            for (int i = 0; i < 8; ++i) part[r][t] = fmaf(wv[r][i], xv[i], part[r][t]);
        }
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const float scale = __low2float(sz[u][r]);
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[r][t] = fmaf(scale, part[r][t], acc[r][t]);
      }
    }
  }
  StoreRows(acc, lane, row0, rows, bias, y, ldy);
}

template <int NT>
void LaunchNT(const DeviceMatrix& w, const float* x, const float* bias, float* y, int64_t ldy) {
  const auto* codes = static_cast<const uint32_t*>(w.data);
  const auto* sz = static_cast<const __half2*>(w.scale_zero);
  // v1 re-decodes the weights per token but keeps more rows in flight: on an H100 (run 2,
  // 2026-11-26) it beat v2 at 1 and 2 tokens (gate_up 53 vs 92 us, 99 vs 147 us); v2 wins at 3-4.
  if (GemvVersion() == 3) {
    if constexpr (NT <= 4) {
      const int64_t warps = (w.rows + kRows - 1) / kRows;
      LaunchKernel(Int4GemvKernelV3<NT>, Blocks(warps, kGemvWarps), kGemvWarps * 32, codes, sz, w.rows, w.cols,
                   w.group_size, x, bias, y, ldy);
    } else {
      QB_CUDA_REQUIRE(false, "int4 GEMV v3: 1 to 4 tokens per launch");
    }
  } else if (GemvVersion() == 1 || NT <= 2) {
    if constexpr (NT <= 4) {
      const int64_t warps = (w.rows + kRows - 1) / kRows;
      LaunchKernel(Int4GemvKernel<NT>, Blocks(warps, kGemvWarps), kGemvWarps * 32, codes, sz, w.rows, w.cols,
                   w.group_size, x, bias, y, ldy);
    } else {
      QB_CUDA_REQUIRE(false, "int4 GEMV v1: 1 to 4 tokens per launch");
    }
  } else {
    constexpr int R = Int4V2Shape<NT>::kRows, U = Int4V2Shape<NT>::kUnroll;
    const int64_t warps = (w.rows + R - 1) / R;
    LaunchKernel(Int4GemvKernelV2<NT, R, U>, Blocks(warps, kGemvWarps), kGemvWarps * 32, codes, sz, w.rows, w.cols,
                 w.group_size, x, bias, y, ldy);
  }
  QB_CUDA_CHECK_LAUNCH();
}

// One thread per code word: 8 weights -> 8 bf16 (one 16-byte store).
__global__ void DequantKernel(const uint32_t* __restrict__ codes, const __half2* __restrict__ scale_zero, int64_t rows,
                              int64_t cols, int64_t group_size, __nv_bfloat16* __restrict__ out) {
  WaitForPriorGrids();
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t words_per_row = cols / 8;
  if (idx >= rows * words_per_row) return;
  const int64_t r = idx / words_per_row, w = idx % words_per_row;
  const float2 s = __half22float2(scale_zero[r * (cols / group_size) + (w * 8) / group_size]);
  const uint32_t word = codes[idx];
  alignas(16) __nv_bfloat16 v[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = __float2bfloat16_rn(s.x * (static_cast<float>((word >> (4 * i)) & 0xfu) - s.y));
  *reinterpret_cast<uint4*>(out + idx * 8) = *reinterpret_cast<const uint4*>(v);
}

}  // namespace

namespace detail {

void DequantizeInt4MmaToBF16(const DeviceMatrix& w, void* out);  // int4_mma.cu

void GemvInt4(const DeviceMatrix& w, const float* x, int64_t n, const float* bias, float* y, int64_t ldy) {
  QB_CUDA_REQUIRE(w.cols % 32 == 0 && w.group_size % 32 == 0 && w.cols % w.group_size == 0,
                  "int4 GEMV: in_features and the group size must be multiples of 32");
  QB_CUDA_REQUIRE(reinterpret_cast<uintptr_t>(w.data) % 16 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0,
                  "int4 GEMV: codes and activations must be 16-byte aligned");
  switch (n) {
    case 1: LaunchNT<1>(w, x, bias, y, ldy); break;
    case 2: LaunchNT<2>(w, x, bias, y, ldy); break;
    case 3: LaunchNT<3>(w, x, bias, y, ldy); break;
    case 4: LaunchNT<4>(w, x, bias, y, ldy); break;
    case 5: LaunchNT<5>(w, x, bias, y, ldy); break;
    case 6: LaunchNT<6>(w, x, bias, y, ldy); break;
    case 7: LaunchNT<7>(w, x, bias, y, ldy); break;
    case 8: LaunchNT<8>(w, x, bias, y, ldy); break;
    default: QB_CUDA_REQUIRE(false, "int4 GEMV: 1 to 8 tokens per launch");
  }
}

}  // namespace detail

void DequantizeInt4ToBF16(const DeviceMatrix& w, void* out) {
  if (w.format == WeightFormat::kInt4Mma) {
    detail::DequantizeInt4MmaToBF16(w, out);
    return;
  }
  QB_CUDA_REQUIRE(w.format == WeightFormat::kInt4 && w.cols % 32 == 0 && w.group_size % 32 == 0,
                  "DequantizeInt4ToBF16: not an int4 matrix");
  const int64_t words = w.rows * (w.cols / 8);
  if (words == 0) return;
  LaunchKernel(DequantKernel, Blocks(words, 256), 256, static_cast<const uint32_t*>(w.data),
               static_cast<const __half2*>(w.scale_zero), w.rows, w.cols, w.group_size,
               static_cast<__nv_bfloat16*>(out));
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::cuda
