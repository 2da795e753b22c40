// qwenbox tokenize --model PATH (--text T | --file F | --jsonl F) [--no-parse-special]
// Prints {"ids": [...]}; with --jsonl, one {"ids": [...]} line per input line (each a JSON
// object with a "text" field; blank lines are skipped). External checks use this interface.
#include <cstdio>
#include <fstream>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "util/json.h"

namespace qb::cli {

namespace {

struct TokenizeOptions {
  std::string model;
  std::string text;
  std::string file;
  std::string jsonl;
  bool no_parse_special = false;
};

std::string IdsLine(const std::vector<int32_t>& ids) { return fmt::format("{{\"ids\": [{}]}}\n", fmt::join(ids, ", ")); }

Status RunTokenize(const TokenizeOptions& o) {
  const int sources = !o.text.empty() + !o.file.empty() + !o.jsonl.empty();
  if (sources != 1) return InvalidArgument("give exactly one of --text, --file, --jsonl");
  QB_ASSIGN_OR_RETURN(auto tok, LoadTokenizer(o.model));
  const bool special = !o.no_parse_special;
  if (!o.jsonl.empty()) {
    std::ifstream in(o.jsonl, std::ios::binary);
    if (!in) return NotFound(fmt::format("{}: cannot open", o.jsonl));
    std::string line, out;
    for (int n = 1; std::getline(in, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto j = ParseJson(line, fmt::format("{} line {}", o.jsonl, n));
      if (!j.ok()) return j.status();
      if (!j->is_object() || !j->contains("text") || !(*j)["text"].is_string())
        return InvalidArgument(fmt::format("{} line {}: expected an object with a string \"text\"", o.jsonl, n));
      out += IdsLine(tok->Encode((*j)["text"].get<std::string>(), special));
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    return Status::Ok();
  }
  std::string text = o.text;
  if (!o.file.empty()) {
    QB_ASSIGN_OR_RETURN(text, ReadFileToString(o.file));
  }
  const std::string line = IdsLine(tok->Encode(unicode::Lossy(text), special));
  std::fwrite(line.data(), 1, line.size(), stdout);
  return Status::Ok();
}

struct DetokenizeOptions {
  std::string model;
  std::string ids;
  bool skip_special = false;
};

Status RunDetokenize(const DetokenizeOptions& o) {
  QB_ASSIGN_OR_RETURN(std::vector<int32_t> ids, ParseIds(o.ids));
  QB_ASSIGN_OR_RETURN(auto tok, LoadTokenizer(o.model));
  QB_ASSIGN_OR_RETURN(std::string text, tok->Decode(ids, o.skip_special));
  std::fwrite(text.data(), 1, text.size(), stdout);
  return Status::Ok();
}

}  // namespace

void AddTokenizeCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Text to token ids, as {\"ids\": [...]}");
  cmd->add_option("--model", o->model, "A model directory, a directory of tokenizer files, or a .gguf file")->required();
  cmd->add_option("--text", o->text, "The text to tokenize");
  cmd->add_option("--file", o->file, "Tokenize this file's contents");
  cmd->add_option("--jsonl", o->jsonl, "One JSON object with a \"text\" field per line; prints one line each");
  cmd->add_flag("--no-parse-special", o->no_parse_special, "Encode added tokens such as <|im_end|> as plain text");
  cmd->callback([o, exit_code] {
    Status s = RunTokenize(*o);
    *exit_code = s.ok() ? 0 : ReportError("tokenize", s);
  });
}

void AddDetokenizeCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<DetokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("detokenize", "Token ids to text (printed exactly, without a newline)");
  cmd->add_option("--model", o->model, "A model directory, a directory of tokenizer files, or a .gguf file")->required();
  cmd->add_option("--ids", o->ids, "Comma-separated token ids")->required();
  cmd->add_flag("--skip-special", o->skip_special, "Leave out special tokens such as <|im_end|>");
  cmd->callback([o, exit_code] {
    Status s = RunDetokenize(*o);
    *exit_code = s.ok() ? 0 : ReportError("detokenize", s);
  });
}

}  // namespace qb::cli
