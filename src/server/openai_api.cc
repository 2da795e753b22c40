#include "server/openai_api.h"

#include <algorithm>
#include <charconv>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "grammar/grammar.h"
#include "grammar/json_grammar.h"
#include "server/structured_output.h"
#include "tokenizer/unicode.h"

namespace qb::api {

namespace {

HttpError Bad(std::string message, std::string param = "") {
  return HttpError{400, "invalid_request_error", std::move(message), std::move(param)};
}

// Typed optional fields; an error names the field.
struct Reader {
  const OrderedJson& body;
  std::optional<HttpError> error;

  bool Has(const char* k) const { return body.contains(k) && !body[k].is_null(); }

  std::optional<double> Number(const char* k, double lo, double hi) {
    if (!Has(k) || error) return std::nullopt;
    if (!body[k].is_number()) {
      error = Bad(fmt::format("'{}' must be a number", k), k);
      return std::nullopt;
    }
    const double v = body[k].get<double>();
    if (!(v >= lo && v <= hi)) {
      error = Bad(fmt::format("'{}' must be between {} and {}, got {}", k, lo, hi, v), k);
      return std::nullopt;
    }
    return v;
  }
  std::optional<int64_t> Int(const char* k, int64_t lo, int64_t hi) {
    if (!Has(k) || error) return std::nullopt;
    if (!body[k].is_number_integer()) {
      error = Bad(fmt::format("'{}' must be an integer", k), k);
      return std::nullopt;
    }
    // An unsigned value above INT64_MAX would wrap to a negative one: out of range as it is.
    const bool huge = body[k].is_number_unsigned() && body[k].get<uint64_t>() > uint64_t{INT64_MAX};
    const auto v = body[k].get<int64_t>();
    if (huge || v < lo || v > hi) {
      error = Bad(fmt::format("'{}' must be between {} and {}, got {}", k, lo, hi, body[k].dump()), k);
      return std::nullopt;
    }
    return v;
  }
  std::optional<bool> Bool(const char* k) {
    if (!Has(k) || error) return std::nullopt;
    if (!body[k].is_boolean()) {
      error = Bad(fmt::format("'{}' must be true or false", k), k);
      return std::nullopt;
    }
    return body[k].get<bool>();
  }
  std::optional<std::string> String(const char* k) {
    if (!Has(k) || error) return std::nullopt;
    if (!body[k].is_string()) {
      error = Bad(fmt::format("'{}' must be a string", k), k);
      return std::nullopt;
    }
    return body[k].get<std::string>();
  }
};

std::optional<HttpError> CheckFields(const OrderedJson& body, const std::set<std::string>& known) {
  if (!body.is_object()) return Bad("the request body must be a JSON object");
  for (auto it = body.begin(); it != body.end(); ++it)
    if (!known.count(it.key())) return Bad(fmt::format("Unrecognized request argument supplied: {}", it.key()), it.key());
  return std::nullopt;
}

// The fields chat and completions share: sampling, stop, limits.
std::optional<HttpError> ReadCommon(Reader& r, const Defaults& d, const ServedNames& names, ParsedRequest& p) {
  p.model = names.model;
  if (auto model = r.String("model")) {
    const auto adapter = names.Find(*model);
    if (!adapter)
      return HttpError{404, "not_found_error",
                       fmt::format("The model '{}' does not exist (this server serves {})", *model, names.List()), "model"};
    p.gen.adapter = *adapter;
    if (*adapter > 0) p.model = *model;
  }
  SamplingParams& s = p.gen.sampling;
  s.temperature = static_cast<float>(r.Number("temperature", 0, 2).value_or(d.temperature));
  s.top_p = static_cast<float>(r.Number("top_p", 1e-9, 1).value_or(d.top_p));
  s.top_k = r.Int("top_k", -1, 1 << 20).value_or(d.top_k);
  if (s.top_k < 0) s.top_k = 0;  // vLLM's -1 = off
  s.min_p = static_cast<float>(r.Number("min_p", 0, 1).value_or(0));
  s.presence_penalty = static_cast<float>(r.Number("presence_penalty", -2, 2).value_or(0));
  s.frequency_penalty = static_cast<float>(r.Number("frequency_penalty", -2, 2).value_or(0));
  s.repetition_penalty = static_cast<float>(r.Number("repetition_penalty", 1e-3, 10).value_or(d.repetition_penalty));
  if (auto seed = r.Int("seed", INT64_MIN, INT64_MAX)) s.seed = static_cast<uint64_t>(*seed);
  else s.seed = std::random_device{}();
  p.n = static_cast<int>(r.Int("n", 1, d.max_n).value_or(1));
  p.stream = r.Bool("stream").value_or(false);
  if (p.stream && r.Has("prompt_logprobs")) return Bad("'prompt_logprobs' is not supported with stream: true", "prompt_logprobs");
  p.gen.ignore_eos = r.Bool("ignore_eos").value_or(false);
  p.gen.skip_special_tokens = r.Bool("skip_special_tokens").value_or(true);
  if (auto prio = r.Int("priority", -1000000, 1000000)) p.gen.priority = static_cast<int32_t>(*prio);
  if (r.error) return r.error;
  if (r.Has("stream_options")) {
    const OrderedJson& so = r.body["stream_options"];
    if (!so.is_object()) return Bad("'stream_options' must be an object", "stream_options");
    for (auto it = so.begin(); it != so.end(); ++it)
      if (it.key() != "include_usage") return Bad(fmt::format("Unrecognized stream option: {}", it.key()), "stream_options");
    if (so.contains("include_usage")) {
      if (!so["include_usage"].is_boolean()) return Bad("'stream_options.include_usage' must be true or false");
      p.include_usage = so["include_usage"].get<bool>();
    }
    if (!p.stream) return Bad("'stream_options' is only allowed with stream: true", "stream_options");
  }
  if (r.Has("stop")) {
    const OrderedJson& st = r.body["stop"];
    if (st.is_string()) {
      p.gen.stop.push_back(st.get<std::string>());
    } else if (st.is_array()) {
      for (const auto& x : st) {
        if (!x.is_string()) return Bad("'stop' must be a string or an array of strings", "stop");
        p.gen.stop.push_back(x.get<std::string>());
      }
    } else {
      return Bad("'stop' must be a string or an array of strings", "stop");
    }
    if (p.gen.stop.size() > kMaxStopSequences) return Bad(fmt::format("at most {} stop sequences", kMaxStopSequences), "stop");
    for (const auto& x : p.gen.stop)
      if (x.empty()) return Bad("a stop sequence is empty", "stop");
  }
  if (r.Has("stop_token_ids")) {
    const OrderedJson& st = r.body["stop_token_ids"];
    if (!st.is_array()) return Bad("'stop_token_ids' must be an array of integers", "stop_token_ids");
    for (const auto& x : st) {
      if (!IsTokenIdValue(x))
        return Bad("'stop_token_ids' must be an array of token ids (non-negative integers)", "stop_token_ids");
      p.gen.stop_token_ids.push_back(static_cast<int32_t>(x.get<uint64_t>()));
    }
  }
  if (r.Has("logit_bias")) {
    // {"token id": bias in [-100, 100]}, as OpenAI (ids outside the vocabulary: the engine says so).
    const OrderedJson& lb = r.body["logit_bias"];
    if (!lb.is_object()) return Bad("'logit_bias' must be an object of token ids to biases", "logit_bias");
    for (auto it = lb.begin(); it != lb.end(); ++it) {
      const std::string& key = it.key();
      int64_t id = -1;
      const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
      if (ec != std::errc() || end != key.data() + key.size() || id < 0 || id > INT32_MAX)
        return Bad(fmt::format("'logit_bias' keys must be token ids, got '{}'", key), "logit_bias");
      if (!it.value().is_number() || !(it.value().get<double>() >= -100 && it.value().get<double>() <= 100))
        return Bad(fmt::format("'logit_bias' values must be numbers between -100 and 100 (token {})", key), "logit_bias");
      s.logit_bias.emplace_back(static_cast<int32_t>(id), it.value().get<float>());
    }
  }
  if (auto m = r.Int("min_tokens", 0, d.max_total_tokens)) p.gen.min_tokens = *m;
  if (auto k = r.Int("prompt_logprobs", 0, 20)) p.prompt_logprobs = p.gen.prompt_logprobs = static_cast<int32_t>(*k);
  return r.error;
}

std::optional<HttpError> ReadMaxTokens(Reader& r, const char* key, ParsedRequest& p, const Defaults& d, int64_t lo = 1) {
  if (auto m = r.Int(key, lo, d.max_total_tokens)) {
    p.gen.max_tokens = *m;
    p.max_tokens_given = true;
  }
  return r.error;
}

// Message content: a string, or an array of {"type": "text", "text": ...} parts.
std::optional<HttpError> FlattenContent(OrderedJson& m, size_t i) {
  if (!m.contains("content") || m["content"].is_null() || m["content"].is_string()) return std::nullopt;
  if (!m["content"].is_array()) return Bad(fmt::format("messages[{}].content must be a string or an array of parts", i));
  std::string text;
  for (const auto& part : m["content"]) {
    if (!part.is_object() || StringField(part, "type") != "text" || !part.contains("text") || !part["text"].is_string())
      return Bad(fmt::format("messages[{}].content: only text parts are supported", i));
    text += part["text"].get<std::string>();
  }
  m["content"] = text;
  return std::nullopt;
}

}  // namespace

Parse ParseChatRequest(const OrderedJson& body, const Tokenizer& tok, ChatTemplateKind tmpl, const Defaults& d,
                       const ServedNames& names) {
  static const std::set<std::string> kKnown = {
      "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_p", "n",
      "stream", "stream_options", "stop", "stop_token_ids", "seed", "presence_penalty", "frequency_penalty",
      "repetition_penalty", "logprobs", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls", "user",
      "ignore_eos", "skip_special_tokens", "logit_bias", "min_tokens", "priority", "response_format", "guided_json",
      "guided_choice", "guided_regex", "prompt_logprobs", "add_generation_prompt", "continue_final_message"};
  if (auto e = CheckFields(body, kKnown)) return *e;
  ParsedRequest p;
  p.endpoint = Endpoint::kChat;
  Reader r{body, std::nullopt};
  if (auto e = ReadCommon(r, d, names, p)) return *e;
  if (auto e = ReadMaxTokens(r, "max_tokens", p, d)) return *e;
  if (auto e = ReadMaxTokens(r, "max_completion_tokens", p, d)) return *e;
  p.want_logprobs = r.Bool("logprobs").value_or(false);
  p.top_logprobs = static_cast<int>(r.Int("top_logprobs", 0, 20).value_or(0));
  r.String("user");
  const bool parallel_calls = r.Bool("parallel_tool_calls").value_or(true);
  // vLLM's: continue_final_message makes the model go on with the last (assistant) message
  // instead of starting a new turn ("prefilling" the reply).
  const bool continue_final = r.Bool("continue_final_message").value_or(false);
  const bool generation_prompt = r.Bool("add_generation_prompt").value_or(!continue_final);
  if (r.error) return *r.error;
  if (continue_final && generation_prompt)
    return Bad("'continue_final_message' and 'add_generation_prompt' cannot both be true", "continue_final_message");
  if (p.top_logprobs > 0 && !p.want_logprobs) return Bad("'top_logprobs' needs 'logprobs': true", "top_logprobs");
  if (auto e = ReadStructuredOutput(body, p)) return *e;
  if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty())
    return Bad("'messages' must be a non-empty array", "messages");
  OrderedJson messages = body["messages"];
  static const std::set<std::string> kRoles = {"system", "user", "assistant", "tool"};
  for (size_t i = 0; i < messages.size(); ++i) {
    OrderedJson& m = messages[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      return Bad(fmt::format("messages[{}] must be an object with a 'role'", i), "messages");
    const std::string role = m["role"].get<std::string>();
    if (!kRoles.count(role)) return Bad(fmt::format("messages[{}].role '{}' is not system, user, assistant or tool", i, role), "messages");
    if (auto e = FlattenContent(m, i)) return *e;
    const bool has_calls = m.contains("tool_calls") && m["tool_calls"].is_array() && !m["tool_calls"].empty();
    // OpenAI clients send tool-call arguments as a JSON string; the template wants the object.
    if (has_calls)
      for (auto& call : m["tool_calls"])
        if (call.is_object() && call.contains("function") && call["function"].is_object() &&
            call["function"].contains("arguments") && call["function"]["arguments"].is_string()) {
          OrderedJson args = OrderedJson::parse(call["function"]["arguments"].get<std::string>(), nullptr, false);
          if (!args.is_discarded()) call["function"]["arguments"] = args;
        }
    if (!(role == "assistant" && has_calls) && (!m.contains("content") || !m["content"].is_string()))
      return Bad(fmt::format("messages[{}].content must be a string", i), "messages");
  }
  OrderedJson tools;
  if (body.contains("tools") && !body["tools"].is_null()) {
    if (!body["tools"].is_array()) return Bad("'tools' must be an array", "tools");
    for (const auto& t : body["tools"]) {
      if (!t.is_object() || !t.contains("type") || t["type"] != "function" || !t.contains("function") ||
          !t["function"].is_object() || !t["function"].contains("name"))
        return Bad("each tool must be {\"type\": \"function\", \"function\": {\"name\": ...}}", "tools");
      const OrderedJson& f = t["function"];
      if (!f["name"].is_string() || f["name"].get<std::string>().empty())
        return Bad("a tool's function name must be a non-empty string", "tools");
      if (f.contains("parameters") && !f["parameters"].is_null() && !f["parameters"].is_object())
        return Bad("a tool's function parameters must be a JSON schema object", "tools");
    }
    tools = body["tools"];
  }
  std::string tool_choice = "auto";
  std::string forced_name;
  if (body.contains("tool_choice") && !body["tool_choice"].is_null()) {
    const OrderedJson& tc = body["tool_choice"];
    if (tc.is_object()) {
      // {"type": "function", "function": {"name": "..."}}: that function must be called.
      if (StringField(tc, "type") != "function" || !tc.contains("function") || !tc["function"].is_object() ||
          !tc["function"].contains("name") || !tc["function"]["name"].is_string())
        return Bad("'tool_choice' as an object must be {\"type\": \"function\", \"function\": {\"name\": ...}}", "tool_choice");
      forced_name = tc["function"]["name"].get<std::string>();
      tool_choice = "named";
    } else if (tc.is_string()) {
      tool_choice = tc.get<std::string>();
      if (tool_choice != "auto" && tool_choice != "none" && tool_choice != "required")
        return Bad(fmt::format("tool_choice '{}' is not one of \"auto\", \"none\", \"required\" or a named function",
                               tool_choice),
                   "tool_choice");
    } else {
      return Bad("'tool_choice' must be a string or an object", "tool_choice");
    }
  }
  const bool have_tools = tools.is_array() && !tools.empty();
  if ((tool_choice == "required" || tool_choice == "named") && !have_tools)
    return Bad(fmt::format("tool_choice '{}' needs 'tools'", tool_choice == "named" ? forced_name : tool_choice), "tool_choice");
  if (tool_choice == "named") {
    bool found = false;
    for (const auto& t : tools) found |= t["function"]["name"] == forced_name;
    if (!found) return Bad(fmt::format("tool_choice names '{}', which is not among the tools", forced_name), "tool_choice");
    // The call is begun for the model up to its arguments, in the template's own format.
    p.assistant_prefix = "<tool_call>\n{\"name\": " + OrderedJson(forced_name).dump() + ", \"arguments\": ";
  } else if (tool_choice == "required") {
    p.assistant_prefix = "<tool_call>\n";
  }
  if (tool_choice == "none") tools = OrderedJson();
  p.tools = tools.is_array() && !tools.empty();
  // The tools' parameter schemas (all of them, or the named one).
  auto tool_schemas = [&](bool only_forced) -> std::variant<std::vector<ToolSchema>, HttpError> {
    std::vector<ToolSchema> schemas;
    for (const auto& t : tools) {
      const OrderedJson& f = t["function"];
      if (!f["name"].is_string()) return Bad("a tool's function name must be a string", "tools");
      if (only_forced && f["name"] != forced_name) continue;
      const bool has_params = f.contains("parameters") && !f["parameters"].is_null();
      schemas.push_back({f["name"].get<std::string>(), has_params ? f["parameters"] : OrderedJson{{"type", "object"}}});
    }
    return schemas;
  };
  if (p.gen.grammar && p.tools && tool_choice == "auto") {
    // Structured output beside tools (an agent with an output type): the reply is the document,
    // or tool calls that follow their functions' schemas.
    auto schemas = tool_schemas(false);
    if (auto* e = std::get_if<HttpError>(&schemas)) return *e;
    auto calls = ToolCallGrammar(std::get<std::vector<ToolSchema>>(schemas), false, parallel_calls);
    if (!calls.ok())
      return Bad(fmt::format("structured output with tools needs grammars for both: {}", calls.status().message()), "tools");
    auto both = UnionGrammar(*p.gen.grammar, **calls, "<tool_call>\n");
    if (!both.ok()) return Bad(both.status().message(), "response_format");
    p.gen.grammar = *both;
  }
  if (tool_choice == "named" || tool_choice == "required") {
    // The forced call is also held to its function's parameters schema (a schema the grammar
    // cannot express leaves the call unconstrained, as before; a response_format waits for the
    // turn after the call).
    auto schemas = tool_schemas(tool_choice == "named");
    if (auto* e = std::get_if<HttpError>(&schemas)) return *e;
    auto g = ToolCallGrammar(std::get<std::vector<ToolSchema>>(schemas), tool_choice == "named", parallel_calls);
    p.gen.grammar = g.ok() ? *g : nullptr;
    if (!g.ok()) spdlog::warn("forced tool call left unconstrained: {}", g.status().message());
  }
  if (continue_final) {
    if (messages.back()["role"] != "assistant")
      return Bad("'continue_final_message' needs the last message to be the assistant's", "continue_final_message");
    if (!p.assistant_prefix.empty())
      return Bad("'continue_final_message' cannot be combined with a forced tool call", "continue_final_message");
    if (messages.back().contains("tool_calls") && !messages.back()["tool_calls"].empty())
      return Bad("'continue_final_message' cannot continue a message with tool calls", "continue_final_message");
  }
  auto rendered = RenderChat(tmpl, messages, tools, generation_prompt);
  if (!rendered.ok()) return Bad(rendered.status().message(), "messages");
  if (continue_final) {
    // The last message is left open: its end of turn is taken off.
    constexpr std::string_view kEndOfTurn = "<|im_end|>\n";
    if (!rendered->ends_with(kEndOfTurn))
      return Bad("this chat template cannot continue the final message", "continue_final_message");
    rendered->resize(rendered->size() - kEndOfTurn.size());
  }
  p.prompt_text = *rendered + p.assistant_prefix;
  p.gen.prompt = tok.Encode(p.prompt_text);
  p.gen.sampling.logprobs = p.want_logprobs;
  p.gen.sampling.top_logprobs = p.top_logprobs;
  return p;
}

Parse ParseCompletionRequest(const OrderedJson& body, const Tokenizer& tok, const Defaults& d,
                             const ServedNames& names) {
  static const std::set<std::string> kKnown = {
      "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "min_p", "n", "stream", "stream_options",
      "stop", "stop_token_ids", "seed", "presence_penalty", "frequency_penalty", "repetition_penalty", "logprobs",
      "echo", "user", "ignore_eos", "skip_special_tokens", "logit_bias", "min_tokens", "priority", "best_of", "suffix",
      "response_format", "guided_json", "guided_choice", "guided_regex", "prompt_logprobs"};
  if (auto e = CheckFields(body, kKnown)) return *e;
  ParsedRequest p;
  p.endpoint = Endpoint::kCompletion;
  Reader r{body, std::nullopt};
  if (auto e = ReadCommon(r, d, names, p)) return *e;
  p.echo = r.Bool("echo").value_or(false);
  if (auto e = ReadMaxTokens(r, "max_tokens", p, d, 0)) return *e;
  if (!p.max_tokens_given) {
    p.gen.max_tokens = 16;  // OpenAI's default for completions
    p.max_tokens_given = true;
  }
  if (p.gen.max_tokens == 0) {
    // Scoring a text (lm-evaluation-harness): the prompt back with its logprobs, nothing after.
    if (!p.echo) return Bad("'max_tokens' must be at least 1 (0 only with echo)", "max_tokens");
    p.echo_only = true;
    p.gen.max_tokens = 1;
    p.gen.min_tokens = 0;
  }
  if (auto lp = r.Int("logprobs", 0, 20)) {
    p.want_logprobs = true;
    p.top_logprobs = static_cast<int>(*lp);
    if (p.echo) p.gen.prompt_logprobs = std::max(p.gen.prompt_logprobs, static_cast<int32_t>(p.top_logprobs));
  }
  if (r.Int("best_of", 1, 1)) {}
  if (r.String("suffix")) return Bad("'suffix' is not supported", "suffix");
  r.String("user");
  if (r.error) return *r.error;
  if (auto e = ReadStructuredOutput(body, p)) return *e;
  if (!body.contains("prompt")) return Bad("'prompt' is required", "prompt");
  // A string, token ids, or a batch of either (each prompt gets n choices, in order).
  const OrderedJson& pr = body["prompt"];
  auto is_ids = [](const OrderedJson& v) { return v.is_array() && !v.empty() && v[0].is_number_integer(); };
  std::vector<const OrderedJson*> items;
  if (pr.is_string() || is_ids(pr)) {
    items.push_back(&pr);
  } else if (pr.is_array() && !pr.empty()) {
    for (const auto& x : pr) items.push_back(&x);
  }
  if (items.empty() || !std::all_of(items.begin(), items.end(), [&](const OrderedJson* x) { return x->is_string() || is_ids(*x); }))
    return Bad("'prompt' must be a string, an array of token ids, or a non-empty array of either", "prompt");
  if (items.size() > kMaxPrompts) return Bad(fmt::format("at most {} prompts in one request", kMaxPrompts), "prompt");
  for (const OrderedJson* x : items) {
    PromptPart part;
    if (x->is_string()) {
      part.text = x->get<std::string>();
      part.ids = tok.Encode(part.text);
    } else {
      for (const auto& id : *x) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= tok.vocab_size())
          return Bad("'prompt' token ids must be integers in the vocabulary", "prompt");
        part.ids.push_back(id.get<int32_t>());
      }
      if (p.echo) {
        auto text = tok.Decode(part.ids);
        if (!text.ok()) return Bad(text.status().message(), "prompt");
        part.text = *text;
      }
    }
    p.prompts.push_back(std::move(part));
  }
  p.gen.prompt = p.prompts[0].ids;
  p.prompt_text = p.prompts[0].text;
  if (p.echo_only) p.gen.grammar = nullptr;  // (its one token is not shown: nothing to constrain)
  p.gen.sampling.logprobs = p.want_logprobs;
  p.gen.sampling.top_logprobs = p.top_logprobs;
  return p;
}

