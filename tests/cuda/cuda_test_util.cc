#include "cuda/cuda_test_util.h"

#include <cmath>
#include <random>

#include "tensor/dequantize.h"

namespace qb::test {

bool HaveCudaDevice() { return cuda::DeviceCount() > 0; }

std::vector<float> RandomFloats(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

Tensor RandomTensor(DType dtype, Shape shape, uint32_t seed, float scale) {
  Tensor t = Tensor::Empty(dtype, std::move(shape));
  const std::vector<float> v = RandomFloats(static_cast<size_t>(t.numel()), seed, -scale, scale);
  QuantizeRow(dtype, v.data(), t.mutable_raw(), t.numel());
  return t;
}

cuda::DeviceBuffer ToDevice(const Tensor& t) {
  cuda::DeviceBuffer b(t.nbytes());
  cuda::CopyToDevice(b.get(), t.raw(), t.nbytes());
  return b;
}

cuda::DeviceBuffer Poisoned(size_t count) {
  cuda::DeviceBuffer b(count * sizeof(float));
  cuda::MemsetAsync(b.get(), 0xFF, count * sizeof(float));
  return b;
}

std::vector<float> ToHost(const cuda::DeviceBuffer& b, size_t count) {
  std::vector<float> v(count);
  cuda::CopyToHost(v.data(), b.get(), count * sizeof(float));
  return v;
}

double RelError(const float* got, const float* ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    const double d = static_cast<double>(got[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  if (den == 0) return num == 0 ? 0 : INFINITY;
  return std::sqrt(num / den);
}

std::vector<float> ToVector(const Tensor& f32) {
  QB_CHECK(f32.dtype() == DType::kF32 && f32.device() == Device::kCpu, "ToVector: a CPU f32 tensor");
  return {f32.data<float>(), f32.data<float>() + f32.numel()};
}

}  // namespace qb::test
