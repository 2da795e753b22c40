// MakeCpuTensorParallelStepModel: the ranks are threads of this process, each with its own
// thread pool and KV storage, stepping together.
#include <fmt/format.h>

#include "kernels/cpu/host_collective.h"
#include "model/step_model.h"
#include "util/check.h"

namespace qb {

namespace {

class CpuTensorParallelStepModel final : public StepModel {
 public:
  CpuTensorParallelStepModel(std::vector<std::shared_ptr<const Qwen2Model>> shards, const ModelConfig& config,
                             const KvLayout& layout, kernels::Isa isa, int threads_per_rank)
      : shards_(std::move(shards)),
        config_(config),
        group_(static_cast<int>(shards_.size())),
        ranks_(static_cast<int>(shards_.size())),
        threads_per_rank_(threads_per_rank) {
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
  }

  const ModelConfig& config() const override { return config_; }

  Result<Tensor> Step(const ForwardBatch& batch) override {
    // Every rank checks the batch identically before its first collective, so either all of
    // them run the step or all of them return the same error.
    std::vector<Result<Tensor>> out(shards_.size(), Result<Tensor>(Tensor()));
    ranks_.Run([&](int r) {
      const auto i = static_cast<size_t>(r);
      out[i] = shards_[i]->Forward(batch, kv_[i], contexts_[i]);
    });
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
    return fmt::format("cpu (tensor parallel: {} ranks x {} threads)", shards_.size(), threads_per_rank_);
  }

 private:
  std::vector<std::shared_ptr<const Qwen2Model>> shards_;
  ModelConfig config_;
  kernels::HostCollectiveGroup group_;
  ThreadPool ranks_;  // thread r runs rank r (thread 0: the caller)
  int threads_per_rank_;
  std::vector<KvStorage> kv_;
  std::vector<std::unique_ptr<ThreadPool>> pools_;
  std::vector<kernels::ExecContext> contexts_;
};

}  // namespace

std::unique_ptr<StepModel> MakeCpuTensorParallelStepModel(std::vector<std::shared_ptr<const Qwen2Model>> shards,
                                                          const ModelConfig& config, const KvLayout& layout,
                                                          kernels::Isa isa, int threads_per_rank) {
  return std::make_unique<CpuTensorParallelStepModel>(std::move(shards), config, layout, isa, threads_per_rank);
}

}  // namespace qb
