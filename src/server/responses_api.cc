#include "server/responses_api.h"

#include <set>

#include <fmt/format.h>

namespace qb::api {

namespace {

HttpError Bad(std::string message, std::string param = "") {
  return HttpError{400, "invalid_request_error", std::move(message), std::move(param)};
}

bool Present(const OrderedJson& body, const char* key) { return body.contains(key) && !body[key].is_null(); }

// A message's content: a string, or parts of text (input_text, output_text, text) joined.
std::optional<std::string> ContentText(const OrderedJson& content) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return std::nullopt;
  std::string text;
  for (const auto& part : content) {
    if (!part.is_object() || !part.contains("text") || !part["text"].is_string()) return std::nullopt;
    const auto type = StringField(part, "type", "input_text");
    if (type != "input_text" && type != "output_text" && type != "text") return std::nullopt;
    text += part["text"].get<std::string>();
  }
  return text;
}

// The Responses "input" as chat messages (after the instructions' system message).
std::optional<HttpError> AppendInput(const OrderedJson& input, OrderedJson& messages) {
  if (input.is_string()) {
    messages.push_back({{"role", "user"}, {"content", input.get<std::string>()}});
    return std::nullopt;
  }
  if (!input.is_array() || input.empty()) return Bad("'input' must be a string or a non-empty array of items", "input");
  for (size_t i = 0; i < input.size(); ++i) {
    const OrderedJson& item = input[i];
    if (!item.is_object()) return Bad(fmt::format("input[{}] must be an object", i), "input");
    const auto type_field = StringField(item, "type", "message");
    if (!type_field) return Bad(fmt::format("input[{}].type must be a string", i), "input");
    const std::string& type = *type_field;
    if (type == "message") {
      static const std::set<std::string> kRoles = {"user", "system", "developer", "assistant"};
      const std::string role = item.contains("role") && item["role"].is_string() ? item["role"].get<std::string>() : "";
      if (!kRoles.count(role))
        return Bad(fmt::format("input[{}].role must be user, system, developer or assistant", i), "input");
      const auto text = item.contains("content") ? ContentText(item["content"]) : std::nullopt;
      if (!text) return Bad(fmt::format("input[{}].content must be a string or text parts (only text is supported)", i), "input");
      messages.push_back({{"role", role == "developer" ? "system" : role}, {"content", *text}});
    } else if (type == "function_call") {
      if (!item.contains("call_id") || !item["call_id"].is_string() || !item.contains("name") || !item["name"].is_string() ||
          !item.contains("arguments") || !item["arguments"].is_string())
        return Bad(fmt::format("input[{}]: a function_call needs call_id, name and arguments (strings)", i), "input");
      const OrderedJson call = {{"id", item["call_id"]},
                                {"type", "function"},
                                {"function", {{"name", item["name"]}, {"arguments", item["arguments"]}}}};
      // Calls that follow an assistant message, or one another, are one assistant turn (as the
      // model wrote them: text, then its calls).
      OrderedJson* last = messages.empty() ? nullptr : &messages.back();
      if (last != nullptr && (*last)["role"] == "assistant") {
        if (!last->contains("tool_calls")) (*last)["tool_calls"] = OrderedJson::array();
        (*last)["tool_calls"].push_back(call);
      } else {
        messages.push_back({{"role", "assistant"}, {"content", ""}, {"tool_calls", OrderedJson::array({call})}});
      }
    } else if (type == "function_call_output") {
      if (!item.contains("call_id") || !item["call_id"].is_string() || !item.contains("output"))
        return Bad(fmt::format("input[{}]: a function_call_output needs call_id and output", i), "input");
      const auto output = ContentText(item["output"]);
      if (!output) return Bad(fmt::format("input[{}].output must be a string", i), "input");
      messages.push_back({{"role", "tool"}, {"tool_call_id", item["call_id"]}, {"content", *output}});
    } else {
      return Bad(fmt::format("input[{}]: items of type '{}' are not supported (message, function_call, "
                             "function_call_output are)", i, type), "input");
    }
  }
  return std::nullopt;
}

OrderedJson ResponsesUsage(const OrderedJson& chat_usage) {
  if (chat_usage.is_null()) return nullptr;
  return {{"input_tokens", chat_usage["prompt_tokens"]},
          {"input_tokens_details", {{"cached_tokens", chat_usage["prompt_tokens_details"]["cached_tokens"]}}},
          {"output_tokens", chat_usage["completion_tokens"]},
          {"output_tokens_details", {{"reasoning_tokens", 0}}},
          {"total_tokens", chat_usage["total_tokens"]}};
}

std::string MessageId(const ResponseHeader& h) { return "msg_" + h.id.substr(h.id.find('_') + 1); }

OrderedJson MessageItem(const ResponseHeader& h, const std::string& text, const char* status) {
  OrderedJson content = OrderedJson::array();
  if (std::string_view(status) != "in_progress")
    content.push_back({{"type", "output_text"}, {"text", text}, {"annotations", OrderedJson::array()}});
  return {{"type", "message"}, {"id", MessageId(h)}, {"status", status}, {"role", "assistant"}, {"content", content}};
}

// A Response object: the request's settings echoed, `status`, `output` and `usage`.
OrderedJson Response(const ResponseHeader& h, const char* status, OrderedJson output, OrderedJson usage,
                     OrderedJson incomplete = nullptr, OrderedJson error = nullptr) {
  const OrderedJson& q = h.request;
  auto echo = [&](const char* key, OrderedJson fallback) { return Present(q, key) ? q[key] : fallback; };
  return {{"id", h.id},
          {"object", "response"},
          {"created_at", h.created_at},
          {"status", status},
          {"error", std::move(error)},
          {"incomplete_details", std::move(incomplete)},
          {"instructions", echo("instructions", nullptr)},
          {"max_output_tokens", echo("max_output_tokens", nullptr)},
          {"model", h.model},
          {"output", std::move(output)},
          {"parallel_tool_calls", echo("parallel_tool_calls", true)},
          {"previous_response_id", nullptr},
          {"reasoning", {{"effort", nullptr}, {"summary", nullptr}}},
          {"store", false},
          {"temperature", echo("temperature", 1.0)},
          {"text", echo("text", {{"format", {{"type", "text"}}}})},
          {"tool_choice", echo("tool_choice", "auto")},
          {"tools", echo("tools", OrderedJson::array())},
          {"top_p", echo("top_p", 1.0)},
          {"truncation", "disabled"},
          {"usage", std::move(usage)},
          {"user", echo("user", nullptr)},
          {"metadata", echo("metadata", OrderedJson::object())}};
}

// The output items of a finished choice: its text as a message (unless it is only tool calls),
// then one function_call item per call.
OrderedJson OutputItems(const ResponseHeader& h, const Choice& c, bool tools, std::string_view call_id_prefix) {
  bool has_calls = false;
  const OrderedJson msg = ChatMessage(c, tools, &has_calls, call_id_prefix);
  const std::string text = msg["content"].is_string() ? msg["content"].get<std::string>() : "";
  OrderedJson output = OrderedJson::array();
  const char* status = c.reason == FinishReason::kStop ? "completed" : "incomplete";
  if (!has_calls || !text.empty()) output.push_back(MessageItem(h, text, status));
  if (has_calls)
    for (const auto& call : msg["tool_calls"]) {
      const std::string call_id = call["id"].get<std::string>();
      output.push_back({{"type", "function_call"},
                        {"id", "fc_" + call_id.substr(call_id.find('_') + 1)},
                        {"call_id", call_id},
                        {"name", call["function"]["name"]},
                        {"arguments", call["function"]["arguments"]},
                        {"status", "completed"}});
    }
  return output;
}

}  // namespace

