// What the API layer hands the HTTP layer: a validated request ready for the engine, or an
// HTTP error (status, OpenAI-style type, message).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/request.h"
#include "tokenizer/chat_template.h"

namespace qb::api {

// Stop sequences a request may give (both APIs; /info reports it as max_stop_sequences).
inline constexpr size_t kMaxStopSequences = 16;
// Prompts in one completions request (a batch; each is a request of its own to the engine).
inline constexpr size_t kMaxPrompts = 256;

// One prompt of a request: its ids and its text (when given as text, or decoded for echo).
struct PromptPart {
  std::vector<int32_t> ids;
  std::string text;
};

// A JSON value that can be a token id: a non-negative integer within int32 (larger unsigned
// values would wrap when read as int32).
inline bool IsTokenIdValue(const OrderedJson& v) {
  return v.is_number_unsigned() && v.get<uint64_t>() <= uint64_t{INT32_MAX};
}

// The string at `key` of an object: `fallback` when it is absent or null, nullopt when it holds
// another type (for the caller's 400; nlohmann's value() would throw instead).
inline std::optional<std::string> StringField(const OrderedJson& o, const char* key, std::string fallback = "") {
  if (!o.is_object() || !o.contains(key) || o[key].is_null()) return fallback;
  if (!o[key].is_string()) return std::nullopt;
  return o[key].get<std::string>();
}

struct HttpError {
  int status = 400;
  std::string type = "invalid_request_error";
  std::string message;
  std::string param;
};

// Defaults that come from the model (generation_config.json) and the server's limits.
struct Defaults {
  float temperature = 1.0f;
  float top_p = 1.0f;
  int64_t top_k = 0;
  float repetition_penalty = 1.0f;
  int64_t max_total_tokens = 32768;
  int64_t max_n = 8;
};

// The names a request may ask for ("model"; TGI's "adapter_id"): the served model and its LoRA
// adapters (GenerationRequest::adapter i is adapters[i - 1]).
struct ServedNames {
  std::string model;  // empty: any name is the model
  std::vector<std::string> adapters;
  // 0 for the model, i for adapters[i - 1]; nullopt for a name not served.
  std::optional<int32_t> Find(const std::string& name) const {
    for (size_t i = 0; i < adapters.size(); ++i)
      if (adapters[i] == name) return static_cast<int32_t>(i + 1);
    if (model.empty() || name == model) return 0;
    return std::nullopt;
  }
  // "'qwenbox'" or "'qwenbox', 'sql-lora'": for error messages.
  std::string List() const {
    std::string out = "'" + model + "'";
    for (const auto& a : adapters) out += ", '" + a + "'";
    return out;
  }
};

enum class Endpoint { kChat, kCompletion, kTgi, kResponses };

struct ParsedRequest {
  Endpoint endpoint = Endpoint::kChat;
  GenerationRequest gen;   // prompt ids, sampling, limits, adapter (id filled by the server)
  std::string model;       // the name asked for (the model's or an adapter's): responses echo it
  int n = 1;
  bool stream = false;
  bool include_usage = false;
  bool max_tokens_given = false;
  bool want_logprobs = false;
  int top_logprobs = 0;
  bool tools = false;        // parse <tool_call> blocks in the output
  // tool_choice "required" or a named function: the assistant's reply is started with this
  // ("<tool_call>\n", or up to the arguments of the named call) so the model writes a call; it
  // counts as part of the reply's text when the calls are parsed.
  std::string assistant_prefix;
  std::string prompt_text;   // the rendered prompt (TGI return_full_text, completions echo)
  // Completions: every prompt of the request (gen.prompt and prompt_text are the first's); the
  // choices are n for each prompt, in order. Empty for chat and TGI (one prompt: gen.prompt).
  std::vector<PromptPart> prompts;
  bool echo = false;         // completions: the prompt comes first in the text (and logprobs)
  bool echo_only = false;    // echo with max_tokens 0: the engine makes one token, not shown
  int prompt_logprobs = -1;  // vLLM's prompt_logprobs: -1 off, else alternatives per prompt token
  OrderedJson responses_request;  // /v1/responses: the request's settings, echoed in the Response
  // TGI
  bool details = false;
  bool decoder_input_details = false;
  bool return_full_text = false;
};

}  // namespace qb::api
