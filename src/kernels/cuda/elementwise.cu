// Row and elementwise ops on f32 activations: embedding lookup, RMSNorm, RoPE, SiLU-mul, add,
// KV scatter, row gather. All are memory-bound and tiny next to the weight reads of a step;
// they keep f32 so that they match the CPU reference to f32 rounding.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_api.h"

namespace qb::cuda {

using namespace detail;

namespace {

template <typename T>
__global__ void EmbeddingKernel(const int32_t* __restrict__ ids, int64_t n, const T* __restrict__ table, int64_t d,
                                float* __restrict__ out) {
  WaitForPriorGrids();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n * d) return;
  const int64_t t = i / d, c = i % d;
  out[i] = ToFloat(table[static_cast<int64_t>(ids[t]) * d + c]);
}

// One block per row: each thread sums squares of a strided slice, then a block reduction.
__global__ void RmsNormKernel(const float* x, int64_t d, const float* __restrict__ w, float eps, float* y) {
  WaitForPriorGrids();
  const float* xr = x + static_cast<int64_t>(blockIdx.x) * d;
  float* yr = y + static_cast<int64_t>(blockIdx.x) * d;
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) ss += xr[i] * xr[i];
  ss = WarpSum(ss);
  __shared__ float partial[32];
  __shared__ float inv;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) partial[warp] = ss;
  __syncthreads();
  if (warp == 0) {
    float v = lane < static_cast<int>(blockDim.x / 32) ? partial[lane] : 0.f;
    v = WarpSum(v);
    if (lane == 0) inv = rsqrtf(v / static_cast<float>(d) + eps);
  }
  __syncthreads();
  // All reads of xr happened before the second barrier, so y may alias x.
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) yr[i] = xr[i] * inv * w[i];
}

// RmsNorm fused with the residual add before it: x += delta, y = rmsnorm(x). Each thread
// re-reads only the elements it wrote itself, so no barrier is needed before the second pass.
__global__ void AddRmsNormKernel(float* __restrict__ x, const float* __restrict__ delta, int64_t d,
                                 const float* __restrict__ w, float eps, float* __restrict__ y) {
  WaitForPriorGrids();
  float* xr = x + static_cast<int64_t>(blockIdx.x) * d;
  const float* dr = delta + static_cast<int64_t>(blockIdx.x) * d;
  float* yr = y + static_cast<int64_t>(blockIdx.x) * d;
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    const float v = xr[i] + dr[i];
    xr[i] = v;
    ss += v * v;
  }
  ss = WarpSum(ss);
  __shared__ float partial[32];
  __shared__ float inv;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) partial[warp] = ss;
  __syncthreads();
  if (warp == 0) {
    float v = lane < static_cast<int>(blockDim.x / 32) ? partial[lane] : 0.f;
    v = WarpSum(v);
    if (lane == 0) inv = rsqrtf(v / static_cast<float>(d) + eps);
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) yr[i] = xr[i] * inv * w[i];
}

// RoPE of the q and k heads and the KV scatter in one launch: one thread per (token, head of
// q|k|v, frequency i < head_dim / 2). q/k threads rotate elements i and i + half of their head
// with RopeKernel's arithmetic (so the values are identical); k threads also store the rotated
// pair into the k pool, v threads copy their pair into the v pool.
template <typename T>
__global__ void RopeScatterKernel(float* x, int64_t n, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                                  int64_t ld, const int32_t* __restrict__ positions, const float* __restrict__ inv_freq,
                                  float attention_scale, const int32_t* __restrict__ slots, T* __restrict__ k_pool,
                                  T* __restrict__ v_pool) {
  WaitForPriorGrids();
  const int64_t half = head_dim / 2, heads = n_heads + 2 * n_kv_heads;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n * heads * half) return;
  const int64_t t = idx / (heads * half), h = idx / half % heads, i = idx % half;
  float* v = x + t * ld + h * head_dim;
  const int64_t kv_dim = n_kv_heads * head_dim, slot = slots[t];
  if (h >= n_heads + n_kv_heads) {  // v head: copy
    T* dst = v_pool + slot * kv_dim + (h - n_heads - n_kv_heads) * head_dim;
    dst[i] = FromFloat<T>(v[i]);
    dst[i + half] = FromFloat<T>(v[i + half]);
    return;
  }
  const double angle = static_cast<double>(positions[t]) * static_cast<double>(inv_freq[i]);
  double s, c;
  sincos(angle, &s, &c);
  c *= attention_scale;
  s *= attention_scale;
  const double a = v[i], b = v[i + half];
  const float r0 = static_cast<float>(a * c - b * s), r1 = static_cast<float>(b * c + a * s);
  v[i] = r0;
  v[i + half] = r1;
  if (h >= n_heads) {  // k head: also into the pool
    T* dst = k_pool + slot * kv_dim + (h - n_heads) * head_dim;
    dst[i] = FromFloat<T>(r0);
    dst[i + half] = FromFloat<T>(r1);
  }
}

