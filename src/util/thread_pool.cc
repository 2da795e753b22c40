#include "util/thread_pool.h"

#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qb {

namespace {

inline void CpuRelax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

// How long an idle worker spins before sleeping: long enough to bridge the gap between two ops
// of a forward pass, short enough to be invisible when the server is idle.
constexpr auto kSpin = std::chrono::microseconds(200);

}  // namespace

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(n_threads < 1 ? 1 : n_threads), shares_(std::make_unique<Share[]>(static_cast<size_t>(n_threads_))) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  while (true) {
    // Spin for a short while, then sleep until the next job.
    const auto spin_until = std::chrono::steady_clock::now() + kSpin;
    while (generation_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < spin_until)
      for (int k = 0; k < 8; ++k) CpuRelax();
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load()) return;
    (*job_)(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::Run(const std::function<void(int)>& fn) {
  if (n_threads_ == 1) {
    fn(0);
    return;
  }
  std::lock_guard<std::mutex> run_lock(run_mu_);
  RunLocked(fn);
}

void ThreadPool::RunLocked(const std::function<void(int)>& fn) {
  job_ = &fn;
  pending_.store(n_threads_ - 1, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  fn(0);
  while (pending_.load(std::memory_order_acquire) != 0) CpuRelax();
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const int64_t units = (n + grain - 1) / grain;
  const int64_t threads = std::min<int64_t>(n_threads_, units);
  if (threads <= 1) {
    fn(0, n);
    return;
  }
  Run([&](int t) {
    if (t >= threads) return;
    const int64_t b = units * t / threads * grain;
    const int64_t e = std::min(n, units * (t + 1) / threads * grain);
    if (b < e) fn(b, e);
  });
}

void ThreadPool::ParallelForDynamic(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  if (n_threads_ == 1 || n == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  Run([&](int) {
    for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < n; i = next.fetch_add(1, std::memory_order_relaxed))
      fn(i);
  });
}

namespace {

constexpr uint64_t Pack(uint64_t front, uint64_t end) { return front | end << 32; }
constexpr uint64_t Front(uint64_t r) { return r & 0xffffffffu; }
constexpr uint64_t End(uint64_t r) { return r >> 32; }

// Takes the front index of `share` (from_back false) or its last one; false when it is empty.
bool Take(std::atomic<uint64_t>& share, bool from_back, int64_t& index) {
  uint64_t r = share.load(std::memory_order_relaxed);
  while (Front(r) < End(r)) {
    const uint64_t next = from_back ? Pack(Front(r), End(r) - 1) : Pack(Front(r) + 1, End(r));
    if (share.compare_exchange_weak(r, next, std::memory_order_relaxed)) {
      index = static_cast<int64_t>(from_back ? End(r) - 1 : Front(r));
      return true;
    }
  }
  return false;
}

}  // namespace

void ThreadPool::ParallelForStealing(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  if (n_threads_ == 1 || n == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  if (n >= (int64_t{1} << 32)) return ParallelForDynamic(n, fn);  // beyond 32-bit shares
  const int threads = n_threads_;
  // The shares belong to this job: another caller's job must not set them while it runs.
  std::lock_guard<std::mutex> run_lock(run_mu_);
  for (int t = 0; t < threads; ++t)
    shares_[static_cast<size_t>(t)].range.store(Pack(static_cast<uint64_t>(n * t / threads),
                                                     static_cast<uint64_t>(n * (t + 1) / threads)),
                                                std::memory_order_relaxed);
  // The job's release publishes the shares to the workers.
  RunLocked([&](int self) {
    int64_t i;
    while (Take(shares_[static_cast<size_t>(self)].range, false, i)) fn(i);
    for (int k = 1; k < threads; ++k) {
      auto& other = shares_[static_cast<size_t>((self + k) % threads)].range;
      while (Take(other, true, i)) fn(i);
    }
  });
}

}  // namespace qb
