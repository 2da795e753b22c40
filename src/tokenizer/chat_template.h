// Chat templates, rendered natively (no Jinja engine): qwenbox recognises Qwen2.5's official
// template (the one in Qwen2.5-Instruct's tokenizer_config.json, with its tool-calling block)
// by its exact text and renders it byte-identically. Any other template is refused with a
// message, never rendered approximately.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace qb {

using OrderedJson = nlohmann::ordered_json;

enum class ChatTemplateKind { kQwen25 };

// Which template `text` is; an error that says so when qwenbox cannot render it faithfully.
Result<ChatTemplateKind> RecognizeChatTemplate(const std::string& text);

// messages: [{"role": "system"|"user"|"assistant"|"tool", "content": "...", "tool_calls": [...]}]
// tools: [] or null for none; each tool is rendered with Python json.dumps formatting, as
// transformers' tojson filter does (key order kept, ", " and ": " separators, UTF-8 unescaped).
Result<std::string> RenderChat(ChatTemplateKind kind, const OrderedJson& messages, const OrderedJson& tools,
                               bool add_generation_prompt);

// json.dumps(value, ensure_ascii=False) as Python writes it.
std::string PythonJsonDumps(const OrderedJson& value);

}  // namespace qb
