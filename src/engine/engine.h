// The serving engine: one thread owns all mutable state (scheduler, KV cache, per-request
// sampling and detokenization) and runs steps: admit, schedule, one batched forward pass over
// every scheduled sequence, sample, emit token events to the requests' streams. Other threads
// only Submit requests and read or cancel their streams. See docs/ENGINE.md.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/drafter.h"
#include "engine/request.h"
#include "kernels/exec_context.h"
#include "kv/block_pool.h"
#include "kv/kv_storage.h"
#include "model/qwen2.h"
#include "model/step_model.h"
#include "scheduler/scheduler.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"
#include "util/status.h"

namespace qb {

class TokenBytesIndex;
class TokenSetCaches;


struct EngineConfig {
  SchedulerConfig scheduler;
  int64_t kv_blocks = 1024;           // blocks of scheduler.block_size tokens in the pool
  DType kv_dtype = DType::kF16;       // f16 (default), bf16 or f32
  int64_t max_input_tokens = 0;       // 0: max_total_tokens - 1
  int64_t max_total_tokens = 0;       // prompt + generated; 0: the model's context length
  int64_t max_queue = 0;              // waiting requests; 0: unbounded
  std::vector<int32_t> eos_token_ids;
  SpeculativeConfig speculative;      // speculative decoding (off by default)
  std::shared_ptr<Drafter> drafter;  // its proposals (engine/model_drafter.h: a draft model); null: n-gram
  // LoRA adapters requests may ask for (GenerationRequest::adapter); null or empty: none.
  std::shared_ptr<const LoraAdapters> lora;
};

struct EngineStats {
  int64_t running = 0;
  int64_t waiting = 0;
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_total = 0;
  int64_t prefix_hit_blocks = 0;
  int64_t preemptions = 0;
  int64_t steps = 0;
  int64_t prompt_tokens = 0;     // computed (not served from the cache)
  int64_t generated_tokens = 0;
  double forward_s = 0;          // time in forward passes
  double sample_s = 0;           // time sampling and detokenizing
  double draft_s = 0;            // time proposing (a draft model's passes; n-gram lookups)
  int64_t draft_tokens = 0;      // speculative tokens computed
  int64_t accepted_tokens = 0;   // of which the sampler agreed with (each saved a step)
};

class Engine {
 public:
  // `tokenizer` may be null (then streams carry ids only and stop strings are refused).
  // The CPU backend: `model` with a KV pool of config.kv_blocks blocks, computing with `ctx`.
  Engine(std::shared_ptr<const Qwen2Model> model, std::shared_ptr<const Tokenizer> tokenizer, EngineConfig config,
         kernels::ExecContext ctx);
  // Any backend (model/step_model.h); its KV pool must hold config.kv_blocks blocks of
  // config.scheduler.block_size tokens. `host` lends its thread pool to sampling.
  Engine(std::unique_ptr<StepModel> model, std::shared_ptr<const Tokenizer> tokenizer, EngineConfig config,
         kernels::ExecContext host);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const EngineConfig& config() const { return config_; }
  // Checks the request against the limits (errors say why) and queues it.
  Result<std::shared_ptr<RequestStream>> Submit(GenerationRequest request);
  EngineStats Stats() const;
  // Cancels everything still running and stops the loop (also done by the destructor).
  void Shutdown();

 private:
  struct Active;
  void Loop();
  void Step();
  void Admit();
  // Sets the draft of every decoding sequence whose text repeats itself (speculation on).
  void ProposeDrafts();
  // True when `token` ends the request (end of sequence unless ignored, a stop id, the end of
  // its grammar).
  bool EndsRequest(const Active& a, int32_t token) const;
  struct PromptRow {  // a logit row that scores a prompt token
    Active* active;
    int64_t position;  // the row's position: it scores the token after it
    int64_t row;       // in the step's logits
  };
  // Appends each row's log-probabilities to its request's (spread over the pool).
  void ScorePrompts(const std::vector<PromptRow>& rows, const Tensor& logits);
  // A token's event (the first one also carries the prompt's log-probabilities).
  static StreamEvent TokenEvent(Active& a, const SampleResult& s);
  // Sends one token with the text that became final; true when a stop string ended the output.
  bool Emit(Active& a, const SampleResult& s);
  void FinishRequest(int64_t id, FinishReason reason, const std::string& error = "");
  void PublishStats();

  std::unique_ptr<StepModel> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::shared_ptr<const TokenBytesIndex> token_bytes_;  // made on the first structured-output request
  std::shared_ptr<TokenSetCaches> token_sets_;  // allowed-token sets per grammar, shared by its requests
  EngineConfig config_;
  kernels::ExecContext ctx_;  // host threads (sampling)
  // Engine-thread state.
  BlockPool pool_;
  Scheduler scheduler_;
  std::unordered_map<int64_t, std::unique_ptr<Active>> active_;
  int64_t next_id_ = 1;
  // Shared with Submit.
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::vector<std::unique_ptr<Active>> inbox_;
  bool stop_ = false;
  mutable std::mutex stats_mu_;
  EngineStats stats_;    // the published copy (Stats())
  EngineStats counters_; // engine-thread running totals
  std::thread thread_;
};

}  // namespace qb
