// Tensors to and from the GPU (kept apart from cuda_api.h so that the .cu files need not see
// tensor.h and its fmt-based checks).
#pragma once

#include "tensor/tensor.h"

namespace qb::cuda {

// A CPU tensor's bytes copied into a new Device::kCuda tensor of the same dtype and shape.
Tensor Upload(const Tensor& cpu);
// A device tensor copied into a new CPU tensor.
Tensor Download(const Tensor& dev);

}  // namespace qb::cuda
