#include "tensor/device.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace qb {

namespace {

// AllocateCpu and a memset: the pages are touched (committed) at once, and freed memory is
// reused by the next allocation (per-step activations come and go this way). Long-lived large
// tensors made at load take AllocateMappedCpu instead.
class CpuAllocator final : public DeviceAllocator {
 public:
  void* Allocate(size_t bytes) override {
    void* p = AllocateCpu(bytes);
    if (p != nullptr) std::memset(p, 0, bytes);
    return p;
  }
  void Free(void* p) override { std::free(p); }
};

CpuAllocator g_cpu_allocator;
DeviceAllocator* g_allocators[2] = {&g_cpu_allocator, nullptr};

}  // namespace

void* AllocateCpu(size_t bytes) {
  constexpr size_t kAlign = 64;
  const size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  return std::aligned_alloc(kAlign, rounded == 0 ? kAlign : rounded);
}

std::string_view DeviceName(Device d) { return d == Device::kCpu ? "cpu" : "cuda"; }

void* AllocateMappedCpu(size_t bytes) {
  // A fresh anonymous mapping is already zero; the huge-page advice is only advice (without
  // THP the pages are 4 KiB).
  void* p = mmap(nullptr, std::max<size_t>(bytes, 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  madvise(p, std::max<size_t>(bytes, 1), MADV_HUGEPAGE);
  return p;
}

void FreeMappedCpu(void* p, size_t bytes) { munmap(p, std::max<size_t>(bytes, 1)); }

DeviceAllocator* AllocatorFor(Device d) { return g_allocators[static_cast<int>(d)]; }

void RegisterAllocator(Device d, DeviceAllocator* allocator) {
  g_allocators[static_cast<int>(d)] = allocator;
}

}  // namespace qb
