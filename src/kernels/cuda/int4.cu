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

template <int NT>
__global__ void __launch_bounds__(kGemvWarps * 32)
    Int4GemvKernel(const uint32_t* __restrict__ codes, const __half2* __restrict__ scale_zero, int64_t rows,
                   int64_t cols, int64_t group_size, const float* __restrict__ x, const float* __restrict__ bias,
                   float* __restrict__ y, int64_t ldy) {
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
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = base + 32 * u;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        if (c < chunks) {
          raw[u][r] = LoadStreaming(codes + rr[r] * (cols / 8) + c * 4);
          sz[u][r] = scale_zero[rr[r] * groups + c / chunks_per_group];
        } else {
          raw[u][r] = make_uint4(0, 0, 0, 0);
          sz[u][r] = __floats2half2_rn(0.f, 0.f);
        }
      }
    }
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
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t row = row0 + r;
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      const float v = WarpSum(acc[r][t]);
      if (lane == 0 && row < rows) y[t * ldy + row] = v + (bias != nullptr ? bias[row] : 0.f);
    }
  }
}

template <int NT>
void LaunchNT(const DeviceMatrix& w, const float* x, const float* bias, float* y, int64_t ldy) {
  const int64_t warps = (w.rows + kRows - 1) / kRows;
  Int4GemvKernel<NT><<<Blocks(warps, kGemvWarps), kGemvWarps * 32, 0, Stream()>>>(
      static_cast<const uint32_t*>(w.data), static_cast<const __half2*>(w.scale_zero), w.rows, w.cols, w.group_size,
      x, bias, y, ldy);
  QB_CUDA_CHECK_LAUNCH();
}

// One thread per code word: 8 weights -> 8 bf16 (one 16-byte store).
__global__ void DequantKernel(const uint32_t* __restrict__ codes, const __half2* __restrict__ scale_zero, int64_t rows,
                              int64_t cols, int64_t group_size, __nv_bfloat16* __restrict__ out) {
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
    default: QB_CUDA_REQUIRE(false, "int4 GEMV: 1 to 4 tokens per launch");
  }
}

}  // namespace detail

void DequantizeInt4ToBF16(const DeviceMatrix& w, void* out) {
  QB_CUDA_REQUIRE(w.format == WeightFormat::kInt4 && w.cols % 32 == 0 && w.group_size % 32 == 0,
                  "DequantizeInt4ToBF16: not an int4 matrix");
  const int64_t words = w.rows * (w.cols / 8);
  if (words == 0) return;
  DequantKernel<<<Blocks(words, 256), 256, 0, Stream()>>>(static_cast<const uint32_t*>(w.data),
                                                          static_cast<const __half2*>(w.scale_zero), w.rows, w.cols,
                                                          w.group_size, static_cast<__nv_bfloat16*>(out));
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::cuda
