// The structured-output fields of the APIs, turned into a grammar for the engine:
//   OpenAI   response_format {"type": "text" | "json_object" | "json_schema",
//            "json_schema": {"name": ..., "schema": {...}, "strict": ...}}
//   vLLM     guided_json (a schema, as an object or a JSON string), guided_choice (strings),
//            guided_regex (the whole output matches)
//   TGI      parameters.grammar {"type": "json" | "json_object", "value": schema} or
//            {"type": "regex", "value": pattern}
// A bad or unsupported schema is a 400 that names the field and the place in the schema.
#pragma once

#include <memory>
#include <optional>

#include "grammar/grammar.h"
#include "server/api_types.h"
#include "tokenizer/chat_template.h"

namespace qb::api {

// Sets p.gen.grammar from the body's OpenAI/vLLM fields, if any.
std::optional<HttpError> ReadStructuredOutput(const OrderedJson& body, ParsedRequest& p);
// The same for TGI's parameters.grammar.
std::optional<HttpError> ReadTgiGrammar(const OrderedJson& grammar, ParsedRequest& p);

}  // namespace qb::api
