// qwenbox logits --model PATH --ids 1,2,3 [--all-positions] [--kernels reference|fast|avx2|...] [-t N] [--tp N]
// The correctness tool: prints {"n_vocab": V, "logits": [[...], ...]} with an f32 KV cache, by
// default through the reference kernels (f32 activations). External checks depend on this
// exact interface.
#include <cstdio>
#include <memory>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/exec_options.h"
#include "cli/lora_options.h"
#include "model/loader.h"
#include "model/step_model.h"

namespace qb::cli {

namespace {

struct LogitsOptions {
  std::string model;
  std::string ids;
  bool all_positions = false;
  std::string lora;
  ExecOptions exec;
};

Status RunLogits(const LogitsOptions& o) {
  QB_ASSIGN_OR_RETURN(std::vector<int32_t> ids, ParseIds(o.ids));
  std::unique_ptr<ThreadPool> pool;
  kernels::ExecContext ctx;
  QB_RETURN_IF_ERROR(o.exec.Make(&pool, &ctx));
  QB_ASSIGN_OR_RETURN(LoadedModel loaded, o.exec.Load(o.model, pool.get()));
  if (ids.empty()) return InvalidArgument("--ids: no token ids");
  if (!o.lora.empty() && o.exec.tensor_parallel > 1) return Unimplemented("--lora with --tp is not supported");
  QB_ASSIGN_OR_RETURN(auto lora, LoadOneLora(o.lora, loaded.model->config()));
  auto step = MakeCpuSequenceModel(loaded, static_cast<int64_t>(ids.size()), DType::kF32, ctx);
  QB_ASSIGN_OR_RETURN(Tensor logits, step->Step(WithLora(SequenceBatch(ids, 0, o.all_positions), lora.get())));
  std::string out = "{\"n_vocab\": " + std::to_string(logits.cols()) + ", \"logits\": [";
  out.reserve(out.size() + static_cast<size_t>(logits.numel()) * 14);
  for (int64_t r = 0; r < logits.rows(); ++r) {
    out += r == 0 ? "[" : ", [";
    const float* row = logits.data<float>() + r * logits.cols();
    for (int64_t i = 0; i < logits.cols(); ++i) {
      if (i) out += ", ";
      AppendJsonFloat(out, row[i]);
    }
    out += "]";
  }
  out += "]}\n";
  if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0)
    return IoError("cannot write to stdout");
  return Status::Ok();
}

}  // namespace

void AddLogitsCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<LogitsOptions>();
  CLI::App* cmd = app.add_subcommand("logits", "Print the model's logits for a list of token ids, as JSON");
  cmd->add_option("--model", o->model, "Model: a Hugging Face directory or a .gguf file")->required();
  cmd->add_option("--ids", o->ids, "Comma-separated token ids, e.g. 1,2,3")->required();
  cmd->add_flag("--all-positions", o->all_positions, "One row of logits per position (default: last only)");
  cmd->add_option("--lora", o->lora, "A LoRA adapter (PEFT directory) applied to the model");
  o->exec.Add(cmd, "reference");
  o->exec.AddTensorParallel(cmd);
  cmd->callback([o, exit_code] {
    Status s = RunLogits(*o);
    *exit_code = s.ok() ? 0 : ReportError("logits", s);
  });
}

}  // namespace qb::cli
