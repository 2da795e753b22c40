// Portable versions of the Linear micro-kernels: the same arithmetic as the SIMD ones (integer
// block sums, one float multiply-add per block) in plain C++.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/linear_kernels.h"
#include "tensor/dequantize_gguf.h"
#include "tensor/quant_blocks.h"
#include "util/half.h"

namespace qb::kernels::cpu {

const float* const kF16ToF32Table = [] {
  auto* t = new float[65536];
  for (uint32_t i = 0; i < 65536; ++i) t[i] = F16ToF32(static_cast<uint16_t>(i));
  return t;
}();

namespace {

void Quantize(const float* x, int64_t n, ActBlock* out) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* v = x + b * 32;
    float amax = 0.f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(v[i]));
    const float d = amax / 127.f;
    const float inv = d > 0.f ? 1.f / d : 0.f;
    ActBlock& a = out[b];
    a.d = d;
    int s[2] = {0, 0};
    for (int i = 0; i < 32; ++i) {
      a.q[i] = static_cast<int8_t>(std::nearbyint(v[i] * inv));
      s[i / 16] += a.q[i];
    }
    a.ds16[0] = d * static_cast<float>(s[0]);
    a.ds16[1] = d * static_cast<float>(s[1]);
    a.qsum = s[0] + s[1];
    a.neg8_qsum = -8 * a.qsum;
    a.neg128_qsum = -128 * a.qsum;
  }
}

void DotQ8_0(const void* row, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  const auto* w = static_cast<const BlockQ8_0*>(row);
  for (int t = 0; t < nt; ++t) {
    float acc = 0.f;
    for (int64_t b = 0; b < n / 32; ++b) {
      int s = 0;
      for (int i = 0; i < 32; ++i) s += w[b].qs[i] * acts[t][b].q[i];
      acc += F16ToF32(w[b].d) * acts[t][b].d * static_cast<float>(s);
    }
    out[t] = acc;
  }
}

void DotQ4_0(const void* row, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  const auto* w = static_cast<const BlockQ4_0*>(row);
  for (int t = 0; t < nt; ++t) {
    float acc = 0.f;
    for (int64_t b = 0; b < n / 32; ++b) {
      const ActBlock& a = acts[t][b];
      int s = 0;
      for (int i = 0; i < 16; ++i) s += ((w[b].qs[i] & 15) - 8) * a.q[i] + ((w[b].qs[i] >> 4) - 8) * a.q[i + 16];
      acc += F16ToF32(w[b].d) * a.d * static_cast<float>(s);
    }
    out[t] = acc;
  }
}

void DotQ4Z(const void* row, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  const auto* w = static_cast<const BlockQ4Z*>(row);
  for (int t = 0; t < nt; ++t) {
    float acc = 0.f;
    for (int64_t b = 0; b < n / 32; ++b) {
      const ActBlock& a = acts[t][b];
      int s = 0;
      for (int i = 0; i < 16; ++i) s += (w[b].qs[i] & 15) * a.q[i] + (w[b].qs[i] >> 4) * a.q[i + 16];
      const float dw = F16ToF32(w[b].d);
      acc += dw * a.d * static_cast<float>(s) - dw * static_cast<float>(w[b].z) * (a.ds16[0] + a.ds16[1]);
    }
    out[t] = acc;
  }
}

void QuantizeK(const float* x, int64_t n, ActBlockK* out) {
  for (int64_t b = 0; b < n / 256; ++b) {
    const float* v = x + b * 256;
    float amax = 0.f;
    for (int i = 0; i < 256; ++i) amax = std::max(amax, std::fabs(v[i]));
    const float d = amax / 127.f;
    const float inv = d > 0.f ? 1.f / d : 0.f;
    ActBlockK& a = out[b];
    a.d = d;
    for (int j = 0; j < 16; ++j) {
      int s = 0;
      for (int i = 16 * j; i < 16 * j + 16; ++i) {
        a.q[i] = static_cast<int8_t>(std::nearbyint(v[i] * inv));
        s += a.q[i];
      }
      a.bsums[j] = static_cast<int16_t>(s);
    }
    for (int j = 0; j < 8; ++j) a.bsums32[j] = static_cast<int16_t>(a.bsums[2 * j] + a.bsums[2 * j + 1]);
  }
}


