// Tool calls in generated text: Qwen2.5 writes <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>.
#pragma once

#include <string>
#include <vector>

#include "tokenizer/chat_template.h"

namespace qb {

struct ToolCall {
  std::string name;
  OrderedJson arguments;  // usually an object
};

struct ParsedReply {
  std::string content;  // the text outside the tool-call blocks (trimmed of surrounding newlines)
  std::vector<ToolCall> tool_calls;
};

// Blocks whose JSON does not parse, or that are not closed, stay in `content` as text.
ParsedReply ParseToolCalls(const std::string& text);

}  // namespace qb
