#include "tokenizer/chat_template.h"

#include <fmt/format.h>

#include "assets/assets.h"
#include "util/json.h"

namespace qb {

namespace {

constexpr std::string_view kDefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
constexpr std::string_view kToolsIntro =
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
constexpr std::string_view kToolsOutro =
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\n</tool_call><|im_end|>\n";

const std::string& Qwen25TemplateText() {
  static const std::string text = [] {
    auto cfg = ParseJson(assets::Qwen25TokenizerConfigJson(), "built-in tokenizer_config.json");
    return cfg.ok() ? cfg->value("chat_template", std::string()) : std::string();
  }();
  return text;
}

// Jinja truthiness of an optional field: absent, null, false, "", [] and {} are false.
bool Truthy(const OrderedJson& obj, const char* key) {
  if (!obj.is_object()) return false;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return false;
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_string()) return !it->get_ref<const std::string&>().empty();
  if (it->is_array() || it->is_object()) return !it->empty();
  if (it->is_number()) return it->get<double>() != 0;
  return true;
}

std::string Role(const OrderedJson& m) {
  auto it = m.find("role");
  return it != m.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Result<std::string> Content(const OrderedJson& m, size_t index) {
  auto it = m.find("content");
  if (it != m.end() && it->is_string()) return it->get<std::string>();
  return InvalidArgument(fmt::format("message {} ({}) needs a string \"content\"", index, Role(m)));
}

}  // namespace

Result<ChatTemplateKind> RecognizeChatTemplate(const std::string& text) {
  if (text.empty()) return NotFound("the tokenizer has no chat template");
  if (text == Qwen25TemplateText()) return ChatTemplateKind::kQwen25;
  return Unimplemented(
      "the model's chat template is not Qwen2.5's official template, and qwenbox renders chat "
      "templates natively (no Jinja engine): it will not guess at this one");
}

std::string PythonJsonDumps(const OrderedJson& v) {
  switch (v.type()) {
    case OrderedJson::value_t::object: {
      std::string out = "{";
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out += ", ";
        first = false;
        out += OrderedJson(it.key()).dump(-1, ' ', false, OrderedJson::error_handler_t::replace);
        out += ": ";
        out += PythonJsonDumps(*it);
      }
      return out + "}";
    }
    case OrderedJson::value_t::array: {
      std::string out = "[";
      for (size_t i = 0; i < v.size(); ++i) {
        if (i) out += ", ";
        out += PythonJsonDumps(v[i]);
      }
      return out + "]";
    }
    case OrderedJson::value_t::number_float: {
      const double d = v.get<double>();
      if (d != d) return "NaN";
      if (d == std::numeric_limits<double>::infinity()) return "Infinity";
      if (d == -std::numeric_limits<double>::infinity()) return "-Infinity";
      return v.dump();
    }
    default:
      return v.dump(-1, ' ', false, OrderedJson::error_handler_t::replace);
  }
}

Result<std::string> RenderChat(ChatTemplateKind kind, const OrderedJson& messages, const OrderedJson& tools,
                               bool add_generation_prompt) {
  (void)kind;  // one kind so far: Qwen2.5
  if (!messages.is_array() || messages.empty()) return InvalidArgument("messages must be a non-empty array");
  for (size_t i = 0; i < messages.size(); ++i)
    if (!messages[i].is_object()) return InvalidArgument(fmt::format("message {} is not an object", i));
  if (!tools.is_null() && !tools.is_array()) return InvalidArgument("tools must be an array");
  const bool has_tools = tools.is_array() && !tools.empty();
  const OrderedJson& first = messages[0];
  std::string out;
  if (has_tools) {
    out += "<|im_start|>system\n";
    if (Role(first) == "system") {
      QB_ASSIGN_OR_RETURN(std::string c, Content(first, 0));
      out += c;
    } else {
      out += kDefaultSystem;
    }
    out += kToolsIntro;
    for (const auto& tool : tools) {
      out += "\n";
      out += PythonJsonDumps(tool);
    }
    out += kToolsOutro;
  } else if (Role(first) == "system") {
    QB_ASSIGN_OR_RETURN(std::string c, Content(first, 0));
    out += "<|im_start|>system\n" + c + "<|im_end|>\n";
  } else {
    out += "<|im_start|>system\n";
    out += kDefaultSystem;
    out += "<|im_end|>\n";
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const OrderedJson& m = messages[i];
    const std::string role = Role(m);
    const bool tool_calls = Truthy(m, "tool_calls");
    if (role == "user" || (role == "system" && i != 0) || (role == "assistant" && !tool_calls)) {
      QB_ASSIGN_OR_RETURN(std::string c, Content(m, i));
      out += "<|im_start|>" + role + "\n" + c + "<|im_end|>\n";
    } else if (role == "assistant") {
      out += "<|im_start|>assistant";
      if (Truthy(m, "content")) {
        QB_ASSIGN_OR_RETURN(std::string c, Content(m, i));
        out += "\n" + c;
      }
      if (!m["tool_calls"].is_array()) return InvalidArgument(fmt::format("message {}: tool_calls must be an array", i));
      for (const auto& call : m["tool_calls"]) {
        const OrderedJson& fn = call.is_object() && call.contains("function") ? call["function"] : call;
        if (!fn.is_object() || !fn.contains("name") || !fn["name"].is_string())
          return InvalidArgument(fmt::format("message {}: a tool call needs a function name", i));
        out += "\n<tool_call>\n{\"name\": \"";
        out += fn["name"].get<std::string>();
        out += "\", \"arguments\": ";
        out += PythonJsonDumps(fn.contains("arguments") ? fn["arguments"] : OrderedJson());
        out += "}\n</tool_call>";
      }
      out += "<|im_end|>\n";
    } else if (role == "tool") {
      if (i == 0 || Role(messages[i - 1]) != "tool") out += "<|im_start|>user";
      QB_ASSIGN_OR_RETURN(std::string c, Content(m, i));
      out += "\n<tool_response>\n" + c + "\n</tool_response>";
      if (i + 1 == messages.size() || Role(messages[i + 1]) != "tool") out += "<|im_end|>\n";
    }
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

}  // namespace qb
