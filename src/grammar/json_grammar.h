// Grammars for structured output: any JSON object (OpenAI's JSON mode), JSON conforming to a
// JSON Schema (OpenAI's json_schema response format, vLLM's guided_json, TGI's json grammar),
// and one of a list of strings (vLLM's guided_choice).
//
// Schemas: type (or a list of types), properties / required / additionalProperties, items /
// prefixItems / minItems / maxItems, minLength / maxLength, enum, const, anyOf / oneOf, allOf
// of one schema, $ref into #/$defs or #/definitions (recursion allowed), `pattern` (the
// regex_grammar.h subset; the value contains a match unless anchored), `format` date, time,
// date-time and uuid, integer bounds (minimum, maximum, exclusive ones), "minimum": 0 on
// numbers, and {} or true for any value. Properties come in the order the schema lists them; the required ones must be
// there; with `properties` given, other keys are allowed only when additionalProperties says so.
// Annotations (title, description, default, examples, other formats, ...) are ignored; keywords
// whose constraint a grammar here cannot enforce (other bounds on numbers, multipleOf,
// uniqueItems, ...) are refused with a message, never silently dropped. Whitespace between
// tokens is limited to 20 bytes and numbers to 16 digits before and after the point (exponents to 2), so that a
// model cannot run on forever inside a value the schema allows.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "grammar/grammar.h"
#include "util/status.h"

namespace qb {

// Forced tool calls in Qwen2.5's format (<tool_call>\n{"name": ..., "arguments": ...}\n</tool_call>),
// each call's arguments following its function's parameters schema. The server has already
// written the start of the reply: with `named`, `<tool_call>\n{"name": "F", "arguments": ` for the
// one tool given, and the grammar is the rest of that call; otherwise `<tool_call>\n`, and the
// grammar is one call of any of the tools (more calls after it when `parallel`).
struct ToolSchema {
  std::string name;
  nlohmann::ordered_json parameters;  // a JSON schema (an object's, usually)
};
Result<std::shared_ptr<const Grammar>> ToolCallGrammar(const std::vector<ToolSchema>& tools, bool named, bool parallel);

std::shared_ptr<const Grammar> JsonObjectGrammar();
Result<std::shared_ptr<const Grammar>> JsonSchemaGrammar(const nlohmann::ordered_json& schema);
Result<std::shared_ptr<const Grammar>> ChoiceGrammar(const std::vector<std::string>& choices);

}  // namespace qb
