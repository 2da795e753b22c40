// `serve --device`: the engine's backend. Compiled into each executable: the CUDA backend is in
// qwenbox-cuda (built with -DQWENBOX_CUDA=ON, where QWENBOX_HAVE_CUDA is defined); qwenbox says
// where to find it.
#include <algorithm>

#include <fmt/format.h>

#include "cli/serve_options.h"
#ifdef QWENBOX_HAVE_CUDA
#include "kernels/cuda/cuda_api.h"
#include "model/cuda_step_model.h"
#include "util/byte_size.h"
#endif

namespace qb::cli {

Status CheckDevice(const ServeOptions& o) {
  if (o.device != "cpu" && o.device != "cuda") return InvalidArgument(fmt::format("--device \"{}\": cpu or cuda", o.device));
#ifndef QWENBOX_HAVE_CUDA
  if (o.device == "cuda")
    return Unimplemented(
        "--device cuda: this qwenbox has no CUDA backend; use qwenbox-cuda (built with -DQWENBOX_CUDA=ON)");
#else
  if (o.device == "cuda" && cuda::DeviceCount() == 0) return Unimplemented("--device cuda: " + cuda::NoDeviceReason());
#endif
  return Status::Ok();
}

Result<std::unique_ptr<StepModel>> MakeServeStepModel(const ServeOptions& o, const LoadedModel& loaded,
                                                      const kernels::ExecContext& ctx, ServeSizing* s) {
  EngineConfig& ec = s->engine;
  if (o.device == "cpu") {
    auto step = MakeCpuStepModel(loaded, KvLayout{ec.kv_blocks, ec.scheduler.block_size, ec.kv_dtype}, ctx);
    s->device = step->device();
    return step;
  }
  if (o.device != "cuda") return InvalidArgument(fmt::format("--device \"{}\": cpu or cuda", o.device));
#ifndef QWENBOX_HAVE_CUDA
  return Unimplemented("--device cuda: this qwenbox has no CUDA backend; use qwenbox-cuda");
#else
  CudaStepOptions co;
  co.max_batch_tokens = o.max_batch_tokens;
  co.max_num_seqs = o.max_num_seqs;
  // Speculation asks for a row per proposed token: room for every proposing sequence's.
  if (o.speculative.enabled())
    co.max_logit_rows = o.max_num_seqs + o.speculative.num_tokens * std::min(o.speculative.max_seqs, o.max_num_seqs);
  co.max_total_tokens = o.max_total_tokens;
  co.block_size = o.block_size;
  co.kv_dtype = ec.kv_dtype;
  co.gpu_memory_utilization = o.gpu_memory_utilization;
  if (!o.kv_cache_bytes.empty()) {
    QB_ASSIGN_OR_RETURN(co.kv_cache_bytes, ParseByteSize(o.kv_cache_bytes));
  }
  CudaStepInfo info;
  QB_ASSIGN_OR_RETURN(auto step, MakeCudaStepModel(loaded.model->config(), loaded.model->weights(), co, &info));
  const int64_t context = loaded.model->config().max_position_embeddings;
  ec.kv_blocks = info.kv_blocks;
  const int64_t pool_tokens = info.kv_blocks * o.block_size;
  if (o.max_total_tokens > pool_tokens)
    return ResourceExhausted(fmt::format("--max-total-tokens {} does not fit the GPU's KV cache ({} tokens: {})",
                                         o.max_total_tokens, pool_tokens, info.how));
  ec.max_total_tokens = o.max_total_tokens > 0 ? o.max_total_tokens : std::min(context, pool_tokens);
  if (o.max_input_tokens >= ec.max_total_tokens)
    return InvalidArgument(fmt::format("--max-input-tokens {} must be below the max total tokens {}", o.max_input_tokens,
                                       ec.max_total_tokens));
  ec.max_input_tokens = o.max_input_tokens > 0 ? o.max_input_tokens : ec.max_total_tokens - 1;
  s->kv_cache_bytes = info.kv_cache_bytes;
  s->kv_how = info.how;
  s->device = info.device;
  s->gpu = {{"device", info.device},
            {"gpu_total_bytes", info.gpu_total_bytes},
            {"gpu_free_before_bytes", info.gpu_free_before},
            {"gpu_memory_utilization", o.gpu_memory_utilization},
            {"weights_bytes", info.weight_bytes},
            {"activation_bytes", info.activation_bytes},
            {"kv_cache_bytes", info.kv_cache_bytes},
            {"kv_blocks", info.kv_blocks}};
  return step;
#endif
}

}  // namespace qb::cli
