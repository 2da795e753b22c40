// OpenAI's Responses API (POST /v1/responses), the interface newer OpenAI clients and agent
// frameworks call: a request is translated into a chat request (instructions, input messages,
// function calls and their outputs, function tools, text.format for structured output) and
// parsed by ParseChatRequest, so it gets the same checks, template and sampling; the answer is
// built as a Response object, or streamed as the API's typed events (response.created,
// response.output_text.delta, ..., response.completed). Not supported: stored responses
// (previous_response_id), built-in tools (web search, files), images, reasoning summaries.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "server/openai_api.h"

namespace qb::api {

Parse ParseResponsesRequest(const OrderedJson& body, const Tokenizer& tok, ChatTemplateKind tmpl, const Defaults& d,
                            const ServedNames& names);

// What a Response object echoes of its request, and its identity.
struct ResponseHeader {
  std::string id;        // "resp_..."
  int64_t created_at = 0;
  std::string model;
  OrderedJson request;   // the parsed body (instructions, tools, text, temperature, ...)
};

// The finished Response object of one choice; `usage` is the chat usage object.
// A choice that ended in an error or was cancelled is a "failed" response with `error` (or a
// generic message).
OrderedJson ResponseObject(const ResponseHeader& h, const Choice& c, bool tools, std::string_view call_id_prefix,
                           const OrderedJson& usage, std::string_view error = {});

// The streamed events of one response, as SSE text ("event: TYPE\ndata: {...}\n\n"), numbered
// in order. Begin, then Text for each piece of the reply as it becomes final, then Finish.
class ResponseEvents {
 public:
  explicit ResponseEvents(ResponseHeader h) : h_(std::move(h)) {}
  std::string Begin();
  std::string Text(std::string_view delta);
  // The text item's closing events (if one was opened), one item per tool call, and the final
  // response.completed (or response.incomplete at the token limit).
  std::string Finish(const Choice& c, bool tools, std::string_view call_id_prefix, const OrderedJson& usage,
                     std::string_view error = {});

 private:
  std::string Event(const char* type, OrderedJson fields);
  std::string Open();  // the message item's opening events, once
  ResponseHeader h_;
  int64_t sequence_ = 0;
  bool text_open_ = false;
  std::string text_;     // the text sent so far
  std::string pending_;  // leading white space not sent yet
};

}  // namespace qb::api
