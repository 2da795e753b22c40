// qwenbox generate --model PATH (--ids 1,2,3 | --prompt TEXT | --chat TEXT) --max-tokens N
//                  [--temperature T] [--top-p P] [--top-k K] [--seed S] [--ignore-eos] [--json]
// Without --json the text streams to stdout as it is generated; --json prints
// {"ids": [...], "text": "..."} at the end ("text" when a tokenizer is available).
#include <cstdio>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/exec_options.h"
#include "cli/lora_options.h"
#include "model/loader.h"
#include "model/step_model.h"
#include "sampling/sampler.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"
#include "util/json.h"

namespace qb::cli {

namespace {

struct GenerateOptions {
  std::string model;
  std::string ids;
  std::string prompt;
  std::string chat;
  int64_t max_tokens = 16;
  std::optional<float> temperature;
  std::optional<float> top_p;
  std::optional<int64_t> top_k;
  uint64_t seed = 0;
  bool ignore_eos = false;
  bool json = false;
  std::string lora;
  ExecOptions exec;
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

// The prompt's ids: given directly, or encoded from text (rendered as a user turn with --chat).
Result<std::vector<int32_t>> PromptIds(const GenerateOptions& o, const Tokenizer* tok) {
  if (!o.ids.empty()) return ParseIds(o.ids);
  if (tok == nullptr) return InvalidArgument("--prompt and --chat need the model's tokenizer");
  if (!o.prompt.empty()) return tok->Encode(o.prompt);
  auto kind = RecognizeChatTemplate(tok->chat_template());
  if (!kind.ok()) return kind.status();
  OrderedJson messages = OrderedJson::array({{{"role", "user"}, {"content", o.chat}}});
  QB_ASSIGN_OR_RETURN(std::string text, RenderChat(*kind, messages, OrderedJson(), true));
  return tok->Encode(text);
}

Status RunGenerate(const GenerateOptions& o) {
  if (!o.ids.empty() + !o.prompt.empty() + !o.chat.empty() != 1)
    return InvalidArgument("give exactly one of --ids, --prompt, --chat");
  if (o.max_tokens < 0) return InvalidArgument("--max-tokens must be >= 0");
  if (o.temperature && *o.temperature < 0) return InvalidArgument("--temperature must be >= 0");
  if (o.top_p && (*o.top_p <= 0 || *o.top_p > 1)) return InvalidArgument("--top-p must be in (0, 1]");
  if (o.top_k && *o.top_k < 0) return InvalidArgument("--top-k must be >= 0");
  std::unique_ptr<ThreadPool> pool;
  kernels::ExecContext ctx;
  QB_RETURN_IF_ERROR(o.exec.Make(&pool, &ctx));
  QB_ASSIGN_OR_RETURN(LoadedModel loaded, o.exec.Load(o.model, pool.get()));
  // The tokenizer is optional with --ids (a checkpoint may come without one).
  auto tok_result = LoadTokenizer(o.model);
  const Tokenizer* tok = tok_result.ok() ? tok_result->get() : nullptr;
  if (!tok && o.ids.empty()) return tok_result.status();
  QB_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, PromptIds(o, tok));
  if (prompt.empty()) return InvalidArgument("the prompt is empty");
  const ModelConfig& mc = loaded.model->config();
  const int64_t total = static_cast<int64_t>(prompt.size()) + o.max_tokens;
  if (total > mc.max_position_embeddings)
    return InvalidArgument(fmt::format("prompt ({}) + max tokens ({}) exceeds the context length {}",
                                       prompt.size(), o.max_tokens, mc.max_position_embeddings));
  Sampler sampler(ResolveSampling(o, loaded.generation), prompt);
  if (!o.lora.empty() && o.exec.tensor_parallel > 1) return Unimplemented("--lora with --tp is not supported");
  QB_ASSIGN_OR_RETURN(auto lora, LoadOneLora(o.lora, mc));
  auto model = MakeCpuSequenceModel(loaded, total, DType::kF32, ctx);
  std::vector<int32_t> generated;
  std::vector<int32_t> step = prompt;
  std::optional<StreamDecoder> stream;
  if (tok) stream.emplace(*tok);
  std::string text;
  const auto& eos = loaded.generation.eos_token_ids;
  int64_t pos = 0;
  while (static_cast<int64_t>(generated.size()) < o.max_tokens) {
    QB_ASSIGN_OR_RETURN(Tensor logits, model->Step(WithLora(SequenceBatch(step, pos, false), lora.get())));
    pos += static_cast<int64_t>(step.size());
    const int32_t next = sampler.Sample({logits.data<float>(), static_cast<size_t>(logits.cols())}).token;
    generated.push_back(next);
    const bool stop = !o.ignore_eos && std::find(eos.begin(), eos.end(), next) != eos.end();
    if (stream && !stop) {
      auto piece = stream->Push(next);
      if (piece.ok()) {
        text += *piece;
        if (!o.json) {
          std::fwrite(piece->data(), 1, piece->size(), stdout);
          std::fflush(stdout);
        }
      }
    }
    if (stop) break;
    step = {next};
  }
  if (stream) {
    const std::string tail = stream->Finish();
    text += tail;
    if (!o.json) std::fwrite(tail.data(), 1, tail.size(), stdout);
  }
  if (o.json) {
    nlohmann::ordered_json j;
    j["ids"] = generated;
    if (tok) j["text"] = text;
    std::puts(j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
  } else if (!tok) {
    std::puts(fmt::format("{}", fmt::join(generated, ",")).c_str());
  } else {
    std::fputc('\n', stdout);
  }
  return Status::Ok();
}

}  // namespace

void AddGenerateCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Continue a prompt: token ids, text, or a chat message");
  cmd->add_option("--model", o->model, "Model: a Hugging Face directory or a .gguf file")->required();
  cmd->add_option("--ids", o->ids, "Prompt as comma-separated token ids");
  cmd->add_option("--prompt", o->prompt, "Prompt as text (added tokens such as <|im_start|> are recognised)");
  cmd->add_option("--chat", o->chat, "A user message, rendered with the model's chat template");
  cmd->add_option("--max-tokens", o->max_tokens, "Tokens to generate")->capture_default_str();
  cmd->add_option("--lora", o->lora, "A LoRA adapter (PEFT directory) applied to the model");
  cmd->add_option("--temperature", o->temperature,
                  "Sampling temperature; 0 = greedy (default: generation_config.json, else greedy)");
  cmd->add_option("--top-p", o->top_p, "Nucleus sampling threshold in (0, 1]");
  cmd->add_option("--top-k", o->top_k, "Sample among the K most likely tokens (0 = all)");
  cmd->add_option("--seed", o->seed, "Random seed for sampling")->capture_default_str();
  o->exec.Add(cmd, "fast");
  o->exec.AddTensorParallel(cmd);
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Keep generating after an end-of-sequence token");
  cmd->add_flag("--json", o->json, "Print {\"ids\": [...], \"text\": \"...\"} at the end instead of streaming text");
  cmd->callback([o, exit_code] {
    Status s = RunGenerate(*o);
    *exit_code = s.ok() ? 0 : ReportError("generate", s);
  });
}

}  // namespace qb::cli
