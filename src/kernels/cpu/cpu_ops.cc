#include "kernels/cpu/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <cstdlib>
#include <string_view>

#include "kernels/cpu/linear_kernels.h"
#include "tensor/dequantize.h"
#include "util/check.h"

namespace qb::kernels::cpu {

namespace {

// QB_AVX512_256=1 keeps the AVX-512 VNNI kernels to 256-bit vectors (for comparison, or for
// CPUs whose clock drops under 512-bit vectors, as older Xeons' did).
bool Avx512Wide() {
  static const bool wide = [] {
    const char* e = std::getenv("QB_AVX512_256");
    return e == nullptr || std::string_view(e) != "1";
  }();
  return wide;
}

const CpuKernels& KernelsFor(Isa isa) {
  if (isa >= Isa::kAvx512Bf16) return Avx512Bf16CpuKernels(Avx512Wide());
  if (isa >= Isa::kAvx512Vnni) return Avx512VnniCpuKernels(Avx512Wide());
  return isa >= Isa::kAvx2 ? Avx2CpuKernels() : ScalarCpuKernels();
}

void ParallelFor(const ExecContext& ctx, int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1) {
  if (ctx.pool != nullptr) ctx.pool->ParallelFor(n, fn, grain);
  else if (n > 0) fn(0, n);
}

void ParallelForStealing(const ExecContext& ctx, int64_t n, const std::function<void(int64_t)>& fn) {
  if (ctx.pool != nullptr) ctx.pool->ParallelForStealing(n, fn);
  else
    for (int64_t i = 0; i < n; ++i) fn(i);
}

void ParallelForDynamic(const ExecContext& ctx, int64_t n, const std::function<void(int64_t)>& fn) {
  if (ctx.pool != nullptr) ctx.pool->ParallelForDynamic(n, fn);
  else
    for (int64_t i = 0; i < n; ++i) fn(i);
}

QuantDot QuantKernel(const CpuKernels& k, DType t) {
  switch (t) {
    case DType::kQ8_0: return k.q8_0;
    case DType::kQ4_0: return k.q4_0;
    case DType::kQ4Z: return k.q4z;
    case DType::kQ4_1: return k.q4_1;
    case DType::kQ5_0: return k.q5_0;
    case DType::kQ5_1: return k.q5_1;
    case DType::kIq4Nl: return k.iq4_nl;
    default: return nullptr;
  }
}

QuantDotK QuantKernelK(const CpuKernels& k, DType t) {
  switch (t) {
    case DType::kQ4_K: return k.q4_k;
    case DType::kQ6_K: return k.q6_k;
    case DType::kQ2_K: return k.q2_k;
    case DType::kQ3_K: return k.q3_k;
    case DType::kQ5_K: return k.q5_k;
    default: return nullptr;
  }
}

QuantDot8 QuantKernel8(const CpuKernels& k, DType t) {
  switch (t) {
    case DType::kQ4_0x8: return k.q4_0x8;
    case DType::kQ8_0x8: return k.q8_0x8;
    case DType::kQ5_0x8: return k.q5_0x8;
    case DType::kQ5_1x8: return k.q5_1x8;
    case DType::kIq4Nlx8: return k.iq4_nlx8;
    default: return nullptr;
  }
}

QuantDot32 QuantKernel32(const CpuKernels& k, DType t) {
  switch (t) {
    case DType::kQ4_0x8: return k.q4_0x32;
    case DType::kQ8_0x8: return k.q8_0x32;
    default: return nullptr;
  }
}

QuantDotK8 QuantKernelK8(const CpuKernels& k, DType t) {
  switch (t) {
    case DType::kQ2_Kx8: return k.q2_kx8;
    case DType::kQ3_Kx8: return k.q3_kx8;
    case DType::kQ4_Kx8: return k.q4_kx8;
    case DType::kQ5_Kx8: return k.q5_kx8;
    case DType::kQ6_Kx8: return k.q6_kx8;
    default: return nullptr;
  }
}

// Converts every token's activations once (to 8-bit blocks, or to bf16), in parallel over tokens,
// into a per-thread buffer: `per_token` Acts a token.
template <typename Act>
const Act* ConvertActivations(const ExecContext& ctx, const float* x, int64_t n, int64_t in, int64_t per_token,
                              void (*convert)(const float*, int64_t, Act*)) {
  thread_local std::vector<Act> acts;
  acts.resize(static_cast<size_t>(n * per_token));
  Act* a = acts.data();
  ParallelFor(ctx, n, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) convert(x + t * in, in, a + t * per_token);
  });
  return a;
}

