#include "cli/exec_options.h"

#include <fmt/format.h>

#include "resources/limits.h"

namespace qb::cli {

int DefaultThreads() { return DetectLimits().Threads(); }

void ExecOptions::Add(CLI::App* cmd, const std::string& default_kernels) {
  kernels = default_kernels;
  cmd->add_option("-t,--threads", threads, "Compute threads (default: the CPU quota rounded down, at least 1, at most the cores)");
  cmd->add_option("--kernels", kernels,
                  "fast (the best SIMD path of this CPU, threaded, 8-bit activations for quantized weights), "
                  "one path by name (avx512bf16, avx512vnni, avx2, scalar: slower paths for comparison; avx512bf16 "
                  "rounds the activations of BF16 weights to bf16) or reference (scalar, f32 activations: exact)")
      ->capture_default_str();
  cmd->add_option("--quant", quant,
                  "Convert the weights when loading: q8_0, q4_0, q4_k, f16 or bf16 (default: as stored)");
}

void ExecOptions::AddTensorParallel(CLI::App* cmd) {
  cmd->add_option("--tensor-parallel-size,--tp", tensor_parallel,
                  "Split the model over this many ranks, each with --threads / N threads and its own share of the "
                  "heads, the MLP and the vocabulary (Megatron-style). It pays on a multi-socket host: with as many "
                  "NUMA nodes as ranks, rank r runs on node r's CPUs with its weights and KV cache in node r's memory")
      ->capture_default_str();
}

Result<LoadedModel> ExecOptions::Load(const std::string& path, ThreadPool* pool,
                                      std::function<void(const std::string&, double)> progress) const {
  LoadOptions lo;
  lo.quant = quant;
  lo.pool = pool;
  if (tensor_parallel < 1) return InvalidArgument("--tensor-parallel-size must be at least 1");
  lo.tensor_parallel = tensor_parallel;
  lo.progress = std::move(progress);
  return LoadModel(path, lo);
}

Status ExecOptions::Make(std::unique_ptr<ThreadPool>* pool, kernels::ExecContext* ctx) const {
  if (threads < 0) return InvalidArgument("--threads must be >= 0");
  const std::optional<kernels::Isa> isa = kernels == "fast" ? kernels::DetectIsa() : kernels::IsaFromName(kernels);
  if (!isa)
    return InvalidArgument(
        fmt::format("--kernels {} is not one of fast, avx512bf16, avx512vnni, avx2, scalar, reference", kernels));
  if (*isa > kernels::DetectIsa())
    return InvalidArgument(fmt::format("--kernels {}: this CPU's best path is {}", kernels,
                                       kernels::IsaName(kernels::DetectIsa())));
  const int n = threads > 0 ? threads : DefaultThreads();
  *pool = std::make_unique<ThreadPool>(*isa == kernels::Isa::kReference ? 1 : n);
  ctx->pool = pool->get();
  ctx->isa = *isa;
  return Status::Ok();
}

}  // namespace qb::cli
