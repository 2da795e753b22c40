// Tensor: a typed, shaped view of memory on one device, row-major with the innermost dimension
// last (linear weights are [out_features, in_features]). Copying a Tensor copies the view, not
// the data; Copy() makes the cost visible.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "util/check.h"

namespace qb {

using Shape = std::vector<int64_t>;

std::string ShapeToString(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;

  // A read-only view of memory owned elsewhere; `owner` keeps that memory alive.
  static Tensor View(DType dtype, Shape shape, const void* data,
                     std::shared_ptr<const void> owner = nullptr, Device device = Device::kCpu);
  // New zero-filled memory on `device`. Fails a check if the device has no allocator.
  static Tensor Empty(DType dtype, Shape shape, Device device = Device::kCpu);
  // Likewise on the CPU, for a large tensor that lives as long as the model (weights made at
  // load): AllocateMappedCpu's memory (no memset pass, huge pages advised).
  static Tensor EmptyLongLived(DType dtype, Shape shape);
  // CPU memory left as it is (no memset pass), for scratch that is written in full before it is
  // read: a forward pass's activations and logits, allocated every step.
  static Tensor Uninitialized(DType dtype, Shape shape);

  bool defined() const { return data_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_[static_cast<size_t>(i < 0 ? rank() + i : i)]; }
  int64_t numel() const;
  int64_t cols() const { return shape_.empty() ? 1 : shape_.back(); }  // innermost dimension
  int64_t rows() const { return cols() == 0 ? 0 : numel() / cols(); }
  int64_t row_bytes() const { return RowBytes(dtype_, cols()); }
  size_t nbytes() const { return static_cast<size_t>(rows() * row_bytes()); }
  bool writable() const { return writable_; }

  const void* raw() const { return data_; }
  void* mutable_raw() const {
    QB_CHECK(writable_, "tensor {} is a read-only view", ShapeToString(shape_));
    return const_cast<void*>(data_);
  }
  template <typename T>
  const T* data() const {
    return static_cast<const T*>(data_);
  }
  template <typename T>
  T* mutable_data() const {
    return static_cast<T*>(mutable_raw());
  }
  // Row r (only for layouts whose rows are contiguous: not the interleaved ones).
  const void* row(int64_t r) const {
    QB_CHECK(Info(dtype_).row_group == 1, "row() of an interleaved {} tensor", Name(dtype_));
    return static_cast<const uint8_t*>(data_) + r * row_bytes();
  }

  // View of rows [begin, end) of the outermost dimension.
  Tensor Slice(int64_t begin, int64_t end) const;
  // Same data, another shape with the same number of elements and the same innermost blocks.
  Tensor Reshape(Shape shape) const;
  // A deep copy into new CPU memory.
  Tensor Copy() const;

 private:
  // A tensor of that type and shape with no memory yet (checks that rows are whole blocks).
  static Tensor Shaped(DType dtype, Shape shape, Device device);
  // Takes ownership of p (released by `free`); the tensor becomes writable.
  void Own(void* p, std::function<void(const void*)> free);

  DType dtype_ = DType::kF32;
  Device device_ = Device::kCpu;
  bool writable_ = false;
  Shape shape_;
  const void* data_ = nullptr;
  std::shared_ptr<const void> owner_;
};

}  // namespace qb
