#include "tensor/device.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

namespace qb {

namespace {

// Small buffers come from aligned_alloc and are zeroed here. Large ones (weights repacked at load,
// the KV pool, big activations) come straight from mmap: already zero, so no second pass over
// them, and advised to use transparent huge pages, so that first touches fault in 2 MiB at a
// time rather than 4 KiB (loading a 4.7 GB Qwen2.5-7B Q4_K_M, whose matrices are all repacked,
// spent 10-13 s of system time in page faults with 4 KiB pages on this machine's VM).
class CpuAllocator final : public DeviceAllocator {
 public:
  void* Allocate(size_t bytes) override {
    if (bytes >= kLarge) {
      void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) return nullptr;
      madvise(p, bytes, MADV_HUGEPAGE);  // advice only: without THP the pages are just 4 KiB
      std::lock_guard<std::mutex> lock(mu_);
      mapped_[p] = bytes;
      return p;
    }
    constexpr size_t kAlign = 64;
    const size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
    void* p = std::aligned_alloc(kAlign, rounded == 0 ? kAlign : rounded);
    if (p != nullptr) std::memset(p, 0, rounded);
    return p;
  }
  void Free(void* p) override {
    size_t mapped_bytes = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = mapped_.find(p); it != mapped_.end()) {
        mapped_bytes = it->second;
        mapped_.erase(it);
      }
    }
    if (mapped_bytes > 0) munmap(p, mapped_bytes);
    else std::free(p);
  }

 private:
  static constexpr size_t kLarge = size_t{4} << 20;
  std::mutex mu_;
  std::unordered_map<void*, size_t> mapped_;
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
