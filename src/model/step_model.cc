#include "model/step_model.h"

#include <algorithm>

namespace qb {

namespace {

class CpuStepModel final : public StepModel {
 public:
  CpuStepModel(std::shared_ptr<const Qwen2Model> model, const KvLayout& layout, const kernels::ExecContext& ctx)
      : model_(std::move(model)), kv_(model_->config().num_layers, model_->config().kv_dim(), layout), ctx_(ctx) {}
  const ModelConfig& config() const override { return model_->config(); }
  Result<Tensor> Step(const ForwardBatch& batch) override { return model_->Forward(batch, kv_, ctx_); }
  int64_t kv_pool_bytes() const override { return kv_.bytes(); }
  int64_t kv_blocks() const override { return kv_.layout().num_blocks; }
  std::string device() const override { return "cpu"; }

 private:
  std::shared_ptr<const Qwen2Model> model_;
  KvStorage kv_;
  kernels::ExecContext ctx_;
};

}  // namespace

std::unique_ptr<StepModel> MakeCpuStepModel(std::shared_ptr<const Qwen2Model> model, const KvLayout& layout,
                                            const kernels::ExecContext& ctx) {
  return std::make_unique<CpuStepModel>(std::move(model), layout, ctx);
}

std::unique_ptr<StepModel> MakeCpuStepModel(const LoadedModel& loaded, const KvLayout& layout,
                                            const kernels::ExecContext& ctx) {
  if (loaded.shards.empty()) return MakeCpuStepModel(loaded.model, layout, ctx);
  const int world = static_cast<int>(loaded.shards.size());
  const int threads = ctx.pool != nullptr ? ctx.pool->size() : 1;
  const int per_rank = std::max(1, threads / world);
  return MakeCpuTensorParallelStepModel(loaded.shards, loaded.model->config(), layout, ctx.isa, per_rank,
                                        PlaceRanksOnNodes(DetectNumaNodes(), world, per_rank));
}

std::unique_ptr<StepModel> MakeCpuSequenceModel(const LoadedModel& loaded, int64_t capacity, DType kv_dtype,
                                                const kernels::ExecContext& ctx) {
  return MakeCpuStepModel(loaded, KvLayout{1, capacity, kv_dtype}, ctx);
}

}  // namespace qb