// Output rows are cut into tiles that threads take as they become free. A tile's weights stay in
// cache while every group of up to kMaxTokens tokens passes over it; up to `rows_per_call` rows
// (1; kFloatRows for float weights; 8 or 32 for the interleaved layouts) come out of one micro-kernel
// call as res[token * rows_per_call + row]. call(first_row, rows, tokens_ptrs, nt, res) runs the
// micro-kernel; `rows` is less than rows_per_call only at the end of the matrix.
// With kDirect, call(first_row, rows, tokens_ptrs, nt, dst, dst_stride, prefetch, prefetch_step)
// writes token j's rows straight into dst[j * dst_stride + row] (the output itself: no copy), and
// the bias is added there. Given `weights` (kDirect only; rows contiguous, each act_stride blocks
// of the kernel's loop), a tile that gets several passes has the next tile's bytes prefetched
// during its own: each call is handed its share, `prefetch_step` bytes for each of its blocks.
template <bool kDirect = false, typename In, typename Call>
void RowTiles(const ExecContext& ctx, const In* acts, int64_t act_stride, int64_t n, int64_t out, int64_t row_bytes,
              int rows_per_call, const float* bias, float* y, Call call, const uint8_t* weights = nullptr) {
  QB_CHECK(kDirect || rows_per_call <= 8, "RowTiles: {} rows a call need kDirect", rows_per_call);
  QB_CHECK(kDirect || weights == nullptr, "RowTiles: prefetching needs kDirect");
  // Decode (few tokens) is bound by reading weights: small tiles split it evenly. Prefill
  // reuses each tile for many tokens: tiles sized for L2, taken dynamically (or, when the next
  // tile is prefetched, in order from each thread's range).
  const int64_t tile_bytes = n <= kMaxTokens ? 16 * 1024 : 64 * 1024;
  int64_t tile = std::clamp<int64_t>(tile_bytes / std::max<int64_t>(row_bytes, 1), 4, 256);
  if (n > kMaxTokens && ctx.pool != nullptr) {
    // At least 8 tiles a thread: a thread that takes the last tile leaves the others waiting
    // for at most one small tile (a 32-sequence decode step issues ~100 such jobs a layer).
    const int64_t balanced = out / (8 * static_cast<int64_t>(ctx.pool->size()));
    tile = std::min(tile, balanced);
  }
  tile = std::max<int64_t>(rows_per_call, tile / rows_per_call * rows_per_call);
  const int64_t n_tiles = (out + tile - 1) / tile;
  // Several passes over a tile (more tokens than a call takes): without help the first pass
  // waits on memory for every line. Each call fetches its share of the next tile a line or two
  // a block (rows are contiguous, and each thread walks its own range of tiles front to back,
  // so the next tile is usually its own); in bursts between calls the prefetches stalled.
  const int64_t passes = (n + kMaxTokens - 1) / kMaxTokens;
  const bool prefetch = weights != nullptr && passes > 1 && act_stride > 0;
  int64_t prefetch_step = 0;  // bytes a block of each call (0: no prefetching)
  if (prefetch) {
    const int64_t calls_per_tile = passes * ((tile + rows_per_call - 1) / rows_per_call);
    const int64_t call_lines = (tile * row_bytes / 64 + calls_per_tile - 1) / calls_per_tile;
    prefetch_step = (call_lines + act_stride - 1) / act_stride * 64;
  }
  auto body = [&](int64_t ti) {
    const In* ptrs[kMaxTokens];
    [[maybe_unused]] float res[kMaxTokens * 8];  // (kDirect: unused)
    const int64_t r0 = ti * tile, r1 = std::min(out, r0 + tile);
    // The bytes of the next tile not yet handed to a call: [next, next + left).
    const uint8_t* next = prefetch ? weights + r1 * row_bytes : nullptr;
    int64_t left = prefetch ? (std::min(out, r1 + tile) - r1) * row_bytes : 0;
    for (int64_t t0 = 0; t0 < n; t0 += kMaxTokens) {
      const int nt = static_cast<int>(std::min<int64_t>(kMaxTokens, n - t0));
      for (int j = 0; j < nt; ++j) ptrs[j] = acts + (t0 + j) * act_stride;
      for (int64_t r = r0; r < r1; r += rows_per_call) {
        const int nr = static_cast<int>(std::min<int64_t>(rows_per_call, r1 - r));
        if constexpr (kDirect) {
          const int64_t step = prefetch ? std::min(prefetch_step, left / act_stride / 64 * 64) : 0;
          call(r, nr, ptrs, nt, y + t0 * out + r, out, step > 0 ? next : nullptr, step);
          if (step > 0) {
            next += step * act_stride;
            left -= step * act_stride;
          }
        } else {
          call(r, nr, ptrs, nt, res);
          for (int j = 0; j < nt; ++j) {
            float* yt = y + (t0 + j) * out + r;
            const float* rt = res + j * rows_per_call;
            if (bias != nullptr)
              for (int i = 0; i < nr; ++i) yt[i] = rt[i] + bias[r + i];
            else
              for (int i = 0; i < nr; ++i) yt[i] = rt[i];
          }
        }
      }
    }
    // The bias once the tile is written (adding it right after each call read back the
    // kernel's wide stores through narrow loads, which stalled on store forwarding).
    if (kDirect && bias != nullptr)
      for (int64_t t = 0; t < n; ++t) {
        float* yt = y + t * out;
        for (int64_t i = r0; i < r1; ++i) yt[i] += bias[i];
      }
  };
  if (n <= kMaxTokens || prefetch) {
    // One contiguous range per thread keeps the hardware prefetcher streaming; a thread done
    // early takes tiles from the end of the other's range.
    ParallelForStealing(ctx, n_tiles, body);
  } else {
    ParallelForDynamic(ctx, n_tiles, body);
  }
}