// One thread per (token, frequency): the angle and its cos/sin in double, as the reference
// does (pos * inv_freq reaches ~1e4-1e5 radians, where f32 loses the phase), then every head.
__global__ void RopeKernel(float* x, int64_t n, int64_t heads, int64_t head_dim, int64_t ld,
                           const int32_t* __restrict__ positions, const float* __restrict__ inv_freq,
                           float attention_scale) {
  WaitForPriorGrids();
  const int64_t half = head_dim / 2;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n * half) return;
  const int64_t t = idx / half, i = idx % half;
  const double angle = static_cast<double>(positions[t]) * static_cast<double>(inv_freq[i]);
  double s, c;
  sincos(angle, &s, &c);
  c *= attention_scale;
  s *= attention_scale;
  float* row = x + t * ld;
  for (int64_t h = 0; h < heads; ++h) {
    float* v = row + h * head_dim;
    const double a = v[i], b = v[i + half];
    v[i] = static_cast<float>(a * c - b * s);
    v[i + half] = static_cast<float>(b * c + a * s);
  }
}

__global__ void SiluMulKernel(const float* gate, const float* up, int64_t n, int64_t d, int64_t ld_in, float* out,
                              int64_t ld_out) {
  WaitForPriorGrids();
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n * d) return;
  const int64_t t = idx / d, i = idx % d;
  const float g = gate[t * ld_in + i];
  out[t * ld_out + i] = g / (1.f + expf(-g)) * up[t * ld_in + i];
}

__global__ void AddKernel(float* acc, const float* x, int64_t count) {
  WaitForPriorGrids();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) acc[i] += x[i];
}

template <typename T>
__global__ void ScatterKernel(const float* __restrict__ src, int64_t n, int64_t d, int64_t ld,
                              const int32_t* __restrict__ rows, T* __restrict__ dst) {
  WaitForPriorGrids();
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n * d) return;
  const int64_t t = idx / d, c = idx % d;
  dst[static_cast<int64_t>(rows[t]) * d + c] = FromFloat<T>(src[t * ld + c]);
}

__global__ void GatherRowsKernel(const float* __restrict__ x, int64_t d, const int32_t* __restrict__ rows, int64_t m,
                                 float* __restrict__ out) {
  WaitForPriorGrids();
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= m * d) return;
  const int64_t i = idx / d, c = idx % d;
  out[idx] = x[static_cast<int64_t>(rows[i]) * d + c];
}

constexpr int kThreads = 256;

}  // namespace

void Embedding(const int32_t* ids, int64_t n, const void* table, DType type, int64_t d, float* out) {
  if (n == 0) return;
  const unsigned blocks = Blocks(n * d, kThreads);
  switch (type) {
    case DType::kF32:
      LaunchKernel(EmbeddingKernel<float>, blocks, kThreads, ids, n, static_cast<const float*>(table), d, out);
      break;
    case DType::kF16:
      LaunchKernel(EmbeddingKernel<__half>, blocks, kThreads, ids, n, static_cast<const __half*>(table), d, out);
      break;
    case DType::kBF16:
      LaunchKernel(EmbeddingKernel<__nv_bfloat16>, blocks, kThreads, ids, n, static_cast<const __nv_bfloat16*>(table), d, out);
      break;
    default:
      QB_CUDA_REQUIRE(false, "Embedding: the table must be f32, f16 or bf16");
  }
  QB_CUDA_CHECK_LAUNCH();
}

void RmsNorm(const float* x, int64_t n, int64_t d, const float* w, float eps, float* y) {
  if (n == 0) return;
  const int threads = d >= 1024 ? 1024 : (d >= 256 ? 256 : 64);
  LaunchKernel(RmsNormKernel, static_cast<unsigned>(n), threads, x, d, w, eps, y);
  QB_CUDA_CHECK_LAUNCH();
}

void AddRmsNorm(float* x, const float* delta, int64_t n, int64_t d, const float* w, float eps, float* y) {
  if (n == 0) return;
  const int threads = d >= 1024 ? 1024 : (d >= 256 ? 256 : 64);
  LaunchKernel(AddRmsNormKernel, static_cast<unsigned>(n), threads, x, delta, d, w, eps, y);
  QB_CUDA_CHECK_LAUNCH();
}

