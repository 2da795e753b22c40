// What a client asks the engine for, and what comes back on its stream.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "grammar/grammar.h"
#include "sampling/sampler.h"

namespace qb {

enum class FinishReason { kStop, kLength, kCancelled, kError };
std::string_view FinishReasonName(FinishReason r);  // "stop", "length", "cancelled", "error"

struct GenerationRequest {
  std::string id;  // for logs and responses
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int64_t max_tokens = 16;
  std::vector<std::string> stop;         // stop strings: matched on the text, not included in it
  std::vector<int32_t> stop_token_ids;   // besides the model's end-of-sequence ids
  bool ignore_eos = false;
  // vLLM's min_tokens: the first this many tokens are never an end-of-sequence or stop id, and
  // stop strings only end the output after them (a grammar that is complete still ends it).
  int64_t min_tokens = 0;
  bool skip_special_tokens = true;       // leave <|im_end|> and the like out of the text
  int32_t priority = 0;                  // lower runs first
  int32_t adapter = 0;                   // LoRA adapter: 1-based into EngineConfig::lora; 0: none
  // -1: off. Else the log-probability (and rank) of each prompt token after the first, and this
  // many alternatives, sent with the first token. Costs a logit row per prompt token, and the
  // prompt is computed even when the prefix cache holds it.
  int32_t prompt_logprobs = -1;
  // Structured output: the text must be a sentence of this grammar (JSON, a schema, choices).
  // It may end (end-of-sequence or a stop id) only where the grammar is complete, and it ends
  // there even with ignore_eos.
  std::shared_ptr<const Grammar> grammar;
};

struct RequestTiming {
  double queue_s = 0;      // arrival to first scheduled
  double ttft_s = 0;       // arrival to first token
  double prefill_s = 0;    // first scheduled to first token
  double decode_s = 0;     // first token to finish
  double e2e_s = 0;        // arrival to finish
};

struct StreamEvent {
  enum class Kind { kToken, kFinished };
  Kind kind = Kind::kToken;
  std::chrono::steady_clock::time_point time;  // when the engine sent it
  // kToken: one generated token and the text that became final with it (may be empty while a
  // character or a possible stop string is incomplete).
  int32_t token = -1;
  std::string text;
  float logprob = 0.0f;
  std::vector<TokenLogprob> top_logprobs;
  // The first token's event, when asked (GenerationRequest::prompt_logprobs): entry i scores
  // prompt token i + 1.
  std::vector<TokenLogprobs> prompt_logprobs;
  // kFinished: why, and the totals.
  FinishReason reason = FinishReason::kStop;
  std::string error;
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens served from the prefix cache
  RequestTiming timing;
};

// The client's end of a request: events in order, ending with one kFinished. Thread-safe.
class RequestStream {
 public:
  explicit RequestStream(std::string id) : id_(std::move(id)) {}
  const std::string& id() const { return id_; }

  // Waits up to `timeout` for the next event; false on timeout or after the last event.
  bool Next(StreamEvent* ev, std::chrono::milliseconds timeout = std::chrono::milliseconds::max());
  // Asks the engine to drop the request (its blocks are freed within one step).
  void Cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  bool done() const;

  // Engine side.
  void Push(StreamEvent ev);

 private:
  std::string id_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<StreamEvent> events_;
  bool finished_ = false;   // the kFinished event was pushed
  bool delivered_ = false;  // and taken
  std::atomic<bool> cancelled_{false};
};

}  // namespace qb