FloatDot FloatKernel(const CpuKernels& k, DType t) {
  switch (t) {
    case DType::kF32: return k.f32;
    case DType::kF16: return k.f16;
    case DType::kBF16: return k.bf16;
    default: return nullptr;
  }
}

}  // namespace

void Linear(const ExecContext& ctx, const float* x, int64_t n, int64_t in, const void* w, DType w_type, int64_t out,
            const float* bias, float* y) {
  const CpuKernels& k = KernelsFor(ctx.isa);
  const int64_t row_bytes = RowBytes(w_type, in);
  const auto* wb = static_cast<const uint8_t*>(w);

  if (QuantDotK8 k8 = QuantKernelK8(k, w_type)) {  // interleaved K-quants: 8 rows per kernel call
    const ActBlockK* a = ConvertActivations(ctx, x, n, in, in / 256, k.quantize_k);
    RowTiles(ctx, a, in / 256, n, out, row_bytes, 8, bias, y,
             [&](int64_t r, int, const ActBlockK* const* p, int nt, float* res) { k8(wb + r * row_bytes, p, nt, in, res); });
    return;
  }
  // Four interleaved groups (32 rows) a kernel call, for more than one call's tokens (prefill,
  // batched decode): each tile then stays in cache for several passes, where wider calls halve
  // the activation loads and the per-block float work. Decode streams the weights from memory
  // once, and there four groups' interleaved reads (four streams a call) gain nothing. Both
  // compute bit-identical results, so batching never changes a token's logits.
  QuantDot32 k32 = n > kMaxTokens ? QuantKernel32(k, w_type) : nullptr;
  if (k32 != nullptr) {
    const QuantDot8 k8 = QuantKernel8(k, w_type);
    const ActBlock* a = ConvertActivations(ctx, x, n, in, in / 32, k.quantize);
    RowTiles<true>(ctx, a, in / 32, n, out, row_bytes, 32, bias, y,
                   [&](int64_t r, int nr, const ActBlock* const* p, int nt, float* dst, int64_t stride,
                       const uint8_t* prefetch, int64_t prefetch_step) {
                     if (nr == 32)
                       return k32(wb + r * row_bytes, 8 * row_bytes, p, nt, in, dst, stride, prefetch, prefetch_step);
                     for (int g = 0; g < nr / 8; ++g) {  // the last 8, 16 or 24 rows of the matrix
                       float part[kMaxTokens * 8];
                       k8(wb + (r + 8 * g) * row_bytes, p, nt, in, part);
                       for (int t = 0; t < nt; ++t) std::copy_n(part + 8 * t, 8, dst + t * stride + 8 * g);
                     }
                   },
                   wb);
    return;
  }
  if (QuantDot8 k8 = QuantKernel8(k, w_type)) {  // interleaved: 8 rows per kernel call
    const ActBlock* a = ConvertActivations(ctx, x, n, in, in / 32, k.quantize);
    RowTiles(ctx, a, in / 32, n, out, row_bytes, 8, bias, y,
             [&](int64_t r, int, const ActBlock* const* p, int nt, float* res) { k8(wb + r * row_bytes, p, nt, in, res); });
    return;
  }
  if (QuantDot qk = QuantKernel(k, w_type)) {
    const ActBlock* a = ConvertActivations(ctx, x, n, in, in / 32, k.quantize);
    RowTiles(ctx, a, in / 32, n, out, row_bytes, 1, bias, y,
             [&](int64_t r, int, const ActBlock* const* p, int nt, float* res) { qk(wb + r * row_bytes, p, nt, in, res); });
    return;
  }
  if (QuantDotK qk = QuantKernelK(k, w_type)) {
    const ActBlockK* a = ConvertActivations(ctx, x, n, in, in / 256, k.quantize_k);
    RowTiles(ctx, a, in / 256, n, out, row_bytes, 1, bias, y,
             [&](int64_t r, int, const ActBlockK* const* p, int nt, float* res) { qk(wb + r * row_bytes, p, nt, in, res); });
    return;
  }
  if (w_type == DType::kBF16 && k.bf16_bf16 != nullptr && in % 32 == 0) {  // vdpbf16ps on bf16 activations
    const uint16_t* a = ConvertActivations(ctx, x, n, in, in, k.to_bf16);
    RowTiles(ctx, a, in, n, out, row_bytes, kFloatRows, bias, y,
             [&](int64_t r, int nr, const uint16_t* const* p, int nt, float* res) {
               k.bf16_bf16(wb + r * row_bytes, row_bytes, nr, p, nt, in, res);
             });
    return;
  }
  QB_CHECK(Info(w_type).row_group == 1, "Linear: no CPU kernel for {} weights", Name(w_type));
  FloatDot fk = FloatKernel(in % 8 == 0 ? k : ScalarCpuKernels(), w_type);
  QB_CHECK(fk != nullptr, "Linear: no CPU kernel for {} weights", Name(w_type));
  RowTiles(ctx, x, in, n, out, row_bytes, kFloatRows, bias, y, [&](int64_t r, int nr, const float* const* p, int nt, float* res) {
    fk(wb + r * row_bytes, row_bytes, nr, p, nt, in, res);
  });
}

