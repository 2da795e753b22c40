#include "tensor/device.h"

#include <cstdlib>
#include <cstring>

namespace qb {

namespace {

class CpuAllocator final : public DeviceAllocator {
 public:
  void* Allocate(size_t bytes) override {
    constexpr size_t kAlign = 64;
    const size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
    void* p = std::aligned_alloc(kAlign, rounded == 0 ? kAlign : rounded);
    if (p != nullptr) std::memset(p, 0, rounded);
    return p;
  }
  void Free(void* p) override { std::free(p); }
};

CpuAllocator g_cpu_allocator;
DeviceAllocator* g_allocators[2] = {&g_cpu_allocator, nullptr};

}  // namespace

std::string_view DeviceName(Device d) { return d == Device::kCpu ? "cpu" : "cuda"; }

DeviceAllocator* AllocatorFor(Device d) { return g_allocators[static_cast<int>(d)]; }

void RegisterAllocator(Device d, DeviceAllocator* allocator) {
  g_allocators[static_cast<int>(d)] = allocator;
}

}  // namespace qb