void RopeScatterKV(float* qkv, int64_t n, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t ld,
                   const int32_t* positions, const float* inv_freq, float attention_scale, const int32_t* slots,
                   void* k_pool, void* v_pool, DType pool_type) {
  QB_CUDA_REQUIRE(head_dim % 2 == 0 && ld >= (n_heads + 2 * n_kv_heads) * head_dim,
                  "RopeScatterKV: bad head_dim or row stride");
  if (n == 0) return;
  const unsigned blocks = Blocks(n * (n_heads + 2 * n_kv_heads) * (head_dim / 2), kThreads);
  switch (pool_type) {
    case DType::kF32:
      LaunchKernel(RopeScatterKernel<float>, blocks, kThreads, qkv, n, n_heads, n_kv_heads, head_dim, ld, positions,
                   inv_freq, attention_scale, slots, static_cast<float*>(k_pool), static_cast<float*>(v_pool));
      break;
    case DType::kF16:
      LaunchKernel(RopeScatterKernel<__half>, blocks, kThreads, qkv, n, n_heads, n_kv_heads, head_dim, ld, positions,
                   inv_freq, attention_scale, slots, static_cast<__half*>(k_pool), static_cast<__half*>(v_pool));
      break;
    case DType::kBF16:
      LaunchKernel(RopeScatterKernel<__nv_bfloat16>, blocks, kThreads, qkv, n, n_heads, n_kv_heads, head_dim, ld,
                   positions, inv_freq, attention_scale, slots, static_cast<__nv_bfloat16*>(k_pool),
                   static_cast<__nv_bfloat16*>(v_pool));
      break;
    default:
      QB_CUDA_REQUIRE(false, "RopeScatterKV: the pool must be f32, f16 or bf16");
  }
  QB_CUDA_CHECK_LAUNCH();
}

void Rope(float* x, int64_t n, int64_t heads, int64_t head_dim, int64_t ld, const int32_t* positions,
          const float* inv_freq, float attention_scale) {
  QB_CUDA_REQUIRE(head_dim % 2 == 0 && ld >= heads * head_dim, "Rope: bad head_dim or row stride");
  if (n == 0) return;
  LaunchKernel(RopeKernel, Blocks(n * (head_dim / 2), kThreads), kThreads, x, n, heads, head_dim, ld, positions,
               inv_freq, attention_scale);
  QB_CUDA_CHECK_LAUNCH();
}

void SiluMul(const float* gate, const float* up, int64_t n, int64_t d, int64_t ld_in, float* out, int64_t ld_out) {
  if (n * d == 0) return;
  LaunchKernel(SiluMulKernel, Blocks(n * d, kThreads), kThreads, gate, up, n, d, ld_in, out, ld_out);
  QB_CUDA_CHECK_LAUNCH();
}

void Add(float* acc, const float* x, int64_t count) {
  if (count == 0) return;
  LaunchKernel(AddKernel, Blocks(count, kThreads), kThreads, acc, x, count);
  QB_CUDA_CHECK_LAUNCH();
}

void ScatterRows(const float* src, int64_t n, int64_t d, int64_t ld, const int32_t* rows, void* dst, DType dst_type) {
  if (n * d == 0) return;
  const unsigned blocks = Blocks(n * d, kThreads);
  switch (dst_type) {
    case DType::kF32:
      LaunchKernel(ScatterKernel<float>, blocks, kThreads, src, n, d, ld, rows, static_cast<float*>(dst));
      break;
    case DType::kF16:
      LaunchKernel(ScatterKernel<__half>, blocks, kThreads, src, n, d, ld, rows, static_cast<__half*>(dst));
      break;
    case DType::kBF16:
      LaunchKernel(ScatterKernel<__nv_bfloat16>, blocks, kThreads, src, n, d, ld, rows, static_cast<__nv_bfloat16*>(dst));
      break;
    default:
      QB_CUDA_REQUIRE(false, "ScatterRows: the pool must be f32, f16 or bf16");
  }
  QB_CUDA_CHECK_LAUNCH();
}

void GatherRows(const float* x, int64_t d, const int32_t* rows, int64_t m, float* out) {
  if (m * d == 0) return;
  LaunchKernel(GatherRowsKernel, Blocks(m * d, kThreads), kThreads, x, d, rows, m, out);
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::cuda
