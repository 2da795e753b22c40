// qwenbox info --model PATH [--json]: architecture, parameter count, dtypes, bytes, context.
#include <cstdio>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "model/loader.h"
#include "util/json.h"

namespace qb::cli {

namespace {

struct InfoOptions {
  std::string model;
  bool json = false;
};

Status RunInfo(const InfoOptions& o) {
  LoadOptions lo;
  lo.interleave = false;  // report the file's own types
  QB_ASSIGN_OR_RETURN(LoadedModel loaded, LoadModel(o.model, lo));
  const ModelConfig& c = loaded.model->config();
  const WeightsSummary s = Summarize(loaded.model->weights());
  const char* format = loaded.format == CheckpointFormat::kGguf ? "gguf" : "safetensors";
  std::map<std::string, int64_t> dtypes;
  for (const auto& [dt, n] : s.tensors_by_dtype) dtypes[std::string(Name(dt))] = n;
  std::string rope = fmt::format("theta {:g}", c.rope_theta);
  if (c.rope_scaling.kind == RopeScaling::Kind::kYarn)
    rope += fmt::format(", yarn x{:g} from {}", c.rope_scaling.factor, c.rope_scaling.original_max_position_embeddings);
  if (o.json) {
    nlohmann::ordered_json j;
    j["path"] = loaded.path;
    j["format"] = format;
    j["architecture"] = c.architecture;
    j["hidden_size"] = c.hidden_size;
    j["num_layers"] = c.num_layers;
    j["num_heads"] = c.num_heads;
    j["num_kv_heads"] = c.num_kv_heads;
    j["head_dim"] = c.head_dim;
    j["intermediate_size"] = c.intermediate_size;
    j["vocab_size"] = c.vocab_size;
    j["tie_word_embeddings"] = c.tie_word_embeddings;
    j["context_length"] = c.max_position_embeddings;
    j["rope"] = rope;
    j["parameters"] = s.parameters;
    j["weight_bytes"] = s.bytes;
    j["tensors_by_dtype"] = dtypes;
    j["eos_token_ids"] = loaded.generation.eos_token_ids;
    std::puts(j.dump(2).c_str());
    return Status::Ok();
  }
  std::string dt;
  for (const auto& [name, n] : dtypes) dt += fmt::format("{}{} x {}", dt.empty() ? "" : ", ", name, n);
  std::printf("%s", fmt::format(
      "model:          {} ({})\n"
      "architecture:   {}: {} layers, hidden {}, {} heads / {} kv heads of {}, intermediate {}\n"
      "vocabulary:     {} ({} embeddings)\n"
      "parameters:     {} ({:.3f} B)\n"
      "weights:        {} bytes ({:.2f} GiB); tensors: {}\n"
      "context length: {} (rope {})\n"
      "eos token ids:  {}\n",
      loaded.path, format, c.architecture, c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads,
      c.head_dim, c.intermediate_size, c.vocab_size, c.tie_word_embeddings ? "tied" : "separate lm_head",
      s.parameters, static_cast<double>(s.parameters) / 1e9, s.bytes,
      static_cast<double>(s.bytes) / (1024.0 * 1024.0 * 1024.0), dt, c.max_position_embeddings, rope,
      fmt::join(loaded.generation.eos_token_ids, ", ")).c_str());
  return Status::Ok();
}

}  // namespace

void AddInfoCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* cmd = app.add_subcommand("info", "Describe a model: architecture, parameters, dtypes, bytes, context");
  cmd->add_option("--model", o->model, "Model: a Hugging Face directory or a .gguf file")->required();
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o, exit_code] {
    Status s = RunInfo(*o);
    *exit_code = s.ok() ? 0 : ReportError("info", s);
  });
}

}  // namespace qb::cli
