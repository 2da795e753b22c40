// OpenAI-compatible request parsing and response building (/v1/chat/completions,
// /v1/completions). Requests are checked strictly: unknown fields, wrong types and values out of
// range are 400s that name the field.
#pragma once

#include <span>
#include <string_view>
#include <variant>

#include "engine/request.h"
#include "server/api_types.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tool_calls.h"

namespace qb::api {

using Parse = std::variant<ParsedRequest, HttpError>;

// "model" picks the served model or one of its LoRA adapters (`names`); another name is a 404.
Parse ParseChatRequest(const OrderedJson& body, const Tokenizer& tok, ChatTemplateKind tmpl, const Defaults& d,
                       const ServedNames& names);
Parse ParseCompletionRequest(const OrderedJson& body, const Tokenizer& tok, const Defaults& d,
                             const ServedNames& names);

// One generated choice as the handler collected it.
struct Choice {
  std::vector<int32_t> ids;
  std::vector<float> logprobs;
  std::vector<std::vector<TokenLogprob>> top;
  std::vector<TokenLogprobs> prompt;  // entry i scores prompt token i + 1 (when asked)
  std::string text;
  FinishReason reason = FinishReason::kStop;
};

std::string ErrorJson(const HttpError& e);
// A token's text for logprob entries (its raw bytes, lossily decoded).
std::string TokenText(const Tokenizer& tok, int32_t id);
OrderedJson ChatLogprobs(const Tokenizer& tok, const Choice& c);
// OpenAI completions' logprobs; with `echo_prompt`, its tokens come first with their `scores`
// (the first one without a logprob, as OpenAI's echo; at most `top` alternatives each), and
// `generated` false leaves the choice's own tokens out.
OrderedJson CompletionLogprobs(const Tokenizer& tok, const Choice& c, std::span<const int32_t> echo_prompt = {},
                               std::span<const TokenLogprobs> scores = {}, int top = 0, bool generated = true);
// vLLM's prompt_logprobs: null for the first token, then per token {id: {logprob, rank,
// decoded_token}} for the token itself and its `top` best alternatives.
OrderedJson PromptLogprobs(const Tokenizer& tok, std::span<const int32_t> prompt, std::span<const TokenLogprobs> scored, int top);
std::string FinishReasonText(FinishReason r, bool tool_calls);
// The assistant message of a chat choice, with tool calls parsed out when tools were given;
// their ids are "call_<call_id_prefix><k>" (the prefix unique per request and choice, as
// clients match tool results to calls by id across a conversation).
OrderedJson ChatMessage(const Choice& c, bool tools, bool* has_tool_calls, std::string_view call_id_prefix);

}  // namespace qb::api
