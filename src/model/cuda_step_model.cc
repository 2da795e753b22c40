#include "model/cuda_step_model.h"

#include <algorithm>

#include <fmt/format.h>

#include "model/qwen2_cuda.h"

namespace qb {

namespace {

class CudaStepModel final : public StepModel {
 public:
  CudaStepModel(std::unique_ptr<CudaQwen2Model> model, std::string device)
      : model_(std::move(model)), device_(std::move(device)) {}
  const ModelConfig& config() const override { return model_->config(); }
  Result<Tensor> Step(const ForwardBatch& batch) override {
    for (int32_t a : batch.adapters)
      if (a != 0) return Unimplemented("LoRA adapters run on the CPU only (not --device cuda)");
    return model_->Forward(batch);
  }
  int64_t kv_pool_bytes() const override { return model_->kv_pool_bytes(); }
  int64_t kv_blocks() const override { return model_->options().num_blocks; }
  std::string device() const override { return device_; }
  int64_t max_logit_rows() const override { return model_->options().max_logit_rows; }

 private:
  std::unique_ptr<CudaQwen2Model> model_;
  std::string device_;
};

CudaModelOptions ModelOptions(const ModelConfig& c, const CudaStepOptions& o, int64_t blocks) {
  CudaModelOptions m;
  m.max_tokens = o.max_batch_tokens;
  m.max_logit_rows = std::min(std::max(o.max_logit_rows, o.max_num_seqs), o.max_batch_tokens);
  m.max_seqs = o.max_num_seqs;
  const int64_t longest = o.max_total_tokens > 0 ? o.max_total_tokens : c.max_position_embeddings;
  m.max_blocks_per_seq = (longest + o.block_size - 1) / o.block_size;
  m.num_blocks = blocks;
  m.block_size = o.block_size;
  m.kv_dtype = o.kv_dtype;
  m.use_graphs = true;
  m.linear_path = o.linear_path;
  return m;
}

}  // namespace

Result<std::unique_ptr<StepModel>> MakeCudaStepModel(const ModelConfig& config, const Qwen2Weights& weights,
                                                     const CudaStepOptions& o, CudaStepInfo* info) {
  if (cuda::DeviceCount() == 0) return Unimplemented("no CUDA device: " + cuda::NoDeviceReason());
  if (o.gpu_memory_utilization <= 0 || o.gpu_memory_utilization > 1)
    return InvalidArgument("--gpu-memory-utilization must be in (0, 1]");
  cuda::Initialize();
  CudaStepInfo s;
  s.device = "cuda:0 " + cuda::DeviceDescription();
  const cuda::MemoryInfo before = cuda::GetMemoryInfo();
  s.gpu_total_bytes = static_cast<int64_t>(before.total_bytes);
  s.gpu_free_before = static_cast<int64_t>(before.free_bytes);
  const int64_t block_bytes = 2 * config.num_layers * o.block_size * RowBytes(o.kv_dtype, config.kv_dim());
  // Weights and every buffer of a step first, with a one-block pool: what is left then, down
  // to (1 - utilization) of the card, becomes the pool.
  QB_ASSIGN_OR_RETURN(CudaWeights w, UploadWeights(config, weights));
  s.weight_bytes = static_cast<int64_t>(before.free_bytes - cuda::GetMemoryInfo().free_bytes);
  const int64_t after_weights = static_cast<int64_t>(cuda::GetMemoryInfo().free_bytes);
  QB_ASSIGN_OR_RETURN(auto probe, CudaQwen2Model::FromWeights(config, std::move(w), ModelOptions(config, o, 1)));
  s.activation_bytes = after_weights - static_cast<int64_t>(cuda::GetMemoryInfo().free_bytes) - block_bytes;
  const auto reserve = static_cast<int64_t>(static_cast<double>(s.gpu_total_bytes) * (1.0 - o.gpu_memory_utilization));
  const int64_t left = static_cast<int64_t>(cuda::GetMemoryInfo().free_bytes) + block_bytes - reserve;
  int64_t blocks = 0;
  if (o.kv_cache_bytes > 0) {
    blocks = o.kv_cache_bytes / block_bytes;
    if (blocks * block_bytes > left + reserve)
      return ResourceExhausted(fmt::format("--kv-cache-bytes {} does not fit the GPU: {} bytes are free after the weights "
                                           "({} bytes) and activations ({} bytes)",
                                           o.kv_cache_bytes, left + reserve, s.weight_bytes, s.activation_bytes));
    s.how = fmt::format("--kv-cache-bytes {}", o.kv_cache_bytes);
  } else {
    blocks = left / block_bytes;
    s.how = fmt::format("{:.2f} GiB: {:g}% of the GPU's {:.2f} GiB less the weights ({:.2f} GiB) and activations ({:.2f} GiB)",
                        static_cast<double>(blocks * block_bytes) / (1 << 30), o.gpu_memory_utilization * 100,
                        static_cast<double>(s.gpu_total_bytes) / (1 << 30), static_cast<double>(s.weight_bytes) / (1 << 30),
                        static_cast<double>(s.activation_bytes) / (1 << 30));
  }
  const int64_t longest = o.max_total_tokens > 0 ? o.max_total_tokens : config.max_position_embeddings;
  if (blocks * o.block_size < std::min<int64_t>(longest, 2048))
    return ResourceExhausted(fmt::format(
        "the model does not fit the GPU: after the weights ({} bytes) and activations ({} bytes), {} bytes are left for "
        "the KV cache within --gpu-memory-utilization {:g} of {} bytes: {} tokens, fewer than one request needs; use a "
        "smaller quantization, a lower --max-batch-tokens, or a higher --gpu-memory-utilization",
        s.weight_bytes, s.activation_bytes, std::max<int64_t>(0, left), o.gpu_memory_utilization, s.gpu_total_bytes,
        std::max<int64_t>(0, blocks) * o.block_size));
  // The real pool: the weights move from the probe (whose buffers go first) to the final model.
  CudaWeights kept = probe->TakeWeights();
  probe.reset();
  QB_ASSIGN_OR_RETURN(auto model, CudaQwen2Model::FromWeights(config, std::move(kept), ModelOptions(config, o, blocks)));
  s.kv_blocks = blocks;
  s.kv_cache_bytes = blocks * block_bytes;
  if (info) *info = s;
  return std::unique_ptr<StepModel>(new CudaStepModel(std::move(model), s.device));
}

}  // namespace qb
