// Shared pieces of the checkpoint writers: a tensor to write is a name, a type, a shape and a
// function that fills its bytes when the writer reaches it (so a writer never holds more than
// one tensor in memory).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "tensor/tensor.h"

namespace qb {

struct PendingTensor {
  std::string name;
  DType dtype;
  Shape shape;
  std::function<void(uint8_t* dst)> fill;  // writes exactly RowBytes(dtype, cols) * rows bytes

  uint64_t nbytes() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return static_cast<uint64_t>(RowBytes(dtype, n));
  }
};

}  // namespace qb