std::string ErrorJson(const HttpError& e) {
  OrderedJson j;
  j["error"] = {{"message", e.message}, {"type", e.type}, {"param", e.param.empty() ? OrderedJson() : OrderedJson(e.param)},
                {"code", e.status}};
  return j.dump(-1, ' ', false, OrderedJson::error_handler_t::replace);
}

std::string TokenText(const Tokenizer& tok, int32_t id) {
  const std::string* b = tok.TokenBytes(id);
  return b ? unicode::Lossy(*b) : std::string();
}

namespace {
OrderedJson Bytes(const Tokenizer& tok, int32_t id) {
  OrderedJson a = OrderedJson::array();
  if (const std::string* b = tok.TokenBytes(id))
    for (unsigned char c : *b) a.push_back(c);
  return a;
}
}  // namespace

OrderedJson ChatLogprobs(const Tokenizer& tok, const Choice& c) {
  OrderedJson content = OrderedJson::array();
  for (size_t i = 0; i < c.ids.size() && i < c.logprobs.size(); ++i) {
    OrderedJson top = OrderedJson::array();
    if (i < c.top.size())
      for (const auto& t : c.top[i])
        top.push_back({{"token", TokenText(tok, t.id)}, {"logprob", t.logprob}, {"bytes", Bytes(tok, t.id)}});
    content.push_back({{"token", TokenText(tok, c.ids[i])}, {"logprob", c.logprobs[i]}, {"bytes", Bytes(tok, c.ids[i])},
                       {"top_logprobs", top}});
  }
  return {{"content", content}};
}

