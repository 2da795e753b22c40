// Where a tensor's memory lives, and the allocator for each place. Backends other than the CPU
// (CUDA) register their allocator at start-up; code above the kernels never allocates device
// memory itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace qb {

enum class Device : uint8_t { kCpu, kCuda };

std::string_view DeviceName(Device d);

class DeviceAllocator {
 public:
  virtual ~DeviceAllocator() = default;
  // Returns zero-filled memory aligned to at least 64 bytes, or nullptr when out of memory.
  virtual void* Allocate(size_t bytes) = 0;
  virtual void Free(void* p) = 0;
};

// The allocator for a device, or nullptr when that device is not available in this build.
DeviceAllocator* AllocatorFor(Device d);
void RegisterAllocator(Device d, DeviceAllocator* allocator);

}  // namespace qb