void Attention(const ExecContext& ctx, const float* q, int64_t n, int64_t n_heads, int64_t n_kv_heads,
               int64_t head_dim, const void* k, const void* v, DType kv_type, const int32_t* rows,
               const int64_t* row_start, const int32_t* positions, int64_t kv_stride, int64_t head_offset,
               float scale, float* out) {
  const CpuKernels& kk = KernelsFor(ctx.isa);
  const int64_t group = n_heads / n_kv_heads, q_stride = n_heads * head_dim;
  // Chunks of up to `per_chunk` consecutive tokens of one sequence: with a run kernel their
  // query heads share every key tile. Work units are (chunk, kv head), the last chunks first (a
  // prompt's last tokens see the most keys).
  const bool runs = kk.attend_run != nullptr && head_dim % 64 == 0 && head_dim <= 256 &&
                    group <= kk.attend_run_max_rows;
  const int64_t per_chunk = runs ? std::min<int64_t>(16, kk.attend_run_max_rows / group) : 1;
  std::vector<int64_t> first{0};
  for (int64_t t = 1; t < n; ++t)
    if (row_start[t] != row_start[t - 1] || positions[t] != positions[t - 1] + 1 || t - first.back() >= per_chunk)
      first.push_back(t);
  const auto n_chunks = static_cast<int64_t>(first.size());
  first.push_back(n);
  // A unit of decode (one token over ~100 keys) is short, and the frame prefetches each tile
  // during the one before it, so a unit's first tile would wait on memory. So each thread walks
  // its own range of units in order (stealing at the end) and, before a unit, prefetches the
  // first key tile of its next one.
  const int64_t kv_row_bytes = RowBytes(kv_type, head_dim);
  auto kv_row = [&](const void* base, int64_t row, int64_t offset) {
    return static_cast<const char*>(base) + RowBytes(kv_type, row * kv_stride + offset);
  };
  const int64_t n_units = n_chunks * n_kv_heads;
  auto prefetch_unit = [&](int64_t u) {
    if (u >= n_units) return;
    const int64_t c = n_chunks - 1 - u / n_kv_heads, offset = (u % n_kv_heads) * head_offset;
    const int64_t t0 = first[static_cast<size_t>(c)];
    const int32_t* unit_rows = rows + row_start[t0];
    const int64_t n_keys = std::min<int64_t>(positions[t0] + 1, 32);
    for (int64_t j = 0; j < n_keys; ++j) {
      const char* kr = kv_row(k, unit_rows[j], offset);
      const char* vr = kv_row(v, unit_rows[j], offset);
      for (int64_t b = 0; b < kv_row_bytes; b += 64) {
        __builtin_prefetch(kr + b, 0, 2);
        __builtin_prefetch(vr + b, 0, 2);
      }
    }
  };
  const int64_t head_q = group * head_dim;  // a token's queries of one kv head
  auto unit = [&](int64_t u) {
    thread_local std::vector<float> scratch, q_rounded;
    const int64_t c = n_chunks - 1 - u / n_kv_heads, kvh = u % n_kv_heads, h0 = kvh * group;
    const int64_t t0 = first[static_cast<size_t>(c)], m = first[static_cast<size_t>(c) + 1] - t0;
    prefetch_unit(u + 1);
    // The unit's queries (token i's at uq + i * uq_stride): a q8_0 cache meets them rounded to
    // q8_0 (dequantize.h), on every path alike.
    const float* uq = q + t0 * q_stride + h0 * head_dim;
    int64_t uq_stride = q_stride;
    if (kv_type == DType::kQ8_0) {
      q_rounded.resize(static_cast<size_t>(m * head_q));
      for (int64_t i = 0; i < m; ++i) RoundRowQ8_0(uq + i * q_stride, q_rounded.data() + i * head_q, head_q);
      uq = q_rounded.data();
      uq_stride = head_q;
    }
    if (runs) {
      scratch.resize(static_cast<size_t>(m * head_q));
      kk.attend_run(uq, uq_stride, m, group, k, v, kv_type, rows + row_start[t0], positions[t0] + 1, kv_stride,
                    kvh * head_offset, head_dim, scale, scratch.data(), out + t0 * q_stride + h0 * head_dim, q_stride);
      return;
    }
    for (int64_t i = 0; i < m; ++i) {
      const int64_t t = t0 + i, n_keys = positions[t] + 1;
      scratch.resize(static_cast<size_t>(group * n_keys));
      kk.attend(uq + i * uq_stride, group, k, v, kv_type, rows + row_start[t], n_keys, kv_stride, kvh * head_offset,
                head_dim, scale, scratch.data(), out + t * q_stride + h0 * head_dim);
    }
  };
  ParallelForStealing(ctx, n_units, unit);
}

