// A fixed pool of worker threads for data-parallel kernels. The caller is one of the threads
// (a pool of N runs work on N threads: the caller and N-1 workers), so a 1-thread pool spawns
// nothing. Between jobs workers spin briefly (a forward pass issues jobs back to back), then
// block on a condition variable, so an idle process uses no CPU.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace qb {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Runs fn(thread_index) on every thread (index 0 is the caller) and waits for all.
  void Run(const std::function<void(int)>& fn);
  // Splits [0, n) into one contiguous range per thread (some may be empty) and runs
  // fn(begin, end) on each; `grain` rounds range boundaries to multiples of itself.
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);
  // Runs fn(i) for every i in [0, n), each index taken by whichever thread is free next (an
  // atomic counter): uneven work, or a thread slowed by a noisy neighbour, does not leave the
  // others waiting at the end as a static split does.
  void ParallelForDynamic(int64_t n, const std::function<void(int64_t)>& fn);
  // Runs fn(i) for every i in [0, n): each thread walks its own contiguous share of [0, n) from
  // the front (one sequential stream, as ParallelFor), and a thread that finishes its share takes
  // the indices left at the back of the others' (a thread slowed by a neighbour on a shared
  // machine leaves no one waiting for more than one index).
  void ParallelForStealing(int64_t n, const std::function<void(int64_t)>& fn);

 private:
  void WorkerLoop(int index);
  // Run with run_mu_ held by the caller.
  void RunLocked(const std::function<void(int)>& fn);

  const int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable wake_;
  std::mutex run_mu_;  // one job at a time (callers on several threads wait their turn)
  // ParallelForStealing's shares, one per thread on its own cache line: the next index at the
  // front (low 32 bits) and the end (high 32 bits), both moved by compare-and-swap.
  struct alignas(64) Share {
    std::atomic<uint64_t> range{0};
  };
  std::unique_ptr<Share[]> shares_;
};

}  // namespace qb
