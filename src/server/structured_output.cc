#include "server/structured_output.h"

#include <fmt/format.h>

#include "grammar/grammar_cache.h"
#include "grammar/json_grammar.h"
#include "grammar/regex_grammar.h"

namespace qb::api {

namespace {

// Compiled grammars shared by all requests (a schema sent again is compiled once and shares its
// allowed-token sets in the engine).
GrammarCache& Compiled() {
  static GrammarCache cache;
  return cache;
}

Result<std::shared_ptr<const Grammar>> CachedSchema(const OrderedJson& schema) {
  return Compiled().GetOrBuild("schema:" + schema.dump(), [&] { return JsonSchemaGrammar(schema); });
}
Result<std::shared_ptr<const Grammar>> CachedRegex(const std::string& pattern) {
  return Compiled().GetOrBuild("regex:" + pattern, [&] { return RegexGrammar(pattern); });
}
Result<std::shared_ptr<const Grammar>> CachedChoice(const std::vector<std::string>& choices) {
  return Compiled().GetOrBuild("choice:" + OrderedJson(choices).dump(), [&] { return ChoiceGrammar(choices); });
}

HttpError Bad(std::string message, std::string param, std::string type = "invalid_request_error") {
  return HttpError{400, std::move(type), std::move(message), std::move(param)};
}

// A schema given as an object, or as a JSON string holding one.
std::optional<HttpError> SchemaGrammar(const OrderedJson& schema, const std::string& param, ParsedRequest& p,
                                       const std::string& error_type) {
  OrderedJson s = schema;
  if (s.is_string()) {
    s = OrderedJson::parse(schema.get<std::string>(), nullptr, false);
    if (s.is_discarded()) return Bad(fmt::format("'{}' is a string that is not JSON", param), param, error_type);
  }
  auto g = CachedSchema(s);
  if (!g.ok()) return Bad(fmt::format("'{}': {}", param, g.status().message()), param, error_type);
  p.gen.grammar = *g;
  return std::nullopt;
}

}  // namespace

std::optional<HttpError> ReadStructuredOutput(const OrderedJson& body, ParsedRequest& p) {
  int given = 0;
  for (const char* k : {"guided_json", "guided_choice", "guided_regex"}) given += body.contains(k) && !body[k].is_null();
  if (body.contains("response_format") && !body["response_format"].is_null()) {
    const OrderedJson& rf = body["response_format"];
    const std::string param = "response_format";
    if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string())
      return Bad("'response_format' must be an object with a 'type'", param);
    const std::string type = rf["type"].get<std::string>();
    if (type == "json_object") {
      p.gen.grammar = JsonObjectGrammar();
      ++given;
    } else if (type == "json_schema") {
      if (!rf.contains("json_schema") || !rf["json_schema"].is_object())
        return Bad("'response_format' of type json_schema needs a 'json_schema' object", param);
      const OrderedJson& js = rf["json_schema"];
      // "schema" holds the schema; absent, any JSON value is allowed (as OpenAI does).
      if (auto e = SchemaGrammar(js.contains("schema") ? js["schema"] : OrderedJson::object(), param, p,
                                 "invalid_request_error"))
        return e;
      ++given;
    } else if (type != "text") {
      return Bad(fmt::format("'response_format' type '{}' is not one of text, json_object, json_schema", type), param);
    }
  }
  if (given > 1) return Bad("give one of response_format, guided_json, guided_choice and guided_regex", "response_format");
  if (body.contains("guided_regex") && !body["guided_regex"].is_null()) {
    if (!body["guided_regex"].is_string()) return Bad("'guided_regex' must be a string", "guided_regex");
    auto g = CachedRegex(body["guided_regex"].get<std::string>());
    if (!g.ok()) return Bad(fmt::format("'guided_regex': {}", g.status().message()), "guided_regex");
    p.gen.grammar = *g;
  }
  if (body.contains("guided_json") && !body["guided_json"].is_null())
    return SchemaGrammar(body["guided_json"], "guided_json", p, "invalid_request_error");
  if (body.contains("guided_choice") && !body["guided_choice"].is_null()) {
    const OrderedJson& c = body["guided_choice"];
    std::vector<std::string> choices;
    if (c.is_array())
      for (const auto& x : c) {
        if (!x.is_string()) return Bad("'guided_choice' must be an array of strings", "guided_choice");
        choices.push_back(x.get<std::string>());
      }
    else
      return Bad("'guided_choice' must be an array of strings", "guided_choice");
    auto g = CachedChoice(choices);
    if (!g.ok()) return Bad(fmt::format("'guided_choice': {}", g.status().message()), "guided_choice");
    p.gen.grammar = *g;
  }
  return std::nullopt;
}

std::optional<HttpError> ReadTgiGrammar(const OrderedJson& grammar, ParsedRequest& p) {
  if (!grammar.is_object() || !grammar.contains("type") || !grammar["type"].is_string() || !grammar.contains("value"))
    return Bad("'grammar' must be {\"type\": \"json\", \"value\": <JSON schema>}", "grammar", "validation");
  const std::string type = grammar["type"].get<std::string>();
  if (type == "regex") {
    if (!grammar["value"].is_string()) return Bad("'grammar' of type regex needs a string 'value'", "grammar", "validation");
    auto g = CachedRegex(grammar["value"].get<std::string>());
    if (!g.ok()) return Bad(fmt::format("'grammar': {}", g.status().message()), "grammar", "validation");
    p.gen.grammar = *g;
    return std::nullopt;
  }
  if (type != "json" && type != "json_object")
    return Bad(fmt::format("'grammar' type '{}' is not json or regex", type), "grammar", "validation");
  return SchemaGrammar(grammar["value"], "grammar", p, "validation");
}

}  // namespace qb::api
