// MakeCpuTensorParallelStepModel: the ranks are threads of this process, each with its own
// thread pool and KV storage, stepping together.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "kernels/cpu/host_collective.h"
#include "model/step_model.h"
#include "util/check.h"
#include "util/numa.h"

namespace qb {

namespace {

class CpuTensorParallelStepModel final : public StepModel {
 public:
  CpuTensorParallelStepModel(std::vector<std::shared_ptr<const Qwen2Model>> shards, const ModelConfig& config,
                             const KvLayout& layout, kernels::Isa isa, int threads_per_rank,
                             std::vector<NumaNode> placement)
      : shards_(std::move(shards)),
        config_(config),
        group_(static_cast<int>(shards_.size())),
        ranks_(static_cast<int>(shards_.size())),
        threads_per_rank_(threads_per_rank),
        placement_(std::move(placement)),
        pinned_(shards_.size(), 0) {
    QB_CHECK(!shards_.empty() && threads_per_rank >= 1, "{} ranks of {} threads", shards_.size(), threads_per_rank);
    for (size_t r = 0; r < shards_.size(); ++r) {
      const ModelConfig& c = shards_[r]->config();
      kv_.emplace_back(c.num_layers, c.kv_dim(), layout);
      pools_.push_back(std::make_unique<ThreadPool>(threads_per_rank));
      kernels::ExecContext ctx;
      ctx.pool = pools_.back().get();
      ctx.isa = isa;
      ctx.collective = group_.rank(static_cast<int>(r));
      contexts_.push_back(ctx);
    }
    if (!placement_.empty()) PlaceMemory();
  }

  const ModelConfig& config() const override { return config_; }

  Result<Tensor> Step(const ForwardBatch& batch) override {
    // Rank 0 runs on the calling thread: on node 0's CPUs for the step only, so the caller (and
    // the threads it starts later) keeps its own mask.
    std::vector<int> caller_cpus;
    if (!placement_.empty()) {
      caller_cpus = CurrentThreadCpus();
      if (Status s = PinCurrentThread(placement_[0].cpus); !s.ok()) spdlog::warn("tensor parallel: {}", s.message());
    }
    // Every rank checks the batch identically before its first collective, so either all of
    // them run the step or all of them return the same error.
    std::vector<Result<Tensor>> out(shards_.size(), Result<Tensor>(Tensor()));
    ranks_.Run([&](int r) {
      const auto i = static_cast<size_t>(r);
      if (!placement_.empty() && !pinned_[i]) Pin(i);
      try {
        out[i] = shards_[i]->Forward(batch, kv_[i], contexts_[i]);
      } catch (const std::exception& e) {
        // The other ranks wait at the next barrier for this one: no way back but to stop.
        QB_CHECK(false, "tensor parallel rank {}: {}", r, e.what());
      }
    });
    if (!caller_cpus.empty()) (void)PinCurrentThread(caller_cpus);
    for (auto& o : out) QB_RETURN_IF_ERROR(o.status());
    return std::move(out[0]);
  }

  int64_t kv_pool_bytes() const override {
    int64_t bytes = 0;
    for (const KvStorage& kv : kv_) bytes += kv.bytes();
    return bytes;
  }
  int64_t kv_blocks() const override { return kv_[0].layout().num_blocks; }
  std::string device() const override {
    std::vector<int> nodes;
    for (const NumaNode& n : placement_) nodes.push_back(n.id);
    return fmt::format("cpu (tensor parallel: {} ranks x {} threads{})", shards_.size(), threads_per_rank_,
                       nodes.empty() ? std::string() : fmt::format(", on NUMA nodes {}", fmt::join(nodes, ",")));
  }

 private:
  // Rank r's threads on node r's CPUs, once: its pool's workers, and for r > 0 the dispatcher
  // thread running it (rank 0's is the caller, pinned per step).
  void Pin(size_t r) {
    const std::vector<int>& cpus = placement_[r].cpus;
    pools_[r]->Run([&cpus, r](int t) {
      if (r == 0 && t == 0) return;
      if (Status s = PinCurrentThread(cpus); !s.ok()) spdlog::warn("tensor parallel: {}", s.message());
    });
    pinned_[r] = 1;
  }

  // Rank r's own memory (its weight copies and its KV cache) onto node r. Views of a mapped
  // checkpoint stay where the page cache has them; small tensors may share pages and stay.
  void PlaceMemory() {
    constexpr size_t kMinBytes = 1 << 20;
    int64_t moved = 0;
    Status failed = Status::Ok();
    auto place = [&](const Tensor& t, int node) {
      if (!t.defined() || !t.writable() || t.nbytes() < kMinBytes || !failed.ok()) return;
      failed = MoveToNode(t.raw(), t.nbytes(), node);
      if (failed.ok()) moved += static_cast<int64_t>(t.nbytes());
    };
    for (size_t r = 0; r < shards_.size(); ++r) {
      const int node = placement_[r].id;
      ForEachWeight(shards_[r]->weights(), [&](const Tensor& t) { place(t, node); });
      for (int64_t l = 0; l < shards_[r]->config().num_layers; ++l) {
        place(kv_[r].keys(l), node);
        place(kv_[r].values(l), node);
      }
    }
    if (!failed.ok())
      spdlog::warn("tensor parallel: memory stays where it is ({}; in a container, --cap-add SYS_NICE allows it)",
                   failed.message());
    else
      spdlog::debug("tensor parallel: {:.1f} MiB of weights and KV cache on the ranks' NUMA nodes",
                    static_cast<double>(moved) / 1048576.0);
  }

  std::vector<std::shared_ptr<const Qwen2Model>> shards_;
  ModelConfig config_;
  kernels::HostCollectiveGroup group_;
  ThreadPool ranks_;  // thread r runs rank r (thread 0: the caller)
  int threads_per_rank_;
  std::vector<NumaNode> placement_;      // rank r on placement_[r]; empty: not placed
  std::vector<uint8_t> pinned_;  // rank r's threads are on its node (written by rank r only; not vector<bool>)
  std::vector<KvStorage> kv_;
  std::vector<std::unique_ptr<ThreadPool>> pools_;
  std::vector<kernels::ExecContext> contexts_;
};

}  // namespace

std::unique_ptr<StepModel> MakeCpuTensorParallelStepModel(std::vector<std::shared_ptr<const Qwen2Model>> shards,
                                                          const ModelConfig& config, const KvLayout& layout,
                                                          kernels::Isa isa, int threads_per_rank,
                                                          std::vector<NumaNode> placement) {
  return std::make_unique<CpuTensorParallelStepModel>(std::move(shards), config, layout, isa, threads_per_rank,
                                                      std::move(placement));
}

}  // namespace qb