void ToF16(const ExecContext& ctx, const float* x, int64_t n, uint16_t* out) { KernelsFor(ctx.isa).to_f16(x, n, out); }

namespace {

void RmsNormRow(const float* xt, int64_t d, const float* weight, float eps, float* yt) {
  float part[8] = {};  // eight running sums (vectorized; one would be a chain of dependent adds)
  int64_t i = 0;
  for (; i + 8 <= d; i += 8)
    for (int j = 0; j < 8; ++j) part[j] += xt[i + j] * xt[i + j];
  float ss = 0.f;
  for (; i < d; ++i) ss += xt[i] * xt[i];
  for (int j = 0; j < 8; ++j) ss += part[j];
  const float inv = 1.f / std::sqrt(ss / static_cast<float>(d) + eps);
  for (i = 0; i < d; ++i) yt[i] = xt[i] * inv * weight[i];
}

// RoPE angles of one position: cs/sn [half] (cos and sin times attention_scale).
void RopeAngles(int32_t position, int64_t half, const float* inv_freq, float attention_scale, float* cs, float* sn) {
  for (int64_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(position) * inv_freq[i];
    cs[i] = static_cast<float>(std::cos(angle) * attention_scale);
    sn[i] = static_cast<float>(std::sin(angle) * attention_scale);
  }
}

// Rotates `count` consecutive heads in place.
void RotateHeads(float* rows, int64_t count, int64_t head_dim, const float* cs, const float* sn) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < count; ++h) {
    float* v = rows + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const float a = v[i], c = v[i + half];
      v[i] = a * cs[i] - c * sn[i];
      v[i + half] = c * cs[i] + a * sn[i];
    }
  }
}

}  // namespace

