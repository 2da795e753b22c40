#include "kernels/cpu/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/linear_kernels.h"
#include "util/check.h"

namespace qb::kernels::cpu {

namespace {

const CpuKernels& KernelsFor(Isa isa) { return isa >= Isa::kAvx2 ? Avx2CpuKernels() : ScalarCpuKernels(); }

void ParallelFor(const ExecContext& ctx, int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1) {
  if (ctx.pool != nullptr) ctx.pool->ParallelFor(n, fn, grain);
  else if (n > 0) fn(0, n);
}

QuantDot QuantKernel(const CpuKernels& k, DType t) {
  switch (t) {
    case DType::kQ8_0: return k.q8_0;
    case DType::kQ4_0: return k.q4_0;
    case DType::kQ4Z: return k.q4z;
    default: return nullptr;
  }
}

QuantDotK QuantKernelK(const CpuKernels& k, DType t) {
  switch (t) {
    case DType::kQ4_K: return k.q4_k;
    case DType::kQ6_K: return k.q6_k;
    default: return nullptr;
  }
}

// Rows of weights against quantized activations: activations quantized once (in parallel over
// tokens), then tiles of rows, each tile passed over by every group of up to kMaxTokens tokens.
template <typename Act, typename Kernel>
void QuantLinear(const ExecContext& ctx, const float* x, int64_t n, int64_t in, const uint8_t* wb, int64_t row_bytes,
                 int64_t out, int64_t tile, void (*quantize)(const float*, int64_t, Act*), Kernel kernel,
                 const std::function<void(int64_t, int64_t, float)>& store) {
  constexpr int64_t kBlock = sizeof(Act::q);
  const int64_t nb = in / kBlock;
  thread_local std::vector<Act> acts;
  acts.resize(static_cast<size_t>(n * nb));
  Act* a = acts.data();
  ParallelFor(ctx, n, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) quantize(x + t * in, in, a + t * nb);
  });
  ParallelFor(ctx, out, [&](int64_t rb, int64_t re) {
    const Act* ptrs[kMaxTokens];
    float res[kMaxTokens];
    for (int64_t r0 = rb; r0 < re; r0 += tile) {
      const int64_t r1 = std::min(re, r0 + tile);
      for (int64_t t0 = 0; t0 < n; t0 += kMaxTokens) {
        const int nt = static_cast<int>(std::min<int64_t>(kMaxTokens, n - t0));
        for (int j = 0; j < nt; ++j) ptrs[j] = a + (t0 + j) * nb;
        for (int64_t r = r0; r < r1; ++r) {
          kernel(wb + r * row_bytes, ptrs, nt, in, res);
          for (int j = 0; j < nt; ++j) store(t0 + j, r, res[j]);
        }
      }
    }
  }, 8);
}

FloatDot FloatKernel(const CpuKernels& k, DType t) {
  switch (t) {
    case DType::kF32: return k.f32;
    case DType::kF16: return k.f16;
    case DType::kBF16: return k.bf16;
    default: return nullptr;
  }
}

// Rows per tile: a tile of weight rows stays in cache while every token group passes over it.
int64_t RowTile(int64_t row_bytes) { return std::clamp<int64_t>(64 * 1024 / std::max<int64_t>(row_bytes, 1), 4, 256); }

}  // namespace

