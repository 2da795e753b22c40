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

// 64-byte-aligned CPU memory, left as it is (no memset); std::free releases it.
void* AllocateCpu(size_t bytes);

// Zero-filled CPU memory for a large tensor that lives as long as the model (weights repacked or
// converted at load): a fresh mapping with transparent huge pages advised, so no memset pass and
// 2 MiB page faults (loading a 4.7 GB Qwen2.5-7B Q4_K_M, whose matrices are all repacked, spent
// 10-13 s of system time in 4 KiB page faults on this project's VM). Not for per-step buffers:
// every call maps and faults in new pages. Returns nullptr when out of memory.
void* AllocateMappedCpu(size_t bytes);
void FreeMappedCpu(void* p, size_t bytes);

// The allocator for a device, or nullptr when that device is not available in this build.
DeviceAllocator* AllocatorFor(Device d);
void RegisterAllocator(Device d, DeviceAllocator* allocator);

}  // namespace qb
