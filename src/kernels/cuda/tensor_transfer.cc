#include "kernels/cuda/tensor_transfer.h"

#include "kernels/cuda/cuda_api.h"

namespace qb::cuda {

Tensor Upload(const Tensor& cpu) {
  QB_CHECK(cpu.device() == Device::kCpu, "Upload of a {} tensor", DeviceName(cpu.device()));
  Initialize();
  Tensor t = Tensor::Empty(cpu.dtype(), cpu.shape(), Device::kCuda);
  CopyToDevice(t.mutable_raw(), cpu.raw(), cpu.nbytes());
  return t;
}

Tensor Download(const Tensor& dev) {
  QB_CHECK(dev.device() == Device::kCuda, "Download of a {} tensor", DeviceName(dev.device()));
  Tensor t = Tensor::Empty(dev.dtype(), dev.shape(), Device::kCpu);
  CopyToHost(t.mutable_raw(), dev.raw(), dev.nbytes());
  return t;
}

}  // namespace qb::cuda
