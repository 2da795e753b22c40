// qwenbox generate --model PATH --ids 1,2,3 --max-tokens N [--temperature T] [--top-p P]
//                  [--top-k K] [--seed S] [--ignore-eos] [--json]
#include <cstdio>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "model/loader.h"
#include "sampling/sampler.h"

namespace qb::cli {

namespace {

struct GenerateOptions {
  std::string model;
  std::string ids;
  int64_t max_tokens = 16;
  std::optional<float> temperature;
  std::optional<float> top_p;
  std::optional<int64_t> top_k;
  uint64_t seed = 0;
  bool ignore_eos = false;
  bool json = false;
};

// Flags override the checkpoint's generation_config.json; with neither, decoding is greedy.
SamplingParams ResolveSampling(const GenerateOptions& o, const GenerationConfig& g) {
  SamplingParams p;
  p.temperature = o.temperature.value_or(g.do_sample ? static_cast<float>(g.temperature.value_or(1.0)) : 0.0f);
  p.top_p = o.top_p.value_or(g.do_sample ? static_cast<float>(g.top_p.value_or(1.0)) : 1.0f);
  p.top_k = o.top_k.value_or(g.do_sample ? g.top_k.value_or(0) : 0);
  p.seed = o.seed;
  return p;
}

Status RunGenerate(const GenerateOptions& o) {
  QB_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, ParseIds(o.ids));
  if (o.max_tokens < 0) return InvalidArgument("--max-tokens must be >= 0");
  if (o.temperature && *o.temperature < 0) return InvalidArgument("--temperature must be >= 0");
  if (o.top_p && (*o.top_p <= 0 || *o.top_p > 1)) return InvalidArgument("--top-p must be in (0, 1]");
  if (o.top_k && *o.top_k < 0) return InvalidArgument("--top-k must be >= 0");
  QB_ASSIGN_OR_RETURN(LoadedModel loaded, LoadModel(o.model));
  const Qwen2Model& model = *loaded.model;
  const int64_t total = static_cast<int64_t>(prompt.size()) + o.max_tokens;
  if (total > model.config().max_position_embeddings)
    return InvalidArgument(fmt::format("prompt ({}) + max tokens ({}) exceeds the context length {}",
                                       prompt.size(), o.max_tokens, model.config().max_position_embeddings));
  Sampler sampler(ResolveSampling(o, loaded.generation));
  ContiguousKvCache cache(model.config(), total);
  std::vector<int32_t> generated;
  std::vector<int32_t> step = prompt;
  int64_t pos = 0;
  while (static_cast<int64_t>(generated.size()) < o.max_tokens) {
    QB_ASSIGN_OR_RETURN(Tensor logits, model.Forward(step, pos, cache, false));
    pos += static_cast<int64_t>(step.size());
    const int32_t next = sampler.Sample({logits.data<float>(), static_cast<size_t>(logits.cols())});
    generated.push_back(next);
    const auto& eos = loaded.generation.eos_token_ids;
    if (!o.ignore_eos && std::find(eos.begin(), eos.end(), next) != eos.end()) break;
    step = {next};
  }
  const std::string out = o.json ? fmt::format("{{\"ids\": [{}]}}\n", fmt::join(generated, ", "))
                                 : fmt::format("{}\n", fmt::join(generated, ","));
  std::fputs(out.c_str(), stdout);
  return Status::Ok();
}

}  // namespace

void AddGenerateCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Continue a list of token ids");
  cmd->add_option("--model", o->model, "Model: a Hugging Face directory or a .gguf file")->required();
  cmd->add_option("--ids", o->ids, "Prompt as comma-separated token ids")->required();
  cmd->add_option("--max-tokens", o->max_tokens, "Tokens to generate")->capture_default_str();
  cmd->add_option("--temperature", o->temperature,
                  "Sampling temperature; 0 = greedy (default: generation_config.json, else greedy)");
  cmd->add_option("--top-p", o->top_p, "Nucleus sampling threshold in (0, 1]");
  cmd->add_option("--top-k", o->top_k, "Sample among the K most likely tokens (0 = all)");
  cmd->add_option("--seed", o->seed, "Random seed for sampling")->capture_default_str();
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Keep generating after an end-of-sequence token");
  cmd->add_flag("--json", o->json, "Print {\"ids\": [...]} instead of a comma-separated line");
  cmd->callback([o, exit_code] {
    Status s = RunGenerate(*o);
    *exit_code = s.ok() ? 0 : ReportError("generate", s);
  });
}

}  // namespace qb::cli