// Tokens split across the threads (serial, the norms and rotations of a 32-sequence batch were
// a tenth of a decode step with the second thread idle).
void RmsNorm(const ExecContext& ctx, const float* x, int64_t n, int64_t d, const float* weight, float eps, float* y) {
  ParallelFor(ctx, n, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) RmsNormRow(x + t * d, d, weight, eps, y + t * d);
  });
}

void AddRmsNorm(const ExecContext& ctx, float* x, const float* delta, int64_t n, int64_t d, const float* weight,
                float eps, float* y) {
  ParallelFor(ctx, n, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      float* xt = x + t * d;
      const float* dt = delta + t * d;
      for (int64_t i = 0; i < d; ++i) xt[i] += dt[i];
      RmsNormRow(xt, d, weight, eps, y + t * d);
    }
  });
}

void SplitRopeKv(const ExecContext& ctx, const float* qkv, int64_t n, int64_t heads, int64_t kv_heads, int64_t head_dim,
                 const int32_t* positions, const float* inv_freq, float attention_scale, float* q,
                 const std::function<void(int64_t t, const float* k, const float* v)>& store) {
  const int64_t half = head_dim / 2, q_dim = heads * head_dim, kv_dim = kv_heads * head_dim;
  const int64_t width = q_dim + 2 * kv_dim;
  ParallelFor(ctx, n, [&](int64_t b, int64_t e) {
    std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half)), k(static_cast<size_t>(kv_dim));
    for (int64_t t = b; t < e; ++t) {
      const float* row = qkv + t * width;
      RopeAngles(positions[t], half, inv_freq, attention_scale, cs.data(), sn.data());
      float* qt = q + t * q_dim;
      std::memcpy(qt, row, static_cast<size_t>(q_dim) * sizeof(float));
      RotateHeads(qt, heads, head_dim, cs.data(), sn.data());
      std::memcpy(k.data(), row + q_dim, static_cast<size_t>(kv_dim) * sizeof(float));
      RotateHeads(k.data(), kv_heads, head_dim, cs.data(), sn.data());
      store(t, k.data(), row + q_dim + kv_dim);
    }
  });
}

void Rope(const ExecContext& ctx, float* x, int64_t heads, float* x2, int64_t heads2, int64_t n, int64_t head_dim,
          const int32_t* positions, const float* inv_freq, float attention_scale) {
  const int64_t half = head_dim / 2;
  ParallelFor(ctx, n, [&](int64_t b, int64_t e) {
    std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
    for (int64_t t = b; t < e; ++t) {
      RopeAngles(positions[t], half, inv_freq, attention_scale, cs.data(), sn.data());
      RotateHeads(x + t * heads * head_dim, heads, head_dim, cs.data(), sn.data());
      if (x2 != nullptr) RotateHeads(x2 + t * heads2 * head_dim, heads2, head_dim, cs.data(), sn.data());
    }
  });
}

void SiluMul(const ExecContext& ctx, const float* gate, const float* up, int64_t count, float* out) {
  const CpuKernels& k = KernelsFor(ctx.isa);
  ParallelFor(ctx, count, [&](int64_t b, int64_t e) { k.silu_mul(gate + b, up + b, e - b, out + b); }, 256);
}

// The same ranges as SiluMul's over the n x d outputs (so the same elements meet the same code
// path: bit-identical), each cut where a row ends.
void SiluMulJoined(const ExecContext& ctx, const float* gate_up, int64_t n, int64_t d, float* out) {
  const CpuKernels& k = KernelsFor(ctx.isa);
  ParallelFor(
      ctx, n * d,
      [&](int64_t b, int64_t e) {
        while (b < e) {
          const int64_t t = b / d, i = b % d, len = std::min(e - b, d - i);
          k.silu_mul(gate_up + t * 2 * d + i, gate_up + t * 2 * d + d + i, len, out + t * d + i);
          b += len;
        }
      },
      256);
}

}  // namespace qb::kernels::cpu