Parse ParseResponsesRequest(const OrderedJson& body, const Tokenizer& tok, ChatTemplateKind tmpl, const Defaults& d,
                            const ServedNames& names) {
  static const std::set<std::string> kKnown = {
      "model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "stream", "store", "metadata",
      "user", "text", "tools", "tool_choice", "parallel_tool_calls", "previous_response_id", "truncation", "include",
      "service_tier", "reasoning", "background", "top_k", "min_p", "seed", "repetition_penalty", "presence_penalty",
      "frequency_penalty", "stop"};
  if (!body.is_object()) return Bad("the request body must be a JSON object");
  for (auto it = body.begin(); it != body.end(); ++it)
    if (!kKnown.count(it.key())) return Bad(fmt::format("Unrecognized request argument supplied: {}", it.key()), it.key());
  if (Present(body, "previous_response_id"))
    return Bad("qwenbox stores no responses: send the whole conversation in 'input'", "previous_response_id");
  if (Present(body, "background") && body["background"] != false)
    return Bad("background responses are not supported", "background");
  if (Present(body, "truncation") && body["truncation"] != "disabled")
    return Bad("only truncation 'disabled' is supported (a prompt too long for the context is a 400)", "truncation");
  if (Present(body, "reasoning") && !(body["reasoning"].is_object() &&
                                      (!body["reasoning"].contains("effort") || body["reasoning"]["effort"].is_null())))
    return Bad("this model does not reason: 'reasoning' is not supported", "reasoning");
  if (Present(body, "include") && !(body["include"].is_array() && body["include"].empty()))
    return Bad("'include' is not supported", "include");
  if (!Present(body, "input")) return Bad("'input' is required", "input");
  OrderedJson chat = OrderedJson::object();
  OrderedJson messages = OrderedJson::array();
  if (Present(body, "instructions")) {
    if (!body["instructions"].is_string()) return Bad("'instructions' must be a string", "instructions");
    messages.push_back({{"role", "system"}, {"content", body["instructions"]}});
  }
  if (auto e = AppendInput(body["input"], messages)) return *e;
  chat["messages"] = messages;
  for (const char* key : {"model", "temperature", "top_p", "top_k", "min_p", "seed", "repetition_penalty", "presence_penalty",
                          "frequency_penalty", "stop", "user", "parallel_tool_calls", "stream"})
    if (Present(body, key)) chat[key] = body[key];
  if (Present(body, "max_output_tokens")) chat["max_tokens"] = body["max_output_tokens"];
  if (Present(body, "text")) {
    const OrderedJson& text = body["text"];
    if (!text.is_object()) return Bad("'text' must be an object", "text");
    if (text.contains("format") && !text["format"].is_null()) {
      const OrderedJson& f = text["format"];
      const auto type = StringField(f, "type");
      if (type == "json_schema") {
        const auto name = StringField(f, "name", "response");
        if (!f.contains("schema") || !name) return Bad("text.format json_schema needs a 'schema' (and a string 'name')", "text");
        OrderedJson js = {{"name", *name}, {"schema", f["schema"]}};
        if (f.contains("strict")) js["strict"] = f["strict"];
        chat["response_format"] = {{"type", "json_schema"}, {"json_schema", js}};
      } else if (type == "json_object") {
        chat["response_format"] = {{"type", "json_object"}};
      } else if (type != "text") {
        return Bad("text.format.type must be text, json_object or json_schema", "text");
      }
    }
  }
  if (Present(body, "tools")) {
    if (!body["tools"].is_array()) return Bad("'tools' must be an array", "tools");
    OrderedJson tools = OrderedJson::array();
    for (const auto& t : body["tools"]) {
      if (!t.is_object() || StringField(t, "type") != "function")
        return Bad("only function tools are supported ({\"type\": \"function\", \"name\": ...})", "tools");
      OrderedJson f = {{"name", t.contains("name") ? t["name"] : OrderedJson()}};
      if (t.contains("description")) f["description"] = t["description"];
      if (t.contains("parameters")) f["parameters"] = t["parameters"];
      tools.push_back({{"type", "function"}, {"function", f}});
    }
    chat["tools"] = tools;
  }
  if (Present(body, "tool_choice")) {
    const OrderedJson& tc = body["tool_choice"];
    if (tc.is_object()) {
      if (StringField(tc, "type") != "function" || !tc.contains("name"))
        return Bad("'tool_choice' as an object must be {\"type\": \"function\", \"name\": ...}", "tool_choice");
      chat["tool_choice"] = {{"type", "function"}, {"function", {{"name", tc["name"]}}}};
    } else {
      chat["tool_choice"] = tc;
    }
  }
  Parse parsed = ParseChatRequest(chat, tok, tmpl, d, names);
  if (auto* e = std::get_if<HttpError>(&parsed)) {
    if (e->param == "max_tokens") e->param = "max_output_tokens";
    if (e->param == "response_format") e->param = "text";
    if (e->param == "messages") e->param = "input";
    return parsed;
  }
  ParsedRequest& p = std::get<ParsedRequest>(parsed);
  p.endpoint = Endpoint::kResponses;
  p.responses_request = body;
  p.responses_request.erase("input");  // (a Response echoes its settings, not its input)
  if (!Present(body, "temperature")) p.responses_request["temperature"] = p.gen.sampling.temperature;
  if (!Present(body, "top_p")) p.responses_request["top_p"] = p.gen.sampling.top_p;
  return parsed;
}

