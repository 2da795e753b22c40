// qwenbox make-model --preset NAME --out PATH [--format safetensors|gguf] [--dtype f32|bf16|f16]
//                    [--seed N]: a random-weight model of a real shape, with tokenizer files.
#include <filesystem>
#include <fstream>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"
#include "tokenizer/tokenizer_files.h"

namespace qb::cli {

namespace {

struct MakeModelOptions {
  std::string preset;
  std::string out;
  std::string format = "safetensors";
  std::string dtype = "bf16";
  uint64_t seed = 0;
  uint64_t max_shard_bytes = 0;
};

Status WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f) return IoError(fmt::format("{}: cannot write", path.string()));
  return Status::Ok();
}

Status RunMakeModel(const MakeModelOptions& o) {
  QB_ASSIGN_OR_RETURN(ModelPreset preset, FindPreset(o.preset));
  auto dtype = DTypeFromName(o.dtype);
  if (!dtype || (*dtype != DType::kF32 && *dtype != DType::kF16 && *dtype != DType::kBF16))
    return InvalidArgument(fmt::format("--dtype {} is not one of f32, bf16, f16", o.dtype));
  if (o.format != "safetensors" && o.format != "gguf")
    return InvalidArgument(fmt::format("--format {} is not one of safetensors, gguf", o.format));
  RandomCheckpointOptions opts;
  opts.out = o.out;
  opts.gguf = o.format == "gguf";
  opts.dtype = *dtype;
  opts.seed = o.seed;
  opts.max_shard_bytes = o.max_shard_bytes;
  QB_ASSIGN_OR_RETURN(TokenizerFiles tok, Qwen25TokenizerFiles(preset.config.vocab_size));
  if (opts.gguf) {
    SpecialTokenIds ids;
    ids.bos = preset.generation.bos_token_id.value_or(0);
    ids.eos = preset.config.eos_token_ids.empty() ? 0 : preset.config.eos_token_ids[0];
    ids.pad = preset.generation.pad_token_id.value_or(ids.eos);
    QB_ASSIGN_OR_RETURN(opts.gguf_metadata, TokenizerGgufMetadata(tok, preset.config.vocab_size, ids));
  }
  QB_RETURN_IF_ERROR(WriteRandomCheckpoint(preset, opts));
  if (!opts.gguf) {
    const std::filesystem::path dir(o.out);
    QB_RETURN_IF_ERROR(WriteFile(dir / "tokenizer.json", tok.tokenizer_json));
    QB_RETURN_IF_ERROR(WriteFile(dir / "tokenizer_config.json", tok.tokenizer_config_json));
  }
  std::fprintf(stderr, "wrote %s: random %s (%.3f B parameters), %s, %s\n", o.out.c_str(), preset.name.c_str(),
               static_cast<double>(preset.config.ParameterCount()) / 1e9, o.format.c_str(), o.dtype.c_str());
  return Status::Ok();
}

}  // namespace

void AddMakeModelCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<MakeModelOptions>();
  CLI::App* cmd = app.add_subcommand(
      "make-model", "Write a random-weight Qwen2 model of a real shape (for tests, demos, benchmarks)");
  cmd->add_option("--preset", o->preset, fmt::format("{}", fmt::join(PresetNames(), ", ")))
      ->required();
  cmd->add_option("--out", o->out, "Output directory (safetensors) or .gguf file")->required();
  cmd->add_option("--format", o->format, "safetensors or gguf")->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "f32, bf16 or f16")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Random seed")->capture_default_str();
  cmd->add_option("--max-shard-bytes", o->max_shard_bytes,
                  "Split safetensors into shards of at most this size (0 = one file)")->capture_default_str();
  cmd->callback([o, exit_code] {
    Status s = RunMakeModel(*o);
    *exit_code = s.ok() ? 0 : ReportError("make-model", s);
  });
}

}  // namespace qb::cli
