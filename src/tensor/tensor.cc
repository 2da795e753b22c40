#include "tensor/tensor.h"

#include <cstdlib>
#include <cstring>
#include <functional>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace qb {

std::string ShapeToString(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

Tensor Tensor::View(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner,
                    Device device) {
  Tensor t = Shaped(dtype, std::move(shape), device);
  t.data_ = data;
  t.owner_ = std::move(owner);
  return t;
}

Tensor Tensor::Shaped(DType dtype, Shape shape, Device device) {
  Tensor t;
  t.dtype_ = dtype;
  t.device_ = device;
  t.shape_ = std::move(shape);
  QB_CHECK(t.cols() % Info(dtype).block_size == 0, "{} row of {} is not whole blocks", Name(dtype),
           t.cols());
  return t;
}

void Tensor::Own(void* p, std::function<void(const void*)> free) {
  data_ = p;
  owner_ = std::shared_ptr<const void>(p, std::move(free));
  writable_ = true;
}

Tensor Tensor::Empty(DType dtype, Shape shape, Device device) {
  DeviceAllocator* alloc = AllocatorFor(device);
  QB_CHECK(alloc != nullptr, "no {} support in this build", DeviceName(device));
  Tensor t = Shaped(dtype, std::move(shape), device);
  void* p = alloc->Allocate(t.nbytes());
  QB_CHECK(p != nullptr, "out of {} memory allocating {} bytes", DeviceName(device), t.nbytes());
  t.Own(p, [alloc](const void* q) { alloc->Free(const_cast<void*>(q)); });
  return t;
}

Tensor Tensor::Uninitialized(DType dtype, Shape shape) {
  Tensor t = Shaped(dtype, std::move(shape), Device::kCpu);
  void* p = AllocateCpu(t.nbytes());
  QB_CHECK(p != nullptr, "out of cpu memory allocating {} bytes", t.nbytes());
  t.Own(p, [](const void* q) { std::free(const_cast<void*>(q)); });
  return t;
}

Tensor Tensor::EmptyLongLived(DType dtype, Shape shape) {
  Tensor t = Shaped(dtype, std::move(shape), Device::kCpu);
  const size_t bytes = t.nbytes();
  void* p = AllocateMappedCpu(bytes);
  QB_CHECK(p != nullptr, "out of cpu memory allocating {} bytes", bytes);
  t.Own(p, [bytes](const void* q) { FreeMappedCpu(const_cast<void*>(q), bytes); });
  return t;
}

Tensor Tensor::Slice(int64_t begin, int64_t end) const {
  QB_CHECK(rank() >= 1 && 0 <= begin && begin <= end && end <= shape_[0], "slice [{}, {}) of {}",
           begin, end, ShapeToString(shape_));
  Tensor t = *this;
  const int64_t inner_bytes = rank() == 1 ? RowBytes(dtype_, 1) : static_cast<int64_t>(nbytes()) / shape_[0];
  QB_CHECK(rank() > 1 || Info(dtype_).block_size == 1, "cannot slice elements of a block type");
  t.shape_[0] = end - begin;
  t.data_ = static_cast<const uint8_t*>(data_) + begin * inner_bytes;
  return t;
}

Tensor Tensor::Reshape(Shape shape) const {
  Tensor t = *this;
  t.shape_ = std::move(shape);
  QB_CHECK(t.numel() == numel(), "reshape {} to {}", ShapeToString(shape_), ShapeToString(t.shape_));
  QB_CHECK(t.cols() % Info(dtype_).block_size == 0, "reshape splits {} blocks", Name(dtype_));
  return t;
}

Tensor Tensor::Copy() const {
  QB_CHECK(device_ == Device::kCpu, "Copy() from {} is not implemented", DeviceName(device_));
  Tensor t = Empty(dtype_, shape_, Device::kCpu);
  if (nbytes() > 0) std::memcpy(t.mutable_raw(), data_, nbytes());
  return t;
}

}  // namespace qb