OrderedJson ResponseObject(const ResponseHeader& h, const Choice& c, bool tools, std::string_view call_id_prefix,
                           const OrderedJson& usage, std::string_view error) {
  OrderedJson output = OutputItems(h, c, tools, call_id_prefix);
  if (c.reason == FinishReason::kError || c.reason == FinishReason::kCancelled) {
    const std::string message = !error.empty() ? std::string(error)
                                : c.reason == FinishReason::kCancelled ? "the request was cancelled (the server is shutting down)"
                                                                       : "the generation failed";
    return Response(h, "failed", std::move(output), ResponsesUsage(usage), nullptr,
                    {{"code", "server_error"}, {"message", message}});
  }
  if (c.reason == FinishReason::kLength)
    return Response(h, "incomplete", std::move(output), ResponsesUsage(usage), {{"reason", "max_output_tokens"}});
  return Response(h, "completed", std::move(output), ResponsesUsage(usage));
}

std::string ResponseEvents::Event(const char* type, OrderedJson fields) {
  OrderedJson j = {{"type", type}, {"sequence_number", sequence_++}};
  for (auto it = fields.begin(); it != fields.end(); ++it) j[it.key()] = it.value();
  return fmt::format("event: {}\ndata: {}\n\n", type, j.dump(-1, ' ', false, OrderedJson::error_handler_t::replace));
}

