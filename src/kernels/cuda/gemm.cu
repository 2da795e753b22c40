// Linear: picks the GEMV (few tokens: weight-read bound) or cuBLAS (many tokens: compute
// bound). For cuBLAS the f32 activations are rounded to the weights' 16-bit type (bf16, or f16
// for f16 weights: cublasGemmEx needs both operands in one type) with f32 accumulation and f32
// output; int4 weights are first dequantized to bf16 into scratch (memory-bound, small next to
// the GEMM once there are enough tokens to need it). A GPTQ act-order permutation is applied
// while gathering the activations.
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_api.h"

namespace qb::cuda {

using namespace detail;

namespace detail {
void GemvFloat(const DeviceMatrix& w, const float* x, int64_t n, const float* bias, float* y, int64_t ldy);
void GemvInt4(const DeviceMatrix& w, const float* x, int64_t n, const float* bias, float* y, int64_t ldy);
void GemvInt4Mma(const DeviceMatrix& w, const float* x, int64_t n, const float* bias, float* y, int64_t ldy);
}  // namespace detail

namespace {

constexpr int kThreads = 256;
// The float GEMV kernels are instantiated for 1-8 tokens, but cuBLAS is faster from 5-8 on
// (H200, 2026-11-28: 7B gate_up at 8 tokens 111 vs 75 us, lm_head 429 vs 260 us; equal at 4).
constexpr int kGemvMaxFloat = 4;
constexpr int kGemvMaxInt4V1 = 4;  // v1 re-decodes int4 weights per token: past 4, dequant + GEMM
// v2 decodes each weight once for all tokens, but from 5 tokens on dequantize + cuBLAS was
// faster on an H100 (gate_up at 8 tokens: 238 vs 305 us).
constexpr int kGemvMaxInt4V2 = 4;
constexpr int kGemvMaxInt4Mma = 32;  // the tensor-core kernel: 1-32 tokens in one launch

int InitialGemvVersion() {
  const char* e = std::getenv("QB_CUDA_GEMV");
  if (e != nullptr && std::strcmp(e, "1") == 0) return 1;
  if (e != nullptr && std::strcmp(e, "3") == 0) return 3;
  return 2;
}
std::atomic<int> g_gemv_version{InitialGemvVersion()};

// dst[t, p] = x[t, perm ? perm[p] : p], converted to T.
template <typename T>
__global__ void GatherConvertKernel(const float* __restrict__ x, int64_t n, int64_t cols,
                                    const int32_t* __restrict__ perm, T* __restrict__ dst) {
  WaitForPriorGrids();
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n * cols) return;
  const int64_t t = idx / cols, p = idx % cols;
  dst[idx] = FromFloat<T>(x[t * cols + (perm != nullptr ? perm[p] : p)]);
}

__global__ void AddBiasKernel(float* y, int64_t n, int64_t rows, int64_t ldy, const float* __restrict__ bias) {
  WaitForPriorGrids();
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n * rows) return;
  const int64_t t = idx / rows, o = idx % rows;
  y[t * ldy + o] += bias[o];
}

template <typename T>
void GatherConvert(const float* x, int64_t n, int64_t cols, const int32_t* perm, void* dst) {
  LaunchKernel(GatherConvertKernel<T>, Blocks(n * cols, kThreads), kThreads, x, n, cols, perm, static_cast<T*>(dst));
  QB_CUDA_CHECK_LAUNCH();
}

void Gemm(const float* x, int64_t n, const DeviceMatrix& w, const float* bias, float* y, int64_t ldy,
          const LinearScratch& scratch) {
  const bool f16 = w.format == WeightFormat::kF16;
  QB_CUDA_REQUIRE(scratch.act != nullptr && scratch.act_bytes >= static_cast<size_t>(n * w.cols * 2),
                  "Linear: activation scratch too small for the GEMM path");
  if (f16)
    GatherConvert<__half>(x, n, w.cols, w.perm, scratch.act);
  else
    GatherConvert<__nv_bfloat16>(x, n, w.cols, w.perm, scratch.act);
  const void* wp = w.data;
  if (w.format == WeightFormat::kInt4 || w.format == WeightFormat::kInt4Mma) {
    QB_CUDA_REQUIRE(scratch.weights != nullptr && scratch.weight_bytes >= static_cast<size_t>(w.rows * w.cols * 2),
                    "Linear: weight scratch too small for an int4 GEMM");
    DequantizeInt4ToBF16(w, scratch.weights);
    wp = scratch.weights;
  }
  // Row-major y[n, rows] = x[n, cols] w[rows, cols]^T is column-major y^T = w x^T: cuBLAS sees
  // w as a column-major [cols, rows] matrix (transposed) and x as [cols, n].
  const cudaDataType_t type = f16 ? CUDA_R_16F : CUDA_R_16BF;
  const float alpha = 1.f, beta = 0.f;
  QB_CUBLAS_CHECK(cublasGemmEx(Cublas(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(w.rows), static_cast<int>(n),
                               static_cast<int>(w.cols), &alpha, wp, type, static_cast<int>(w.cols), scratch.act, type,
                               static_cast<int>(w.cols), &beta, y, CUDA_R_32F, static_cast<int>(ldy),
                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  if (bias != nullptr) {
    LaunchKernel(AddBiasKernel, Blocks(n * w.rows, kThreads), kThreads, y, n, w.rows, ldy, bias);
    QB_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void SetGemvVersion(int version) {
  QB_CUDA_REQUIRE(version >= 1 && version <= 3, "GEMV version 1, 2 or 3");
  g_gemv_version.store(version);
}
int GemvVersion() { return g_gemv_version.load(); }

int GemvMaxTokens(WeightFormat f) {
  if (f == WeightFormat::kInt4Mma) return kGemvMaxInt4Mma;
  if (f != WeightFormat::kInt4) return kGemvMaxFloat;
  return GemvVersion() == 1 || GemvVersion() == 3 ? kGemvMaxInt4V1 : kGemvMaxInt4V2;
}

void Linear(const float* x, int64_t n, const DeviceMatrix& w, const float* bias, float* y, int64_t ldy,
            const LinearScratch& scratch, LinearPath path) {
  QB_CUDA_REQUIRE(ldy >= w.rows, "Linear: output row stride below out_features");
  if (n == 0 || w.rows == 0) return;
  const int max_gemv = GemvMaxTokens(w.format);
  const bool gemv = path == LinearPath::kGemv || (path == LinearPath::kAuto && n <= max_gemv);
  if (!gemv) {
    Gemm(x, n, w, bias, y, ldy, scratch);
    return;
  }
  const float* xin = x;
  if (w.perm != nullptr) {
    QB_CUDA_REQUIRE(scratch.act != nullptr && scratch.act_bytes >= static_cast<size_t>(n * w.cols * 4),
                    "Linear: activation scratch too small for a permutation");
    GatherConvert<float>(x, n, w.cols, w.perm, scratch.act);
    xin = static_cast<const float*>(scratch.act);
  }
  for (int64_t t0 = 0; t0 < n; t0 += max_gemv) {
    const int64_t nt = n - t0 < max_gemv ? n - t0 : max_gemv;
    if (w.format == WeightFormat::kInt4Mma)
      GemvInt4Mma(w, xin + t0 * w.cols, nt, bias, y + t0 * ldy, ldy);
    else if (w.format == WeightFormat::kInt4)
      GemvInt4(w, xin + t0 * w.cols, nt, bias, y + t0 * ldy, ldy);
    else
      GemvFloat(w, xin + t0 * w.cols, nt, bias, y + t0 * ldy, ldy);
  }
}

}  // namespace qb::cuda