void DotQ4_K(const void* row, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
  const auto* w = static_cast<const BlockQ4_K*>(row);
  for (int t = 0; t < nt; ++t) {
    float acc = 0.f;
    for (int64_t b = 0; b < n / 256; ++b) {
      const ActBlockK& a = acts[t][b];
      int isum = 0, msum = 0;
      for (int s = 0; s < 8; ++s) {
        int sc, m;
        KQuantScaleMin(w[b].scales, s, &sc, &m);
        const uint8_t* q = w[b].qs + 32 * (s / 2);
        int dot = 0;
        for (int i = 0; i < 32; ++i) dot += ((s & 1) ? (q[i] >> 4) : (q[i] & 15)) * a.q[32 * s + i];
        isum += sc * dot;
        msum += m * (a.bsums[2 * s] + a.bsums[2 * s + 1]);
      }
      acc += a.d * (F16ToF32(w[b].d) * static_cast<float>(isum) - F16ToF32(w[b].dmin) * static_cast<float>(msum));
    }
    out[t] = acc;
  }
}

void DotQ6_K(const void* row, const ActBlockK* const* acts, int nt, int64_t n, float* out) {
  const auto* w = static_cast<const BlockQ6_K*>(row);
  for (int t = 0; t < nt; ++t) {
    float acc = 0.f;
    for (int64_t b = 0; b < n / 256; ++b) {
      const ActBlockK& a = acts[t][b];
      int isum = 0;
      for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = w[b].ql + 64 * h;
        const uint8_t* qh = w[b].qh + 32 * h;
        for (int g = 0; g < 4; ++g) {  // 32 values: elements 128h + 32g + l
          int part[2] = {0, 0};
          for (int l = 0; l < 32; ++l) {
            const uint8_t lo = g & 1 ? ql[l + 32] : ql[l];
            const int q = ((g < 2 ? lo & 15 : lo >> 4) | (((qh[l] >> (2 * g)) & 3) << 4)) - 32;
            part[l / 16] += q * a.q[128 * h + 32 * g + l];
          }
          isum += w[b].scales[8 * h + 2 * g] * part[0] + w[b].scales[8 * h + 2 * g + 1] * part[1];
        }
      }
      acc += a.d * F16ToF32(w[b].d) * static_cast<float>(isum);
    }
    out[t] = acc;
  }
}

template <typename Load>
void FloatDotT(const void* rows, int64_t stride, int nr, const float* const* xs, int nt, int64_t n, float* out,
               Load load) {
  for (int r = 0; r < nr; ++r) {
    const void* row = static_cast<const uint8_t*>(rows) + r * stride;
    for (int t = 0; t < nt; ++t) {
      float acc = 0.f;
      for (int64_t i = 0; i < n; ++i) acc += load(row, i) * xs[t][i];
      out[t * kFloatRows + r] = acc;
    }
  }
}

void DotF32(const void* rows, int64_t stride, int nr, const float* const* xs, int nt, int64_t n, float* out) {
  FloatDotT(rows, stride, nr, xs, nt, n, out, [](const void* r, int64_t i) { return static_cast<const float*>(r)[i]; });
}
void DotF16(const void* rows, int64_t stride, int nr, const float* const* xs, int nt, int64_t n, float* out) {
  FloatDotT(rows, stride, nr, xs, nt, n, out, [](const void* r, int64_t i) { return F16ToF32(static_cast<const uint16_t*>(r)[i]); });
}
void DotBF16(const void* rows, int64_t stride, int nr, const float* const* xs, int nt, int64_t n, float* out) {
  FloatDotT(rows, stride, nr, xs, nt, n, out, [](const void* r, int64_t i) { return BF16ToF32(static_cast<const uint16_t*>(r)[i]); });
}