OrderedJson CompletionLogprobs(const Tokenizer& tok, const Choice& c, std::span<const int32_t> echo_prompt,
                               std::span<const TokenLogprobs> scores, int top_n, bool generated) {
  OrderedJson tokens = OrderedJson::array(), lps = OrderedJson::array(), tops = OrderedJson::array(),
              offsets = OrderedJson::array();
  size_t off = 0;
  for (size_t i = 0; i < echo_prompt.size(); ++i) {
    const std::string t = TokenText(tok, echo_prompt[i]);
    tokens.push_back(t);
    const TokenLogprobs* scored = i > 0 && i - 1 < scores.size() ? &scores[i - 1] : nullptr;
    lps.push_back(scored ? OrderedJson(scored->logprob) : OrderedJson());
    OrderedJson top = scored ? OrderedJson::object() : OrderedJson();
    if (scored)
      for (size_t k = 0; k < scored->top.size() && k < static_cast<size_t>(std::max(top_n, 0)); ++k)
        top[TokenText(tok, scored->top[k].id)] = scored->top[k].logprob;
    tops.push_back(top);
    offsets.push_back(off);
    off += t.size();
  }
  for (size_t i = 0; generated && i < c.ids.size() && i < c.logprobs.size(); ++i) {
    const std::string t = TokenText(tok, c.ids[i]);
    tokens.push_back(t);
    lps.push_back(c.logprobs[i]);
    OrderedJson top = OrderedJson::object();
    if (i < c.top.size())
      for (const auto& x : c.top[i]) top[TokenText(tok, x.id)] = x.logprob;
    tops.push_back(top);
    offsets.push_back(off);
    off += t.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

OrderedJson PromptLogprobs(const Tokenizer& tok, std::span<const int32_t> prompt, std::span<const TokenLogprobs> scored, int top) {
  OrderedJson out = OrderedJson::array();
  if (prompt.empty()) return out;
  out.push_back(nullptr);
  for (size_t i = 0; i + 1 < prompt.size() && i < scored.size(); ++i) {
    const TokenLogprobs& s = scored[i];
    const int32_t id = prompt[i + 1];
    OrderedJson entry = OrderedJson::object();
    entry[std::to_string(id)] = {{"logprob", s.logprob}, {"rank", s.rank}, {"decoded_token", TokenText(tok, id)}};
    for (size_t k = 0; k < s.top.size() && k < static_cast<size_t>(std::max(top, 0)); ++k)
      if (s.top[k].id != id)
        entry[std::to_string(s.top[k].id)] = {
            {"logprob", s.top[k].logprob}, {"rank", k + 1}, {"decoded_token", TokenText(tok, s.top[k].id)}};
    out.push_back(entry);
  }
  return out;
}

std::string FinishReasonText(FinishReason r, bool tool_calls) {
  if (tool_calls) return "tool_calls";
  return r == FinishReason::kLength ? "length" : "stop";
}

OrderedJson ChatMessage(const Choice& c, bool tools, bool* has_tool_calls, std::string_view call_id_prefix) {
  OrderedJson m;
  m["role"] = "assistant";
  *has_tool_calls = false;
  if (tools) {
    ParsedReply reply = ParseToolCalls(c.text);
    if (!reply.tool_calls.empty()) {
      *has_tool_calls = true;
      m["content"] = reply.content.empty() ? OrderedJson() : OrderedJson(reply.content);
      OrderedJson calls = OrderedJson::array();
      for (size_t i = 0; i < reply.tool_calls.size(); ++i) {
        const ToolCall& tc = reply.tool_calls[i];
        calls.push_back({{"id", fmt::format("call_{}{}", call_id_prefix, i)},
                         {"type", "function"},
                         {"function",
                          {{"name", tc.name},
                           {"arguments", tc.arguments.is_string() ? tc.arguments.get<std::string>()
                                                                   : tc.arguments.dump(-1, ' ', false, OrderedJson::error_handler_t::replace)}}}});
      }
      m["tool_calls"] = calls;
      return m;
    }
  }
  m["content"] = c.text;
  return m;
}

}  // namespace qb::api
