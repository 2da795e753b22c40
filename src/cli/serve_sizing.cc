#include <algorithm>

#include <fmt/format.h>

#include "cli/serve_options.h"
#include "kernels/ops.h"
#include "kv/kv_storage.h"
#include "model/lora_apply.h"
#include "model/step_model.h"
#include "model/weights.h"
#include "resources/kv_sizing.h"
#include "resources/memory_plan.h"
#include "util/byte_size.h"

namespace qb::cli {

namespace {

std::string WeightsType(const Qwen2Weights& w) { return std::string(Name(w.layers.empty() ? w.lm_head.dtype() : w.layers[0].w_up.dtype())); }

}  // namespace

int HttpThreads(const ServeOptions& o) {
  if (o.server.http_threads > 0) return o.server.http_threads;
  return static_cast<int>(o.max_num_seqs + o.max_queue + kProbeThreads);
}

Status DetectServeLimits(const ServeOptions& o, ServeSizing* s) {
  if (o.memory_margin < 0 || o.memory_margin >= 1) return InvalidArgument("--memory-margin must be in [0, 1)");
  // The device and the KV cache type are checked before minutes of loading, not after.
  QB_RETURN_IF_ERROR(CheckDevice(o));
  if (o.exec.tensor_parallel < 1) return InvalidArgument("--tensor-parallel-size must be at least 1");
  if (o.draft.enabled() && o.device != "cpu")
    return Unimplemented("--draft-model runs with --device cpu only");
  if (!o.lora_modules.empty() && o.device != "cpu")
    return Unimplemented("--lora-modules runs with --device cpu only");
  if (!o.lora_modules.empty() && o.exec.tensor_parallel > 1)
    return Unimplemented("--lora-modules with --tensor-parallel-size > 1 is not supported");
  if (o.exec.tensor_parallel > 1 && o.device != "cpu")
    return Unimplemented("--tensor-parallel-size > 1 runs on --device cpu only (the CUDA backend uses one GPU)");
  const auto kv_dtype = DTypeFromName(o.kv_dtype);
  if (!kv_dtype || !kernels::IsKvDType(*kv_dtype))
    return InvalidArgument("--kv-dtype must be f16, bf16, f32 or q8_0");
  if (*kv_dtype == DType::kQ8_0 && o.device != "cpu")
    return InvalidArgument("--kv-dtype q8_0 runs on the CPU only (the GPU KV cache is f16, bf16 or f32)");
  s->limits = DetectLimits();
  if (!o.memory_limit.empty()) {
    QB_ASSIGN_OR_RETURN(const int64_t limit, ParseByteSize(o.memory_limit));
    if (limit <= 0) return InvalidArgument("--memory-limit must be positive");
    s->memory_limit = limit;
    s->limit_source = "--memory-limit";
  } else if (auto limit = s->limits.MemoryLimit()) {
    s->memory_limit = limit;
    s->limit_from_cgroup = true;
    s->limit_source = fmt::format("cgroup {} {}", s->limits.cgroup_version, s->limits.memory_cgroup);
  } else {
    s->limit_source = "none";
  }
  return Status::Ok();
}

Status SizeServe(const ServeOptions& o, const LoadedModel& loaded, const LoadedModel* draft, int threads,
                 ServeSizing* s) {
  auto kv_dtype = DTypeFromName(o.kv_dtype);
  if (!kv_dtype) return InvalidArgument("--kv-dtype must be f16, bf16, f32 or q8_0");  // checked before loading
  QB_RETURN_IF_ERROR(kernels::CheckKvDType(*kv_dtype, loaded.model->config().head_dim));
  if (draft)  // (the draft model's cache is of the same type)
    if (Status st = kernels::CheckKvDType(*kv_dtype, draft->model->config().head_dim); !st.ok())
      return Status(st.code(), "--draft-model: " + st.message());
  if (o.block_size < 1 || o.max_num_seqs < 1 || o.max_batch_tokens < 1 || o.max_queue < 0)
    return InvalidArgument("--block-size, --max-num-seqs and --max-batch-tokens must be positive");
  const ModelConfig& mc = loaded.model->config();
  // Rank 0's with tensor parallelism (the same types).
  const Qwen2Weights& w = loaded.FirstWeights();

  // Resident now, after a one-token forward pass touched every matrix, plus what will become
  // resident later: an untied embedding still in the mapped file (MappedEmbeddingBytes).
  if (o.device == "cpu") {
    const int32_t token = 0;
    auto warm = MakeCpuSequenceModel(loaded, 1, DType::kF32, kernels::ExecContext{});
    QB_RETURN_IF_ERROR(warm->Step(SequenceBatch(std::span<const int32_t>(&token, 1), 0, false)).status());
    if (draft) {
      auto warm_draft = MakeCpuSequenceModel(*draft, 1, DType::kF32, kernels::ExecContext{});
      QB_RETURN_IF_ERROR(warm_draft->Step(SequenceBatch(std::span<const int32_t>(&token, 1), 0, false)).status());
    }
  }
  s->weights_bytes = loaded.Summary().bytes;
  // Under a cgroup limit, what the cgroup charges counts: its working set also holds kernel
  // memory (thread stacks, page tables, socket buffers) that the resident set leaves out.
  int64_t resident = ProcessResidentBytes();
  if (s->limit_from_cgroup)
    if (auto ws = CgroupWorkingSet(s->limits)) resident = std::max(resident, *ws);
  s->resident_bytes = resident + loaded.MappedEmbeddingBytes() + (draft ? draft->MappedEmbeddingBytes() : 0);
  StepShape step;
  step.max_batch_tokens = o.max_batch_tokens;
  step.max_num_seqs = o.max_num_seqs;
  step.max_total_tokens = o.max_total_tokens > 0 ? o.max_total_tokens : mc.max_position_embeddings;
  step.threads = threads;
  step.tensor_parallel = o.exec.tensor_parallel;
  s->activation_bytes = ActivationBytes(mc, step);
  if (const auto& lora = s->engine.lora; lora && !lora->empty()) {
    int64_t rank = 0;
    for (const auto& a : *lora) {
      s->lora_bytes += a->bytes;
      rank = std::max(rank, a->rank);
    }
    s->activation_bytes += LoraScratchBytes(mc, rank);
  }
  SpeculativeConfig speculative = o.speculative;
  if (draft) {
    if (speculative.num_tokens == 0) speculative.num_tokens = kDefaultDraftTokens;
    s->draft = DraftModelMemory(draft->model->config(), std::min(speculative.max_seqs, o.max_num_seqs),
                                o.max_total_tokens, o.block_size, *kv_dtype, threads);
    s->draft_weights_bytes = draft->Summary().bytes;
  }
  // Every HTTP thread may hold a connection at once (rejected ones too, while they are answered).
  s->http_threads = HttpThreads(o);
  s->connection_bytes = s->http_threads * kConnectionBytes;
  s->kv_bytes_per_token = KvLayout::BytesPerToken(mc.num_layers, mc.kv_dim(), *kv_dtype);

  KvSizingInput in;
  in.config = mc;
  in.memory_limit = s->memory_limit;
  in.limit_source = s->limit_source;
  in.host_available_bytes = HostAvailableMemory();
  in.margin = o.memory_margin;
  in.resident_bytes = s->resident_bytes;
  in.weights_bytes = s->weights_bytes;
  in.quant = WeightsType(w);
  in.activation_bytes = s->activation_bytes;
  in.draft_bytes = s->draft.kv_bytes + s->draft.activation_bytes;
  in.connection_bytes = s->connection_bytes;
  in.kv_bytes_per_token = s->kv_bytes_per_token;
  in.block_size = o.block_size;
  in.max_num_seqs = o.max_num_seqs;
  in.max_total_tokens = o.max_total_tokens;
  if (!o.kv_cache_bytes.empty()) {
    QB_ASSIGN_OR_RETURN(in.kv_cache_bytes, ParseByteSize(o.kv_cache_bytes));
  }
  KvSizing kv;
  if (o.device == "cpu") {
    QB_ASSIGN_OR_RETURN(kv, SizeKvCache(in));
  } else {
    // On a GPU the pool is sized in device memory once the weights are there (serve_device.cc).
    kv.blocks = 1;
    kv.max_total_tokens = o.max_total_tokens > 0 ? o.max_total_tokens : mc.max_position_embeddings;
    kv.how = "in GPU memory";
  }
  s->kv_cache_bytes = kv.kv_cache_bytes;
  s->kv_how = kv.how;
  if (s->memory_limit)
    // Sizing leaves the margin free at full load; the guard sheds in its second half.
    s->guard_reserve_bytes = static_cast<int64_t>(static_cast<double>(*s->memory_limit) * o.memory_margin / 2);

  EngineConfig& ec = s->engine;
  ec.scheduler.block_size = o.block_size;
  ec.scheduler.max_num_seqs = o.max_num_seqs;
  ec.scheduler.max_batch_tokens = o.max_batch_tokens;
  ec.scheduler.prefix_caching = !o.no_prefix_caching;
  QB_RETURN_IF_ERROR(CheckSpeculative(speculative));
  ec.speculative = speculative;
  ec.kv_dtype = *kv_dtype;
  ec.kv_blocks = kv.blocks;
  ec.max_total_tokens = kv.max_total_tokens;
  if (o.max_input_tokens >= ec.max_total_tokens)
    return InvalidArgument(fmt::format("--max-input-tokens {} must be below the max total tokens {}", o.max_input_tokens,
                                       ec.max_total_tokens));
  ec.max_input_tokens = o.max_input_tokens > 0 ? o.max_input_tokens : ec.max_total_tokens - 1;
  ec.max_queue = o.max_queue;
  return Status::Ok();
}

nlohmann::ordered_json ServeConfigJson(const ServeOptions& o, const ServeSizing& s, int threads) {
  auto opt = [](const std::optional<int64_t>& v) { return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(); };
  const ResourceLimits& l = s.limits;
  nlohmann::ordered_json j;
  j["threads"] = threads;
  j["tensor_parallel"] = o.exec.tensor_parallel;
  j["threads_rule"] = o.exec.threads > 0 ? "--threads" : "floor(cpu quota), at least 1, at most the cpuset and cores";
  j["cpu_quota"] = l.cpu_quota ? nlohmann::ordered_json(*l.cpu_quota) : nlohmann::ordered_json();
  j["cpuset_cpus"] = l.cpuset_cpus;
  j["host_cores"] = l.host_cores;
  j["cgroup_version"] = l.cgroup_version;
  j["memory_cgroup"] = l.memory_cgroup;
  j["memory_limit_bytes"] = opt(s.memory_limit);
  j["memory_limit_source"] = s.limit_source;
  j["cgroup_memory_max_bytes"] = opt(l.memory_max);
  j["cgroup_memory_high_bytes"] = opt(l.memory_high);
  j["host_memory_bytes"] = l.host_memory_bytes;
  j["shm_bytes"] = l.shm_bytes;
  j["memory_margin"] = o.memory_margin;
  j["model_resident_bytes"] = s.resident_bytes;
  j["weights_bytes"] = s.weights_bytes;
  j["activation_bytes"] = s.activation_bytes;
  j["connection_bytes"] = s.connection_bytes;
  j["device"] = s.device;
  if (!s.gpu.is_null()) j["gpu"] = s.gpu;
  j["http_threads"] = s.http_threads;
  j["kv_dtype"] = o.kv_dtype;
  j["kv_bytes_per_token"] = s.kv_bytes_per_token;
  j["kv_cache_bytes"] = s.kv_cache_bytes;
  j["kv_cache_sizing"] = s.kv_how;
  j["kv_blocks"] = s.engine.kv_blocks;
  j["block_size"] = s.engine.scheduler.block_size;
  j["max_total_tokens"] = s.engine.max_total_tokens;
  j["max_input_tokens"] = s.engine.max_input_tokens;
  j["max_num_seqs"] = s.engine.scheduler.max_num_seqs;
  j["max_batch_tokens"] = s.engine.scheduler.max_batch_tokens;
  j["max_queue"] = s.engine.max_queue;
  j["prefix_caching"] = s.engine.scheduler.prefix_caching;
  const SpeculativeConfig& sp = s.engine.speculative;
  nlohmann::ordered_json spec;
  if (sp.enabled() && o.draft.enabled()) {
    spec = {{"method", "draft_model"},
            {"draft_model", o.draft.path},
            {"num_tokens", sp.num_tokens},
            {"max_seqs", sp.max_seqs},
            {"draft_weights_bytes", s.draft_weights_bytes},
            {"draft_kv_blocks", s.draft.kv_blocks},
            {"draft_kv_bytes", s.draft.kv_bytes},
            {"draft_activation_bytes", s.draft.activation_bytes}};
  } else if (sp.enabled()) {
    spec = {{"method", "ngram"},
            {"num_tokens", sp.num_tokens},
            {"ngram_min", sp.ngram_min},
            {"ngram_max", sp.ngram_max},
            {"max_seqs", sp.max_seqs}};
  }
  j["speculative"] = spec;
  nlohmann::ordered_json lora = nlohmann::ordered_json::array();
  if (s.engine.lora)
    for (const auto& a : *s.engine.lora)
      lora.push_back({{"name", a->name},
                      {"path", a->path},
                      {"rank", a->rank},
                      {"alpha", a->alpha},
                      {"rslora", a->rslora},
                      {"targets", a->targets},
                      {"bytes", a->bytes}});
  j["lora_adapters"] = lora;
  j["lora_bytes"] = s.lora_bytes;
  j["memory_guard_reserve_bytes"] = s.memory_limit ? nlohmann::ordered_json(s.guard_reserve_bytes) : nlohmann::ordered_json();
  return j;
}

}  // namespace qb::cli
