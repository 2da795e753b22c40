// Deterministic random fills on the device, so that benchmarks can build a 7B-shape model in
// GPU memory in a second instead of writing and reading a 15 GB file.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_api.h"

namespace qb::cuda {

using namespace detail;

namespace {

// SplitMix64 of (seed, index): independent, reproducible values per element.
__device__ __forceinline__ uint64_t Mix(uint64_t seed, uint64_t i) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

__device__ __forceinline__ float Uniform(uint64_t seed, uint64_t i) {  // [-1, 1)
  return static_cast<float>(Mix(seed, i) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

template <typename T>
__global__ void FillKernel(T* p, int64_t count, float scale, uint64_t seed) {
  WaitForPriorGrids();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) p[i] = FromFloat<T>(scale * Uniform(seed, static_cast<uint64_t>(i)));
}

__global__ void FillCodesKernel(uint32_t* p, int64_t words, uint64_t seed) {
  WaitForPriorGrids();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < words) p[i] = static_cast<uint32_t>(Mix(seed, static_cast<uint64_t>(i)));
}

__global__ void FillScaleZeroKernel(__half2* p, int64_t pairs, float scale, uint64_t seed) {
  WaitForPriorGrids();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < pairs) p[i] = __floats2half2_rn(scale * (0.75f + 0.25f * Uniform(seed, static_cast<uint64_t>(i))), 8.f);
}

__global__ void FillConstantKernel(float* p, int64_t count, float value) {
  WaitForPriorGrids();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) p[i] = value;
}

constexpr int kThreads = 256;

}  // namespace

void FillRandom(void* p, DType type, int64_t count, float scale, uint64_t seed) {
  if (count == 0) return;
  const unsigned blocks = Blocks(count, kThreads);
  switch (type) {
    case DType::kF32: LaunchKernel(FillKernel<float>, blocks, kThreads, static_cast<float*>(p), count, scale, seed); break;
    case DType::kF16: LaunchKernel(FillKernel<__half>, blocks, kThreads, static_cast<__half*>(p), count, scale, seed); break;
    case DType::kBF16:
      LaunchKernel(FillKernel<__nv_bfloat16>, blocks, kThreads, static_cast<__nv_bfloat16*>(p), count, scale, seed);
      break;
    default: QB_CUDA_REQUIRE(false, "FillRandom: f32, f16 or bf16");
  }
  QB_CUDA_CHECK_LAUNCH();
}

void FillRandomInt4(uint32_t* codes, int64_t words, uint64_t seed) {
  if (words == 0) return;
  LaunchKernel(FillCodesKernel, Blocks(words, kThreads), kThreads, codes, words, seed);
  QB_CUDA_CHECK_LAUNCH();
}

void FillInt4ScaleZero(void* scale_zero, int64_t pairs, float scale, uint64_t seed) {
  if (pairs == 0) return;
  LaunchKernel(FillScaleZeroKernel, Blocks(pairs, kThreads), kThreads, static_cast<__half2*>(scale_zero), pairs, scale,
               seed);
  QB_CUDA_CHECK_LAUNCH();
}

void FillConstant(float* p, int64_t count, float value) {
  if (count == 0) return;
  LaunchKernel(FillConstantKernel, Blocks(count, kThreads), kThreads, p, count, value);
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::cuda
