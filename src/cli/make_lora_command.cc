// qwenbox make-lora (--model PATH | --preset NAME) --out DIR|FILE.gguf [--rank 8] [--alpha 16]
//                   [--targets all|q_proj,v_proj,...] [--dtype bf16] [--rslora] [--seed N]:
// a random LoRA adapter in PEFT's layout (or, to a .gguf file, llama.cpp's) for that model (to try --lora-modules on the demo
// model, whose preset is `tiny`, or to test a deployment's memory with an adapter's size).
#include <memory>

#include <fmt/format.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "model/loader.h"
#include "model/presets.h"
#include "model/random_lora.h"

namespace qb::cli {

namespace {

struct MakeLoraOptions {
  std::string model;
  std::string preset;
  std::string out;
  int64_t rank = 8;
  double alpha = 16;
  std::string targets = "all";
  std::string dtype = "bf16";
  bool rslora = false;
  uint64_t seed = 0;
};

Status RunMakeLora(const MakeLoraOptions& o) {
  if (o.model.empty() == o.preset.empty()) return InvalidArgument("give one of --model and --preset");
  ModelConfig config;
  RandomLoraOptions r;
  if (!o.model.empty()) {
    QB_ASSIGN_OR_RETURN(config, LoadModelConfig(o.model));
    r.base_model = o.model;
  } else {
    QB_ASSIGN_OR_RETURN(ModelPreset preset, FindPreset(o.preset));
    config = preset.config;
    r.base_model = preset.name;
  }
  const auto dtype = DTypeFromName(o.dtype);
  if (!dtype) return InvalidArgument(fmt::format("--dtype {} is not one of f32, bf16, f16", o.dtype));
  r.out = o.out;
  r.rank = o.rank;
  r.alpha = o.alpha;
  r.rslora = o.rslora;
  r.dtype = *dtype;
  r.seed = o.seed;
  QB_ASSIGN_OR_RETURN(r.targets, ParseLoraTargets(o.targets));
  QB_RETURN_IF_ERROR(WriteRandomLora(config, r));
  std::printf("wrote %s (rank %lld, alpha %g, %s)\n", o.out.c_str(), static_cast<long long>(o.rank), o.alpha,
              o.targets.c_str());
  return Status::Ok();
}

}  // namespace

void AddMakeLoraCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<MakeLoraOptions>();
  CLI::App* cmd = app.add_subcommand("make-lora", "Write a random LoRA adapter (PEFT layout) for a model");
  cmd->add_option("--model", o->model, "The model it adapts (a Hugging Face directory or a .gguf file)");
  cmd->add_option("--preset", o->preset, "Or a preset's shape (tiny is the demo model's)");
  cmd->add_option("--out", o->out, "The adapter's directory (PEFT's layout), or a .gguf file (llama.cpp's)")->required();
  cmd->add_option("--rank", o->rank, "r: the rank of the updates")->capture_default_str();
  cmd->add_option("--alpha", o->alpha, "lora_alpha (the updates are scaled by alpha / r)")->capture_default_str();
  cmd->add_option("--targets", o->targets, "Comma-separated projections (q_proj ... down_proj), or all")
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "f32, f16 or bf16 (or q8_0 in a .gguf with a rank that is a multiple of 32)")->capture_default_str();
  cmd->add_flag("--rslora", o->rslora, "Scale by alpha / sqrt(r) (use_rslora)");
  cmd->add_option("--seed", o->seed, "Random seed")->capture_default_str();
  cmd->callback([o, exit_code] {
    Status s = RunMakeLora(*o);
    *exit_code = s.ok() ? 0 : ReportError("make-lora", s);
  });
}

}  // namespace qb::cli
