// Helpers for the CUDA tests: skipping without a GPU, random host data, device round trips,
// poisoned outputs and the relative-error metric every comparison uses.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kernels/cuda/cuda_api.h"
#include "tensor/tensor.h"

namespace qb::test {

bool HaveCudaDevice();

// Skips the test when no device is present (ctest on machines without a GPU stays green).
#define QB_REQUIRE_CUDA()                                                        \
  do {                                                                           \
    if (!::qb::test::HaveCudaDevice()) GTEST_SKIP() << ::qb::cuda::NoDeviceReason();     \
    ::qb::cuda::Initialize();                                                    \
  } while (0)

std::vector<float> RandomFloats(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f);

// A CPU tensor with random values in [-scale, scale], rounded to `dtype` (f32, f16, bf16).
Tensor RandomTensor(DType dtype, Shape shape, uint32_t seed, float scale = 1.f);

// Device copy of a host array / of a CPU tensor's bytes (owned by the returned buffer).
template <typename T>
cuda::DeviceBuffer ToDevice(const std::vector<T>& v) {
  cuda::DeviceBuffer b(v.size() * sizeof(T));
  cuda::CopyToDevice(b.get(), v.data(), v.size() * sizeof(T));
  return b;
}
cuda::DeviceBuffer ToDevice(const Tensor& t);
// A device buffer of `count` floats filled with NaN bytes (0xFF), so unwritten outputs show.
cuda::DeviceBuffer Poisoned(size_t count);
std::vector<float> ToHost(const cuda::DeviceBuffer& b, size_t count);

// ||got - ref|| / ||ref|| (and 0 when both are 0); NaN anywhere gives +inf.
double RelError(const float* got, const float* ref, size_t n);
inline double RelError(const std::vector<float>& got, const std::vector<float>& ref) {
  return got.size() == ref.size() ? RelError(got.data(), ref.data(), got.size()) : 1e30;
}
std::vector<float> ToVector(const Tensor& f32);

}  // namespace qb::test
