// qwenbox chat-template --model PATH --messages FILE.json [--tools FILE.json]
//                       [--add-generation-prompt]
// Prints the rendered prompt exactly (no added newline). External checks use this interface.
#include <cstdio>
#include <memory>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/json.h"

namespace qb::cli {

namespace {

struct ChatTemplateOptions {
  std::string model;
  std::string messages;
  std::string tools;
  bool add_generation_prompt = false;
};

Result<OrderedJson> ReadOrderedJson(const std::string& path) {
  QB_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  try {
    return OrderedJson::parse(text);
  } catch (const OrderedJson::parse_error& e) {
    return InvalidArgument(path + ": invalid JSON: " + e.what());
  }
}

Status RunChatTemplate(const ChatTemplateOptions& o) {
  QB_ASSIGN_OR_RETURN(auto tok, LoadTokenizer(o.model));
  auto kind = RecognizeChatTemplate(tok->chat_template());
  if (!kind.ok()) return kind.status().WithContext(o.model);
  QB_ASSIGN_OR_RETURN(OrderedJson messages, ReadOrderedJson(o.messages));
  OrderedJson tools;
  if (!o.tools.empty()) {
    QB_ASSIGN_OR_RETURN(tools, ReadOrderedJson(o.tools));
  }
  QB_ASSIGN_OR_RETURN(std::string text, RenderChat(*kind, messages, tools, o.add_generation_prompt));
  std::fwrite(text.data(), 1, text.size(), stdout);
  return Status::Ok();
}

}  // namespace

void AddChatTemplateCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<ChatTemplateOptions>();
  CLI::App* cmd = app.add_subcommand("chat-template", "Render chat messages with the model's chat template");
  cmd->add_option("--model", o->model, "A model directory, a directory of tokenizer files, or a .gguf file")->required();
  cmd->add_option("--messages", o->messages, "A JSON file holding the array of messages")->required();
  cmd->add_option("--tools", o->tools, "A JSON file holding the array of tool definitions");
  cmd->add_flag("--add-generation-prompt", o->add_generation_prompt, "End with the assistant turn's opening");
  cmd->callback([o, exit_code] {
    Status s = RunChatTemplate(*o);
    *exit_code = s.ok() ? 0 : ReportError("chat-template", s);
  });
}

}  // namespace qb::cli
