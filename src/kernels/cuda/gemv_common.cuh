// Shared by the GEMV kernels: loads that stream weights past L1 (each weight byte is read once
// per step, while the activations are re-read by every warp and should stay cached).
#pragma once

#include "kernels/cuda/common.cuh"

namespace qb::cuda::detail {

constexpr int kGemvWarps = 4;  // warps per block

__device__ __forceinline__ uint4 LoadStreaming(const void* p) { return __ldcs(static_cast<const uint4*>(p)); }

__device__ __forceinline__ void Load8(const float* p, float* v) {
  const float4 a = reinterpret_cast<const float4*>(p)[0];
  const float4 b = reinterpret_cast<const float4*>(p)[1];
  v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
  v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}

}  // namespace qb::cuda::detail
