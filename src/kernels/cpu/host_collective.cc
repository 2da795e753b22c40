#include "kernels/cpu/host_collective.h"

#include <cstring>
#include <thread>

#include "util/check.h"

namespace qb::kernels {

class HostCollectiveGroup::Rank final : public Collective {
 public:
  Rank(HostCollectiveGroup* group, int rank) : g_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int world() const override { return g_->world_; }

  void AllReduceSum(float* data, int64_t n, ThreadPool* pool) override {
    const int world = g_->world_;
    if (world == 1) return;
    g_->buffers_[static_cast<size_t>(rank_)] = data;
    g_->Barrier();  // every rank's partial result is complete and published
    // This rank's share of the elements, summed over the ranks in rank order (so every rank
    // gets bit-identical values) and written back into every rank's buffer.
    const int64_t begin = n * rank_ / world, end = n * (rank_ + 1) / world;
    float* const* bufs = g_->buffers_.data();
    auto reduce = [&](int64_t b, int64_t e) {
      for (int64_t i = begin + b; i < begin + e; ++i) {
        float s = bufs[0][i];
        for (int r = 1; r < world; ++r) s += bufs[r][i];
        for (int r = 0; r < world; ++r) bufs[r][i] = s;
      }
    };
    if (pool != nullptr && end - begin >= 4096)
      pool->ParallelFor(end - begin, reduce, 16);
    else
      reduce(0, end - begin);
    g_->Barrier();  // no rank reads its buffer before every share is written
  }

  void GatherColumns(const float* part, int64_t rows, int64_t cols, float* full) override {
    const int world = g_->world_;
    if (world == 1) {
      std::memcpy(full, part, static_cast<size_t>(rows * cols) * sizeof(float));
      return;
    }
    g_->parts_[static_cast<size_t>(rank_)] = part;
    g_->cols_[static_cast<size_t>(rank_)] = cols;
    if (rank_ == 0) g_->full_ = full;
    g_->Barrier();
    if (rank_ == 0) {
      int64_t total = 0;
      for (int r = 0; r < world; ++r) total += g_->cols_[static_cast<size_t>(r)];
      for (int64_t row = 0; row < rows; ++row) {
        int64_t at = 0;
        for (int r = 0; r < world; ++r) {
          const int64_t c = g_->cols_[static_cast<size_t>(r)];
          std::memcpy(full + row * total + at, g_->parts_[static_cast<size_t>(r)] + row * c,
                      static_cast<size_t>(c) * sizeof(float));
          at += c;
        }
      }
    }
    g_->Barrier();  // the other ranks' parts stay alive until rank 0 has copied them
  }

 private:
  HostCollectiveGroup* g_;
  const int rank_;
};

HostCollectiveGroup::HostCollectiveGroup(int world)
    : world_(world),
      buffers_(static_cast<size_t>(world)),
      parts_(static_cast<size_t>(world)),
      cols_(static_cast<size_t>(world)) {
  QB_CHECK(world >= 1, "a collective group of {} ranks", world);
  for (int r = 0; r < world; ++r) ranks_.push_back(std::make_unique<Rank>(this, r));
}

HostCollectiveGroup::~HostCollectiveGroup() = default;

void HostCollectiveGroup::Barrier() {
  const uint64_t gen = generation_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == world_) {
    arrived_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    return;
  }
  // The ranks do equal work, so the wait is usually short: spin, then give the core away.
  for (int spins = 0; generation_.load(std::memory_order_acquire) == gen; ++spins) {
    if (spins >= 4000) std::this_thread::yield();
#if defined(__x86_64__)
    else __builtin_ia32_pause();
#endif
  }
}

}  // namespace qb::kernels
