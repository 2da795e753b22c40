// qwenbox plan (--model PATH | --preset NAME) [--quant Q] [--ctx N] [--batch N] [--tp N]
//              [--draft PRESET|PATH [--draft-quant Q] [--speculative-max-seqs 4]] [--lora N [--lora-rank 16]]
//              [--instances N] [--memory SIZE] [--cpus N] [--gpus N] [--gpu-mem SIZE]
//              [--format table|json|docker|compose|k8s]
// What serving a model needs (weights, KV cache, activations, runtime), whether it fits the given
// limits (default: this machine's), and the container settings that give it that.
#include <cstdio>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "kernels/ops.h"
#include "model/loader.h"
#include "model/presets.h"
#include "model/quantize.h"
#include "model/tensor_parallel.h"
#include "resources/deployment.h"
#include "resources/limits.h"
#include "resources/memory_plan.h"
#include "util/byte_size.h"
#include "util/json.h"

namespace qb::cli {

namespace {

struct PlanOptions {
  std::string model, preset, quant, memory, gpu_mem = "80g", kv_dtype = "f16", format = "table";
  std::string draft, draft_quant;  // --draft (a preset or a path), --draft-quant
  int64_t lora = 0, lora_rank = 16;  // --lora, --lora-rank
  std::string lora_dtype = "f32";    // --lora-dtype: the adapters' files' type
  int64_t ctx = 0, batch = 1, tp = 0, instances = 1, gpus = 0, max_batch_tokens = 2048, speculative_max_seqs = 4;
  double cpus = 0, margin = 0.05;
};

struct Subject {
  std::string label, model_arg, quant;
  ModelConfig config;
  int64_t measured_weights = 0;  // from the file, when served as stored
};

Result<Subject> FindSubject(const PlanOptions& o) {
  Subject s;
  if (!o.model.empty()) {
    LoadOptions lo;
    lo.interleave = false;
    QB_ASSIGN_OR_RETURN(LoadedModel m, LoadModel(o.model, lo));
    if (o.gpus == 0 && o.tp > 1) {  // CPU ranks: can this checkpoint (converted by --quant) be split?
      std::optional<DType> convert_to;
      if (auto q = FindQuantPlan(o.quant); !o.quant.empty() && q.ok()) convert_to = q->matrices;
      QB_RETURN_IF_ERROR(CheckTensorParallel(m.model->config(), m.model->weights(), static_cast<int>(o.tp), convert_to));
    }
    s.config = m.model->config();
    s.label = o.model;
    s.model_arg = o.model;
    s.quant = o.quant;
    if (o.quant.empty()) s.measured_weights = Summarize(m.model->weights()).bytes;
    return s;
  }
  QB_ASSIGN_OR_RETURN(ModelPreset p, FindPreset(o.preset));
  if (o.gpus == 0 && o.tp > 1) {  // CPU ranks: o_proj as --quant makes it (GPTQ/AWQ: blocks of 32, any head cut)
    auto q = FindQuantPlan(o.quant.empty() ? "bf16" : o.quant);
    QB_RETURN_IF_ERROR(CheckTensorParallelShape(p.config, static_cast<int>(o.tp),
                                                q.ok() ? std::optional(FitType(q->matrices, p.config.q_dim()))
                                                       : std::nullopt));
  }
  s.config = p.config;
  s.label = "preset " + o.preset;
  s.model_arg = "/models/" + o.preset;
  s.quant = o.quant.empty() ? "bf16" : o.quant;
  return s;
}

// --draft: a preset's shape (served as --draft-quant, bf16 by default) or a checkpoint's.
Result<Subject> FindDraft(const PlanOptions& o) {
  Subject s;
  if (auto p = FindPreset(o.draft); p.ok()) {
    s.config = p->config;
    s.label = "preset " + o.draft;
    s.model_arg = "/models/" + o.draft;
    s.quant = o.draft_quant.empty() ? "bf16" : o.draft_quant;
    return s;
  }
  LoadOptions lo;
  lo.interleave = false;
  auto m = LoadModel(o.draft, lo);
  if (!m.ok())
    return InvalidArgument(fmt::format("--draft {}: neither a preset ({}) nor a model: {}", o.draft,
                                       fmt::join(PresetNames(), ", "), m.status().message()));
  s.config = m->model->config();
  s.label = o.draft;
  s.model_arg = o.draft;
  s.quant = o.draft_quant;
  if (o.draft_quant.empty()) s.measured_weights = Summarize(m->model->weights()).bytes;
  return s;
}

std::string Gb(int64_t b) { return fmt::format("{:.2f} GB", static_cast<double>(b) / 1e9); }

Status RunPlan(const PlanOptions& o) {
  if (o.model.empty() == o.preset.empty()) return InvalidArgument("give exactly one of --model and --preset");
  if (o.instances < 1 || o.batch < 1 || o.tp < 0 || o.gpus < 0 || o.cpus < 0)
    return InvalidArgument("--instances and --batch must be positive; --tp, --gpus and --cpus not negative");
  if (o.format != "table" && o.format != "json" && o.format != "docker" && o.format != "compose" && o.format != "k8s")
    return InvalidArgument(fmt::format("--format {} is not one of table, json, docker, compose, k8s", o.format));
  auto kv_dtype = DTypeFromName(o.kv_dtype);
  if (!kv_dtype || !kernels::IsKvDType(*kv_dtype))
    return InvalidArgument("--kv-dtype must be f16, bf16, f32 or q8_0");
  if (*kv_dtype == DType::kQ8_0 && o.gpus > 0)
    return InvalidArgument("--kv-dtype q8_0 is for CPU deployments (the GPU KV cache is f16, bf16 or f32)");
  QB_ASSIGN_OR_RETURN(Subject subject, FindSubject(o));
  std::optional<Subject> draft;
  if (!o.draft.empty()) {
    if (o.gpus > 0) return InvalidArgument("--draft is for CPU deployments (serve --draft-model runs on the CPU)");
    if (o.speculative_max_seqs < 1) return InvalidArgument("--speculative-max-seqs must be at least 1");
    QB_ASSIGN_OR_RETURN(draft, FindDraft(o));
    QB_RETURN_IF_ERROR(kernels::CheckKvDType(*kv_dtype, draft->config.head_dim));
  }
  QB_RETURN_IF_ERROR(kernels::CheckKvDType(*kv_dtype, subject.config.head_dim));

  // The limits to check against: the flags, else this machine's.
  const ResourceLimits detected = DetectLimits();
  int64_t memory = 0;
  std::string memory_source;
  if (!o.memory.empty()) {
    QB_ASSIGN_OR_RETURN(memory, ParseByteSize(o.memory));
    memory_source = "--memory";
  } else if (auto limit = detected.MemoryLimit()) {
    memory = *limit;
    memory_source = "this machine's cgroup " + detected.cgroup_version + " limit";
  } else {
    memory = detected.host_memory_bytes;
    memory_source = "this machine's RAM";
  }
  const double cpus = o.cpus > 0 ? o.cpus : detected.cpu_quota.value_or(detected.cpuset_cpus);
  const double cpus_per_instance = cpus / static_cast<double>(o.instances);
  int64_t tp = o.tp;
  if (o.gpus > 0) {
    if (tp == 0) tp = o.gpus / o.instances;
    if (tp < 1 || tp * o.instances > o.gpus)
      return InvalidArgument(fmt::format("{} instances of --tp {} need {} GPUs; --gpus is {}", o.instances, tp,
                                         o.instances * std::max<int64_t>(tp, 1), o.gpus));
  }
  // Without --gpus, --tp N is CPU tensor parallelism: N ranks, one per NUMA node of a
  // multi-socket host (docs/TENSOR_PARALLEL.md).
  const int64_t cpu_tp = o.gpus > 0 ? 1 : std::max<int64_t>(1, tp);
  if (cpu_tp > 1 && cpus_per_instance > 0 && cpus_per_instance < static_cast<double>(cpu_tp))
    return InvalidArgument(fmt::format("--tp {} needs at least one CPU per rank; an instance has {:g}", cpu_tp,
                                       cpus_per_instance));

  QB_ASSIGN_OR_RETURN(const int64_t gpu_mem, ParseByteSize(o.gpu_mem));

  PlanInput in;
  in.config = subject.config;
  in.quant = subject.quant;
  in.weights_bytes = subject.measured_weights;
  in.kv_dtype = *kv_dtype;
  in.context = o.ctx;
  in.batch = o.batch;
  in.max_batch_tokens = o.max_batch_tokens;
  in.threads = std::max<int64_t>(1, static_cast<int64_t>(cpus_per_instance));
  in.cpu_tensor_parallel = cpu_tp;
  if (draft) in.draft = DraftPlanInput{draft->config, draft->quant, draft->measured_weights, o.speculative_max_seqs};
  if (o.lora > 0 && o.gpus > 0) return InvalidArgument("--lora is for CPU deployments (serve --lora-modules runs on the CPU)");
  if (o.lora > 0 && cpu_tp > 1) return InvalidArgument("--lora with --tp > 1 is not supported (serve refuses it)");
  const auto lora_dtype = DTypeFromName(o.lora_dtype);
  if (!lora_dtype || (*lora_dtype != DType::kF32 && *lora_dtype != DType::kBF16 && *lora_dtype != DType::kF16))
    return InvalidArgument("--lora-dtype must be f32, bf16 or f16");
  in.lora_adapters = o.lora;
  in.lora_rank = o.lora_rank;
  in.lora_dtype = *lora_dtype;
  QB_ASSIGN_OR_RETURN(MemoryPlan plan, PlanMemory(in));

  DeploymentInput d;
  d.plan = plan;
  d.model_arg = subject.model_arg;
  d.quant = o.quant;
  d.context = plan.context;
  d.batch = o.batch;
  d.margin = o.margin;
  d.cpus = o.cpus > 0 ? cpus_per_instance : 0;
  d.gpus = o.gpus > 0 ? tp : 0;
  d.cpu_tensor_parallel = cpu_tp;
  if (draft) {
    d.draft_model_arg = draft->model_arg;
    d.draft_quant = o.draft_quant;
    d.speculative_max_seqs = o.speculative_max_seqs;
  }

  // Fit: on CPU every instance's total in RAM; on GPUs the per-GPU share, and the host part.
  std::vector<std::string> reasons;
  const int64_t usable = static_cast<int64_t>(static_cast<double>(memory) * (1.0 - o.margin));
  std::vector<GpuLayout> layouts;
  int64_t per_gpu = 0;
  if (o.gpus > 0) {
    layouts = GpuLayouts(plan, o.gpus, gpu_mem);
    per_gpu = (plan.weights_bytes + plan.kv_bytes) / tp + plan.activation_bytes + kGpuRuntimeBytes;
    const auto gpu_usable = static_cast<int64_t>(static_cast<double>(gpu_mem) * kGpuMemoryUtilization);
    if (per_gpu > gpu_usable)
      reasons.push_back(fmt::format("each GPU needs {} but {:g}% of --gpu-mem is {}", Gb(per_gpu),
                                    kGpuMemoryUtilization * 100, Gb(gpu_usable)));
    const int64_t host = o.instances * (plan.overhead_bytes + (int64_t{1} << 30));
    if (host > usable)
      reasons.push_back(fmt::format("{} instances need {} of host memory; {} ({}) less the margin is {}", o.instances,
                                    Gb(host), Gb(memory), memory_source, Gb(usable)));
  } else if (o.instances * plan.total_bytes > usable) {
    reasons.push_back(fmt::format("{} instance(s) need {} but {} ({}) less the {:g}% margin is {}", o.instances,
                                  Gb(o.instances * plan.total_bytes), Gb(memory), memory_source, o.margin * 100,
                                  Gb(usable)));
  }
  const bool fits = reasons.empty();
  const int64_t recommended = o.gpus > 0 ? plan.overhead_bytes + (int64_t{1} << 30) : RecommendedMemoryLimit(plan, o.margin);

  if (o.format == "docker") {
    std::puts(DockerRunCommand(d).c_str());
  } else if (o.format == "compose") {
    std::fputs(ComposeService(d).c_str(), stdout);
  } else if (o.format == "k8s") {
    std::fputs(KubernetesResources(d).c_str(), stdout);
  } else if (o.format == "json") {
    nlohmann::ordered_json j;
    j["model"] = subject.label;
    j["quant"] = subject.quant.empty() ? "as stored" : subject.quant;
    j["parameters"] = subject.config.ParameterCount();
    j["context"] = plan.context;
    j["batch"] = o.batch;
    j["kv_dtype"] = o.kv_dtype;
    j["weights_bytes"] = plan.weights_bytes;
    j["kv_bytes_per_token"] = plan.kv_bytes_per_token;
    j["kv_bytes_per_sequence"] = plan.kv_bytes_per_sequence;
    j["kv_bytes"] = plan.kv_bytes;
    j["activation_bytes"] = plan.activation_bytes;
    j["overhead_bytes"] = plan.overhead_bytes;
    if (draft)
      j["draft"] = {{"model", draft->label},
                    {"quant", draft->quant.empty() ? "as stored" : draft->quant},
                    {"weights_bytes", plan.draft_weights_bytes},
                    {"kv_bytes", plan.draft.kv_bytes},
                    {"activation_bytes", plan.draft.activation_bytes},
                    {"speculative_max_seqs", o.speculative_max_seqs}};
    if (o.lora > 0)
      j["lora"] = {{"adapters", o.lora}, {"rank", o.lora_rank}, {"dtype", o.lora_dtype}, {"bytes", plan.lora_bytes}};
    j["total_bytes"] = plan.total_bytes;
    j["instances"] = o.instances;
    j["cpu_tensor_parallel"] = cpu_tp;
    j["memory_limit_bytes"] = memory;
    j["memory_limit_source"] = memory_source;
    j["fits"] = fits;
    j["reasons"] = reasons;
    j["recommended"] = {{"memory_bytes", recommended},
                        {"shm_bytes", RecommendedShmBytes(d.gpus)},
                        {"cpus", d.cpus},
                        {"docker", DockerRunCommand(d)}};
    if (o.gpus > 0) {
      nlohmann::ordered_json ls = nlohmann::ordered_json::array();
      for (const GpuLayout& l : layouts)
        ls.push_back({{"instances", l.instances}, {"gpus_per_instance", l.gpus_per_instance},
                      {"per_gpu_bytes", l.per_gpu_bytes}, {"fits", l.fits},
                      {"kv_tokens_per_instance", l.kv_tokens_per_instance},
                      {"sequences_at_context", l.sequences_at_context}});
      j["gpu"] = {{"gpus", o.gpus}, {"tp", tp}, {"gpu_mem_bytes", gpu_mem}, {"per_gpu_bytes", per_gpu}, {"layouts", ls}};
    }
    std::puts(j.dump(2).c_str());
  } else {
    const ModelConfig& c = subject.config;
    std::string t = fmt::format(
        "model:        {} ({:.2f} B parameters; {} layers, {} kv heads x {})\n"
        "quantization: {}\n"
        "weights:      {}\n"
        "KV cache:     {} bytes per token ({}); {} per {}-token sequence; {} for {} sequence(s)\n"
        "activations:  {} (one step of {} tokens)\n"
        "runtime:      {} (process, tokenizer, connections)\n"
        "{}{}"
        "total:        {} per instance\n"
        "limit:        {} ({}) for {} instance(s): {}\n",
        subject.label, static_cast<double>(c.ParameterCount()) / 1e9, c.num_layers, c.num_kv_heads, c.head_dim,
        subject.quant.empty() ? "as stored" : subject.quant, HumanBytes(plan.weights_bytes), plan.kv_bytes_per_token,
        o.kv_dtype, HumanBytes(plan.kv_bytes_per_sequence), plan.context, HumanBytes(plan.kv_bytes), o.batch,
        HumanBytes(plan.activation_bytes), o.max_batch_tokens, HumanBytes(plan.overhead_bytes),
        draft ? fmt::format("draft model:  {} ({}): weights {}, KV cache {} for {} sequence(s), activations {}\n",
                            draft->label, draft->quant.empty() ? "as stored" : draft->quant,
                            HumanBytes(plan.draft_weights_bytes), HumanBytes(plan.draft.kv_bytes),
                            std::min(o.speculative_max_seqs, o.batch), HumanBytes(plan.draft.activation_bytes))
              : "",
        o.lora > 0 ? fmt::format("LoRA:         {} adapter(s) of rank {} ({}) on all projections: {}\n", o.lora,
                                 o.lora_rank, o.lora_dtype, HumanBytes(plan.lora_bytes))
                   : "",
        HumanBytes(plan.total_bytes), HumanBytes(memory), memory_source, o.instances, fits ? "FITS" : "DOES NOT FIT");
    for (const std::string& r : reasons) t += "              - " + r + "\n";
    if (cpu_tp > 1)
      t += fmt::format("CPU ranks:    {} per instance (--tensor-parallel-size {}): one per NUMA node of a multi-socket "
                       "host, SYS_NICE to move each rank's memory to its node (docs/TENSOR_PARALLEL.md)\n",
                       cpu_tp, cpu_tp);
    if (o.gpus > 0) {
      t += fmt::format("\nGPU layouts for {} GPUs of {} ({:g}% used):\n", o.gpus, HumanBytes(gpu_mem),
                       kGpuMemoryUtilization * 100);
      t += fmt::format("  {:>9}  {:>8}  {:>14}  {:>5}  {:>16}  {:>18}\n", "instances", "GPUs/TP", "per GPU", "fits",
                       "KV tokens/inst", "seqs at context");
      for (const GpuLayout& l : layouts)
        t += fmt::format("  {:>9}  {:>8}  {:>14}  {:>5}  {:>16}  {:>18}\n", l.instances, l.gpus_per_instance,
                         Gb(l.per_gpu_bytes), l.fits ? "yes" : "no", l.kv_tokens_per_instance, l.sequences_at_context);
    }
    t += fmt::format("\nrecommended per instance: --memory={} --shm-size={}{}\n{}\n", DockerSize(recommended),
                     DockerSize(RecommendedShmBytes(d.gpus)), d.cpus > 0 ? fmt::format(" --cpus={:g}", d.cpus) : "",
                     DockerRunCommand(d));
    std::fputs(t.c_str(), stdout);
  }
  return Status::Ok();
}

}  // namespace

void AddPlanCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* cmd = app.add_subcommand(
      "plan", "What a model needs (weights, KV cache, activations), whether it fits, and container settings");
  auto* model = cmd->add_option("--model", o->model, "A Hugging Face directory or a .gguf file");
  cmd->add_option("--preset", o->preset, fmt::format("A published shape: {}", fmt::join(PresetNames(), ", ")))
      ->excludes(model);
  cmd->add_option("--quant", o->quant,
                  fmt::format("Weights as: {} (default: as stored; bf16 for a preset)", fmt::join(PlanQuantNames(), ", ")));
  cmd->add_option("--ctx", o->ctx, "Tokens per sequence (default: the model's context)");
  cmd->add_option("--batch", o->batch, "Sequences at full context at once")->capture_default_str();
  cmd->add_option("--tp", o->tp,
                  "Tensor-parallel ranks per instance: with --gpus, GPUs per instance (default: --gpus / "
                  "--instances); without, CPU ranks (one per NUMA node of a multi-socket host)");
  cmd->add_option("--instances", o->instances, "Server instances sharing the machine")->capture_default_str();
  cmd->add_option("--memory", o->memory, "Memory for all instances, e.g. 16g (default: this machine's limit)");
  cmd->add_option("--cpus", o->cpus, "CPUs for all instances (default: this machine's quota or cores)");
  cmd->add_option("--gpus", o->gpus, "GPUs in all (0: CPU serving)")->capture_default_str();
  cmd->add_option("--gpu-mem", o->gpu_mem, "Memory of each GPU")->capture_default_str();
  cmd->add_option("--kv-dtype", o->kv_dtype, "KV cache type: f16, bf16, f32, or q8_0 (CPU: half of f16's memory)")->capture_default_str();
  cmd->add_option("--max-batch-tokens", o->max_batch_tokens, "Tokens per engine step")->capture_default_str();
  cmd->add_option("--memory-margin", o->margin, "Fraction of the limit left free")->capture_default_str();
  cmd->add_option("--draft", o->draft,
                  "Speculative decoding with this draft model (serve --draft-model): a preset or a checkpoint; its "
                  "weights, KV cache and activations are added");
  cmd->add_option("--draft-quant", o->draft_quant, "The draft model's quantization (default: a preset's bf16, a file as stored)");
  cmd->add_option("--lora", o->lora, "LoRA adapters served beside the model (serve --lora-modules)")
      ->capture_default_str();
  cmd->add_option("--lora-rank", o->lora_rank, "Their rank (on all seven projections)")->capture_default_str();
  cmd->add_option("--lora-dtype", o->lora_dtype,
                  "Their files' type: f32 (PEFT's default for adapters trained on a BF16 model), bf16 or f16")
      ->capture_default_str();
  cmd->add_option("--speculative-max-seqs", o->speculative_max_seqs, "Sequences the draft model proposes for at once")
      ->capture_default_str();
  cmd->add_option("--format", o->format, "table, json, docker, compose or k8s")->capture_default_str();
  cmd->callback([o, exit_code] {
    Status s = RunPlan(*o);
    *exit_code = s.ok() ? 0 : ReportError("plan", s);
  });
}

}  // namespace qb::cli