std::string ResponseEvents::Begin() {
  const OrderedJson r = Response(h_, "in_progress", OrderedJson::array(), nullptr);
  std::string out = Event("response.created", {{"response", r}});  // (in this order: they are numbered)
  out += Event("response.in_progress", {{"response", r}});
  return out;
}

std::string ResponseEvents::Open() {
  if (text_open_) return "";
  text_open_ = true;
  std::string out = Event("response.output_item.added", {{"output_index", 0}, {"item", MessageItem(h_, "", "in_progress")}});
  out += Event("response.content_part.added",
               {{"item_id", MessageId(h_)},
                {"output_index", 0},
                {"content_index", 0},
                {"part", {{"type", "output_text"}, {"text", ""}, {"annotations", OrderedJson::array()}}}});
  return out;
}

std::string ResponseEvents::Text(std::string_view piece) {
  if (piece.empty()) return "";
  std::string out;
  std::string held;
  if (!text_open_) {
    // Leading white space is held until there is text: a reply that is only tool calls has no
    // message item at all.
    pending_ += piece;
    if (pending_.find_first_not_of(" \t\r\n") == std::string::npos) return "";
    out = Open();
    held.swap(pending_);
    piece = held;
  }
  const std::string_view delta = piece;
  text_ += delta;
  out += Event("response.output_text.delta", {{"item_id", MessageId(h_)},
                                              {"output_index", 0},
                                              {"content_index", 0},
                                              {"delta", std::string(delta)},
                                              {"logprobs", OrderedJson::array()}});
  return out;
}

std::string ResponseEvents::Finish(const Choice& c, bool tools, std::string_view call_id_prefix, const OrderedJson& usage,
                                   std::string_view error) {
  OrderedJson final = ResponseObject(h_, c, tools, call_id_prefix, usage, error);
  OrderedJson& output = final["output"];
  std::string out;
  size_t index = 0;
  const bool message = !output.empty() && output[0]["type"] == "message";
  if (message || text_open_) {
    // The message's text is what was sent, and what the final text adds to it (text held back
    // until the end, such as all of it with tools, goes out as one delta). The text of a reply
    // with tool calls is trimmed; what was streamed stays the message's text, so that the events
    // and the final response agree.
    const std::string final_text = message ? output[0]["content"][0]["text"].get<std::string>() : "";
    const char* status = c.reason == FinishReason::kStop ? "completed" : "incomplete";
    out += Open();
    if (final_text.size() > text_.size() && final_text.starts_with(text_))
      out += Text(std::string_view(final_text).substr(text_.size()));
    if (message) output[0] = MessageItem(h_, text_, status);
    else output.insert(output.begin(), MessageItem(h_, text_, status));
    const std::string text = text_;
    {
      const OrderedJson part = output[0]["content"][0];
      out += Event("response.output_text.done",
                   {{"item_id", MessageId(h_)}, {"output_index", 0}, {"content_index", 0}, {"text", text}, {"logprobs", OrderedJson::array()}});
      out += Event("response.content_part.done", {{"item_id", MessageId(h_)}, {"output_index", 0}, {"content_index", 0}, {"part", part}});
      out += Event("response.output_item.done", {{"output_index", 0}, {"item", output[0]}});
    }
    index = 1;
  }
  for (; index < output.size(); ++index) {
    const OrderedJson& item = output[index];
    OrderedJson opening = item;
    opening["arguments"] = "";
    opening["status"] = "in_progress";
    out += Event("response.output_item.added", {{"output_index", index}, {"item", opening}});
    out += Event("response.function_call_arguments.delta",
                 {{"item_id", item["id"]}, {"output_index", index}, {"delta", item["arguments"]}});
    out += Event("response.function_call_arguments.done",
                 {{"item_id", item["id"]}, {"output_index", index}, {"arguments", item["arguments"]}});
    out += Event("response.output_item.done", {{"output_index", index}, {"item", item}});
  }
  const std::string status = final["status"].get<std::string>();
  const char* type = status == "completed" ? "response.completed" : status == "incomplete" ? "response.incomplete" : "response.failed";
  out += Event(type, {{"response", final}});
  return out;
}

}  // namespace qb::api
