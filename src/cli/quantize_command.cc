// qwenbox quantize IN OUT --type q8_0|q4_0|q4_k|f16|bf16|f32 [-t THREADS]
// Writes a GGUF with llama.cpp's qwen2 names and metadata (llama.cpp loads it), the tokenizer's
// metadata included: copied from a GGUF input, or built from tokenizer.json beside the weights.
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/exec_options.h"
#include "formats/gguf.h"
#include "model/gguf_export.h"
#include "model/loader.h"
#include "tokenizer/tokenizer_files.h"

namespace qb::cli {

namespace {

struct QuantizeOptions {
  std::string in;
  std::string out;
  std::string type;
  ExecOptions exec;
};

Result<std::vector<std::pair<std::string, GgufValue>>> TokenizerMetadata(const std::string& in, const LoadedModel& m) {
  std::vector<std::pair<std::string, GgufValue>> md;
  if (m.format == CheckpointFormat::kGguf) {
    QB_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(in));
    for (const auto& [k, v] : g.metadata())
      if (k.rfind("tokenizer.", 0) == 0) md.emplace_back(k, v);
    return md;
  }
  const std::string dir = std::filesystem::is_directory(in) ? in : std::filesystem::path(in).parent_path().string();
  auto files = ReadTokenizerFiles(dir);
  if (!files.ok()) {
    std::fprintf(stderr, "qwenbox quantize: warning: no tokenizer.json in %s; the GGUF will have no tokenizer\n", dir.c_str());
    return md;
  }
  const ModelConfig& c = m.model->config();
  SpecialTokenIds ids;
  ids.eos = c.eos_token_ids.empty() ? 0 : c.eos_token_ids[0];
  ids.bos = m.generation.bos_token_id.value_or(c.bos_token_id.value_or(ids.eos));
  ids.pad = m.generation.pad_token_id.value_or(ids.eos);
  return TokenizerGgufMetadata(*files, c.vocab_size, ids);
}

Status RunQuantize(const QuantizeOptions& o) {
  QB_ASSIGN_OR_RETURN(QuantPlan plan, FindQuantPlan(o.type));
  std::unique_ptr<ThreadPool> pool;
  kernels::ExecContext ctx;
  QB_RETURN_IF_ERROR(o.exec.Make(&pool, &ctx));
  LoadOptions lo;
  lo.interleave = false;
  QB_ASSIGN_OR_RETURN(LoadedModel m, LoadModel(o.in, lo));
  QB_ASSIGN_OR_RETURN(auto md, TokenizerMetadata(o.in, m));
  const std::string name = std::filesystem::path(o.in).filename().string() + "-" + o.type;
  QB_RETURN_IF_ERROR(ExportGguf(m.model->config(), m.model->weights(), plan, name, md, o.out, pool.get()));
  std::fprintf(stderr, "wrote %s (%s)\n", o.out.c_str(), o.type.c_str());
  return Status::Ok();
}

}  // namespace

void AddQuantizeCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<QuantizeOptions>();
  CLI::App* cmd = app.add_subcommand("quantize", "Convert a model to a GGUF of another weight type");
  cmd->add_option("IN", o->in, "Model: a Hugging Face directory or a .gguf file")->required();
  cmd->add_option("OUT", o->out, "The .gguf file to write")->required();
  cmd->add_option("--type", o->type, "q8_0, q4_0, q4_k (Q6_K lm_head), f16, bf16 or f32")->required();
  o->exec.Add(cmd, "fast");
  cmd->callback([o, exit_code] {
    Status s = RunQuantize(*o);
    *exit_code = s.ok() ? 0 : ReportError("quantize", s);
  });
}

}  // namespace qb::cli
