// GEMV for bf16/f16 weights and 1-8 tokens of f32 activations (decode). Decode is bound by
// reading the weights, so the kernel is built around the weight stream: each warp owns kRows
// output rows, each lane reads 16 bytes (8 weights) per row per step with streaming loads,
// kUnroll steps in flight, f32 activations read through L1 (shared by every warp of the SM),
// f32 accumulation, one warp reduction per row and token at the end. Several rows per warp
// let one activation load serve kRows weight loads.
#include "kernels/cuda/cuda_api.h"
#include "kernels/cuda/gemv_common.cuh"

namespace qb::cuda {

using namespace detail;

namespace {

// v1: kRows = 2, kUnroll = 2 for every token count. v2 keeps more 16-byte loads in flight per
// lane (the loop runs few iterations on 3584-wide rows, each waiting a full memory latency):
// 2 rows x 8 steps for one token, 2 x 4 for two, 4 x 2 (more activation reuse) above.
template <int NT>
struct V2Shape {
  static constexpr int kRows = NT <= 2 ? 2 : 4;
  static constexpr int kUnroll = NT == 1 ? 8 : (NT == 2 ? 4 : 2);
};

__device__ __forceinline__ void Unpack8(uint4 r, __nv_bfloat16*, float* w) {
  const uint32_t u[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    w[2 * i] = __uint_as_float(u[i] << 16);
    w[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
  }
}

__device__ __forceinline__ void Unpack8(uint4 r, __half*, float* w) {
  const __half2* h = reinterpret_cast<const __half2*>(&r);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(h[i]);
    w[2 * i] = f.x;
    w[2 * i + 1] = f.y;
  }
}

template <typename W, int NT, int kRows, int kUnroll>
__global__ void __launch_bounds__(kGemvWarps * 32)
    GemvKernel(const W* __restrict__ w, int64_t rows, int64_t cols, const float* __restrict__ x,
               const float* __restrict__ bias, float* __restrict__ y, int64_t ldy) {
  const int lane = threadIdx.x % 32;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * kGemvWarps + threadIdx.x / 32) * kRows;
  const int64_t chunks = cols / 8;
  const W* wrow[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) wrow[r] = w + min(row0 + r, rows - 1) * cols;  // clamp: no reads past the end
  // The first step's weights (constant) are requested before waiting for the activations.
  if (row0 < rows) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int r = 0; r < kRows; ++r)
        if (lane + 32 * u < chunks) PrefetchL2(wrow[r] + (lane + 32 * u) * 8);
  }
  WaitForPriorGrids();
  if (row0 >= rows) return;

  float acc[kRows][NT];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[r][t] = 0.f;

  for (int64_t base = lane; base < chunks; base += 32 * kUnroll) {
    uint4 raw[kUnroll][kRows];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = base + 32 * u;
#pragma unroll
      for (int r = 0; r < kRows; ++r) raw[u][r] = c < chunks ? LoadStreaming(wrow[r] + c * 8) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = base + 32 * u;
      if (c >= chunks) break;
      float wf[kRows][8];
#pragma unroll
      for (int r = 0; r < kRows; ++r) Unpack8(raw[u][r], static_cast<W*>(nullptr), wf[r]);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        float xv[8];
        Load8(x + t * cols + c * 8, xv);
#pragma unroll
        for (int r = 0; r < kRows; ++r)
#pragma unroll
          for (int i = 0; i < 8; ++i) acc[r][t] = fmaf(wf[r][i], xv[i], acc[r][t]);
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

template <typename W, int NT, int kRows, int kUnroll>
void LaunchShape(const DeviceMatrix& w, const float* x, const float* bias, float* y, int64_t ldy) {
  const int64_t warps = (w.rows + kRows - 1) / kRows;
  LaunchKernel(GemvKernel<W, NT, kRows, kUnroll>, Blocks(warps, kGemvWarps), kGemvWarps * 32,
               static_cast<const W*>(w.data), w.rows, w.cols, x, bias, y, ldy);
  QB_CUDA_CHECK_LAUNCH();
}

template <typename W, int NT>
void LaunchNT(const DeviceMatrix& w, const float* x, const float* bias, float* y, int64_t ldy) {
  if (GemvVersion() == 1)
    LaunchShape<W, NT, 2, 2>(w, x, bias, y, ldy);
  else
    LaunchShape<W, NT, V2Shape<NT>::kRows, V2Shape<NT>::kUnroll>(w, x, bias, y, ldy);
}

template <typename W>
void LaunchTyped(const DeviceMatrix& w, const float* x, int64_t n, const float* bias, float* y, int64_t ldy) {
  switch (n) {
    case 1: LaunchNT<W, 1>(w, x, bias, y, ldy); break;
    case 2: LaunchNT<W, 2>(w, x, bias, y, ldy); break;
    case 3: LaunchNT<W, 3>(w, x, bias, y, ldy); break;
    case 4: LaunchNT<W, 4>(w, x, bias, y, ldy); break;
    case 5: LaunchNT<W, 5>(w, x, bias, y, ldy); break;
    case 6: LaunchNT<W, 6>(w, x, bias, y, ldy); break;
    case 7: LaunchNT<W, 7>(w, x, bias, y, ldy); break;
    case 8: LaunchNT<W, 8>(w, x, bias, y, ldy); break;
    default: QB_CUDA_REQUIRE(false, "GEMV: 1 to 8 tokens per launch");
  }
}

}  // namespace

namespace detail {

// y rows [0, n) from x rows [0, n), n <= 8 (the caller splits larger batches).
void GemvFloat(const DeviceMatrix& w, const float* x, int64_t n, const float* bias, float* y, int64_t ldy) {
  QB_CUDA_REQUIRE(w.cols % 8 == 0, "GEMV: in_features must be a multiple of 8");
  QB_CUDA_REQUIRE(reinterpret_cast<uintptr_t>(w.data) % 16 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0,
                  "GEMV: weights and activations must be 16-byte aligned");
  if (w.format == WeightFormat::kBF16)
    LaunchTyped<__nv_bfloat16>(w, x, n, bias, y, ldy);
  else
    LaunchTyped<__half>(w, x, n, bias, y, ldy);
}

}  // namespace detail

}  // namespace qb::cuda
