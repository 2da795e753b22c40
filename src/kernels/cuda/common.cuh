// Internal to the .cu files: error checks, the backend's stream and cuBLAS handle, launch
// helpers and conversions.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace qb::cuda::detail {

[[noreturn]] void Fail(const char* what, const char* detail, const char* file, int line);

}  // namespace qb::cuda::detail

// Every runtime call is checked: a failure is a bug (bad arguments) or a broken device.
#define QB_CUDA_CHECK(call)                                                                 \
  do {                                                                                      \
    const cudaError_t qb_err_ = (call);                                                     \
    if (qb_err_ != cudaSuccess)                                                             \
      ::qb::cuda::detail::Fail(#call, cudaGetErrorString(qb_err_), __FILE__, __LINE__);     \
  } while (0)

#define QB_CUBLAS_CHECK(call)                                                               \
  do {                                                                                      \
    const cublasStatus_t qb_st_ = (call);                                                   \
    if (qb_st_ != CUBLAS_STATUS_SUCCESS)                                                    \
      ::qb::cuda::detail::Fail(#call, cublasGetStatusString(qb_st_), __FILE__, __LINE__);   \
  } while (0)

// After every kernel launch: catches bad launch configurations at once (the kernel's own
// faults surface at the next synchronizing call, which is checked too).
#define QB_CUDA_CHECK_LAUNCH() QB_CUDA_CHECK(cudaGetLastError())

// Invariants of the host API's arguments (a violation is a caller bug).
#define QB_CUDA_REQUIRE(cond, msg)                                                          \
  do {                                                                                      \
    if (!(cond)) ::qb::cuda::detail::Fail(#cond, msg, __FILE__, __LINE__);                  \
  } while (0)

namespace qb::cuda::detail {

cudaStream_t Stream();
cublasHandle_t Cublas();

// Programmatic dependent launch (sm_90+; SetProgrammaticLaunch in cuda_api.h): whether kernels
// are launched so that the GPU may start them before the previous kernel of the stream ends.
bool ProgrammaticLaunchActive();

// The first thing every kernel does (before any early return) with data another kernel of the
// stream wrote: waits until the previous grid has finished and its writes are visible. A no-op
// when the kernel was launched normally (the stream already ordered it) and before sm_90. Since
// every kernel waits before it can finish, waiting for the previous grid waits for all earlier
// ones. Work that reads only constant data (weights) may come before it.
__device__ __forceinline__ void WaitForPriorGrids() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// A hint to bring one weight line into L2 (issued before WaitForPriorGrids, so that a kernel's
// first weight reads overlap the previous kernel's end).
__device__ __forceinline__ void PrefetchL2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

// Launches `kernel` on the backend's stream, with programmatic dependent launch when active.
template <typename... KernelArgs, typename... Args>
void LaunchKernel(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, Args&&... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = 0;
  config.stream = Stream();
  cudaLaunchAttribute attribute = {};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attribute;
  config.numAttrs = ProgrammaticLaunchActive() ? 1 : 0;
  QB_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

inline unsigned Blocks(int64_t work, int threads) {
  const int64_t b = (work + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

// Element conversions used by the templated kernels.
__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__half v) { return __half2float(v); }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T FromFloat(float v);
template <>
__device__ __forceinline__ float FromFloat<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half FromFloat<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Sum over the 32 lanes of a warp; every lane gets the result.
__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

}  // namespace qb::cuda::detail