void Linear(const ExecContext& ctx, const float* x, int64_t n, int64_t in, const void* w, DType w_type, int64_t out,
            const float* bias, float* y) {
  const CpuKernels& k = KernelsFor(ctx.isa);
  const int64_t row_bytes = RowBytes(w_type, in);
  const auto* wb = static_cast<const uint8_t*>(w);
  const int64_t tile = RowTile(row_bytes);
  const std::function<void(int64_t, int64_t, float)> store = [&](int64_t t, int64_t r, float v) {
    y[t * out + r] = bias ? v + bias[r] : v;
  };

  if (Info(w_type).row_group == 8) {  // interleaved: 8 rows per kernel call
    const QuantDot8 k8 = w_type == DType::kQ4_0x8 ? k.q4_0x8 : k.q8_0x8;
    const int64_t nb = in / 32, groups = out / 8, group_bytes = 8 * row_bytes;
    thread_local std::vector<ActBlock> acts;
    acts.resize(static_cast<size_t>(n * nb));
    ActBlock* a = acts.data();
    ParallelFor(ctx, n, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) k.quantize(x + t * in, in, a + t * nb);
    });
    const int64_t gtile = std::max<int64_t>(1, tile / 8);
    ParallelFor(ctx, groups, [&](int64_t gb, int64_t ge) {
      const ActBlock* ptrs[kMaxTokens];
      float res[kMaxTokens * 8];
      for (int64_t g0 = gb; g0 < ge; g0 += gtile) {
        const int64_t g1 = std::min(ge, g0 + gtile);
        for (int64_t t0 = 0; t0 < n; t0 += kMaxTokens) {
          const int nt = static_cast<int>(std::min<int64_t>(kMaxTokens, n - t0));
          for (int j = 0; j < nt; ++j) ptrs[j] = a + (t0 + j) * nb;
          for (int64_t g = g0; g < g1; ++g) {
            k8(wb + g * group_bytes, ptrs, nt, in, res);
            for (int j = 0; j < nt; ++j)
              for (int r = 0; r < 8; ++r) store(t0 + j, g * 8 + r, res[j * 8 + r]);
          }
        }
      }
    });
    return;
  }
  if (QuantDot qk = QuantKernel(k, w_type)) {
    QuantLinear<ActBlock>(ctx, x, n, in, wb, row_bytes, out, tile, k.quantize, qk, store);
    return;
  }
  if (QuantDotK qk = QuantKernelK(k, w_type)) {
    QuantLinear<ActBlockK>(ctx, x, n, in, wb, row_bytes, out, tile, k.quantize_k, qk, store);
    return;
  }
  FloatDot fk = FloatKernel(in % 8 == 0 ? k : ScalarCpuKernels(), w_type);
  QB_CHECK(fk != nullptr, "Linear: no CPU kernel for {} weights", Name(w_type));
  ParallelFor(ctx, out, [&](int64_t rb, int64_t re) {
    const float* ptrs[kMaxTokens];
    float res[kMaxTokens];
    for (int64_t r0 = rb; r0 < re; r0 += tile) {
      const int64_t r1 = std::min(re, r0 + tile);
      for (int64_t t0 = 0; t0 < n; t0 += kMaxTokens) {
        const int nt = static_cast<int>(std::min<int64_t>(kMaxTokens, n - t0));
        for (int j = 0; j < nt; ++j) ptrs[j] = x + (t0 + j) * in;
        for (int64_t r = r0; r < r1; ++r) {
          fk(wb + r * row_bytes, ptrs, nt, in, res);
          for (int j = 0; j < nt; ++j) store(t0 + j, r, res[j]);
        }
      }
    }
  }, 8);
}

void Attention(const ExecContext& ctx, const float* q, int64_t n, int64_t n_heads, int64_t n_kv_heads,
               int64_t head_dim, const void* k, const void* v, DType kv_type, const int32_t* rows,
               const int64_t* offsets, float scale, float* out) {
  const CpuKernels& kk = KernelsFor(ctx.isa);
  const int64_t group = n_heads / n_kv_heads, q_stride = n_heads * head_dim, kv_stride = n_kv_heads * head_dim;
  ParallelFor(ctx, n * n_heads, [&](int64_t b, int64_t e) {
    std::vector<float> scores;
    for (int64_t th = b; th < e; ++th) {
      const int64_t t = th / n_heads, h = th % n_heads, kvh = h / group;
      const int64_t n_keys = offsets[t + 1] - offsets[t];
      scores.resize(static_cast<size_t>(n_keys));
      kk.attend(q + t * q_stride + h * head_dim, k, v, kv_type, rows + offsets[t], n_keys, kv_stride, kvh * head_dim,
                head_dim, scale, scores.data(), out + t * q_stride + h * head_dim);
    }
  });
}

void RmsNorm(const float* x, int64_t n, int64_t d, const float* weight, float eps, float* y) {
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x + t * d;
    float ss = 0.f;
    for (int64_t i = 0; i < d; ++i) ss += xt[i] * xt[i];
    const float inv = 1.f / std::sqrt(ss / static_cast<float>(d) + eps);
    float* yt = y + t * d;
    for (int64_t i = 0; i < d; ++i) yt[i] = xt[i] * inv * weight[i];
  }
}

void Rope(float* x, int64_t n, int64_t heads, int64_t head_dim, const int32_t* positions, const float* inv_freq,
          float attention_scale) {
  const int64_t half = head_dim / 2;
  std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(positions[t]) * inv_freq[i];
      cs[static_cast<size_t>(i)] = static_cast<float>(std::cos(angle) * attention_scale);
      sn[static_cast<size_t>(i)] = static_cast<float>(std::sin(angle) * attention_scale);
    }
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (t * heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * cs[static_cast<size_t>(i)] - b * sn[static_cast<size_t>(i)];
        v[i + half] = b * cs[static_cast<size_t>(i)] + a * sn[static_cast<size_t>(i)];
      }
    }
  }
}

void SiluMul(const ExecContext& ctx, const float* gate, const float* up, int64_t count, float* out) {
  const CpuKernels& k = KernelsFor(ctx.isa);
  ParallelFor(ctx, count, [&](int64_t b, int64_t e) { k.silu_mul(gate + b, up + b, e - b, out + b); }, 256);
}

}  // namespace qb::kernels::cpu