void DotQ4_0x8(const void* group, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  const auto* w = static_cast<const BlockQ4_0x8*>(group);
  for (int t = 0; t < nt; ++t)
    for (int r = 0; r < 8; ++r) {
      float acc = 0.f;
      for (int64_t b = 0; b < n / 32; ++b) {
        const ActBlock& a = acts[t][b];
        int s = 0;
        for (int c = 0; c < 4; ++c)
          for (int k = 0; k < 4; ++k) {
            const uint8_t v = w[b].qs[32 * c + 4 * r + k];
            s += (v & 15) * a.q[4 * c + k] + (v >> 4) * a.q[16 + 4 * c + k];
          }
        const float dw = F16ToF32(w[b].d[r]);
        acc += dw * a.d * static_cast<float>(s) - 8.f * dw * (a.ds16[0] + a.ds16[1]);
      }
      out[t * 8 + r] = acc;
    }
}

void DotQ8_0x8(const void* group, const ActBlock* const* acts, int nt, int64_t n, float* out) {
  const auto* w = static_cast<const BlockQ8_0x8*>(group);
  for (int t = 0; t < nt; ++t)
    for (int r = 0; r < 8; ++r) {
      float acc = 0.f;
      for (int64_t b = 0; b < n / 32; ++b) {
        int s = 0;
        for (int c = 0; c < 8; ++c)
          for (int k = 0; k < 4; ++k) s += w[b].qs[32 * c + 4 * r + k] * acts[t][b].q[4 * c + k];
        acc += F16ToF32(w[b].d[r]) * acts[t][b].d * static_cast<float>(s);
      }
      out[t * 8 + r] = acc;
    }
}

float Dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void Axpy(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.f + std::exp(-gate[i])) * up[i];
}

void ToF16(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = F32ToF16(x[i]);
}

float ExpShifted(float* x, int64_t n) {
  float mx = -INFINITY, sum = 0.f;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  for (int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - mx));
  return sum;
}

float LoadKv(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::kF16: return F16ToF32(static_cast<const uint16_t*>(base)[i]);
    case DType::kBF16: return BF16ToF32(static_cast<const uint16_t*>(base)[i]);
    case DType::kQ8_0: {  // rows and heads start on block boundaries: element i is in block i / 32
      const BlockQ8_0& b = static_cast<const BlockQ8_0*>(base)[i / 32];
      return F16ToF32(b.d) * static_cast<float>(b.qs[i % 32]);
    }
    default: return static_cast<const float*>(base)[i];
  }
}

void AttendOne(const float* q, const void* k, const void* v, DType kv_type, const int32_t* rows, int64_t n_keys,
               int64_t stride, int64_t offset, int64_t head_dim, float scale, float* scores, float* out) {
  for (int64_t j = 0; j < n_keys; ++j) {
    const int64_t base = rows[j] * stride + offset;
    float s = 0.f;
    for (int64_t i = 0; i < head_dim; ++i) s += q[i] * LoadKv(k, kv_type, base + i);
    scores[j] = s * scale;
  }
  const float inv = 1.f / ExpShifted(scores, n_keys);
  std::fill(out, out + head_dim, 0.f);
  for (int64_t j = 0; j < n_keys; ++j) {
    const int64_t base = rows[j] * stride + offset;
    const float p = scores[j] * inv;
    for (int64_t i = 0; i < head_dim; ++i) out[i] += p * LoadKv(v, kv_type, base + i);
  }
}

void Attend(const float* q, int64_t n_q, const void* k, const void* v, DType kv_type, const int32_t* rows,
            int64_t n_keys, int64_t stride, int64_t offset, int64_t head_dim, float scale, float* scores, float* out) {
  for (int64_t h = 0; h < n_q; ++h)
    AttendOne(q + h * head_dim, k, v, kv_type, rows, n_keys, stride, offset, head_dim, scale, scores, out + h * head_dim);
}

}  // namespace

const CpuKernels& ScalarCpuKernels() {
  static const CpuKernels k = [] {
    CpuKernels v{Quantize, QuantizeK, DotQ8_0, DotQ4_0, DotQ4Z, DotQ4_K, DotQ6_K, DotQ4_0x8, DotQ8_0x8, DotF32, DotF16, DotBF16, Dot, Axpy, SiluMul, ExpShifted, Attend};
    v.to_f16 = ToF16;
    AddGgufScalarKernels(v);
    AddKQuantX8ScalarKernels(v);
    return v;
  }();
  return k;
}

}  // namespace qb::kernels::cpu
