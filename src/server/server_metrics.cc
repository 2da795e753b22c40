#include "server/server_metrics.h"

#include <mutex>

namespace qb {

ServerMetrics::ServerMetrics() {
  const auto latency = prom::ExponentialBuckets(0.005, 2, 14);  // 5 ms .. 41 s
  const auto tokens = prom::ExponentialBuckets(1, 2, 16);       // 1 .. 32768
  requests_ = reg_.AddCounter("qwenbox_requests_total", "Requests handled, by finish reason and HTTP status.");
  prompt_tokens_ = reg_.AddCounter("qwenbox_prompt_tokens_total", "Prompt tokens of finished requests.");
  generated_tokens_ = reg_.AddCounter("qwenbox_generation_tokens_total", "Tokens generated.");
  prefix_hits_ = reg_.AddCounter("qwenbox_prefix_cache_hit_blocks_total", "KV blocks served from the prefix cache.");
  preemptions_ = reg_.AddCounter("qwenbox_preemptions_total", "Sequences preempted for lack of KV blocks.");
  draft_tokens_ = reg_.AddCounter("qwenbox_spec_decode_draft_tokens_total",
                                  "Speculative tokens proposed (n-gram or a draft model's) and computed.");
  accepted_tokens_ = reg_.AddCounter("qwenbox_spec_decode_accepted_tokens_total",
                                     "Speculative tokens the sampler agreed with (each saved a step).");
  lora_requests_ = reg_.AddCounter("qwenbox_lora_requests_total", "Requests that ran with a LoRA adapter, by adapter.");
  lora_tokens_ = reg_.AddCounter("qwenbox_lora_generation_tokens_total", "Tokens generated with a LoRA adapter, by adapter.");
  ttft_ = reg_.AddHistogram("qwenbox_time_to_first_token_seconds", "Arrival to first generated token.", latency);
  itl_ = reg_.AddHistogram("qwenbox_inter_token_latency_seconds", "Time between consecutive tokens of a stream.",
                           prom::ExponentialBuckets(0.001, 2, 14));
  e2e_ = reg_.AddHistogram("qwenbox_e2e_request_latency_seconds", "Arrival to the last token.", latency);
  queue_ = reg_.AddHistogram("qwenbox_request_queue_time_seconds", "Arrival to first scheduled.", latency);
  prefill_ = reg_.AddHistogram("qwenbox_request_prefill_time_seconds", "First scheduled to first token.", latency);
  decode_ = reg_.AddHistogram("qwenbox_request_decode_time_seconds", "First token to the last.", latency);
  prompt_len_ = reg_.AddHistogram("qwenbox_request_prompt_tokens", "Prompt length per request.", tokens);
  gen_len_ = reg_.AddHistogram("qwenbox_request_generation_tokens", "Generated tokens per request.", tokens);
  running_ = reg_.AddGauge("qwenbox_requests_running", "Sequences in the running batch.");
  waiting_ = reg_.AddGauge("qwenbox_requests_waiting", "Sequences waiting to be scheduled.");
  kv_used_ = reg_.AddGauge("qwenbox_kv_cache_used_blocks", "KV cache blocks in use.");
  kv_total_ = reg_.AddGauge("qwenbox_kv_cache_capacity_blocks", "KV cache blocks in the pool.");
  kv_ratio_ = reg_.AddGauge("qwenbox_kv_cache_usage_ratio", "Fraction of KV cache blocks in use (0..1).");
  rss_ = reg_.AddGauge("qwenbox_resident_memory_bytes", "Resident set size of the process.");
  mem_limit_ = reg_.AddGauge("qwenbox_memory_limit_bytes", "The memory limit qwenbox runs under (0: none found).");
  mem_used_ = reg_.AddGauge("qwenbox_memory_used_bytes",
                            "Memory counted against the limit: the cgroup's working set, or the resident set.");
  mem_headroom_ = reg_.AddGauge("qwenbox_memory_headroom_bytes", "The memory limit less the memory used (0: no limit).");
  mem_shed_ = reg_.AddCounter("qwenbox_memory_rejections_total",
                              "Requests refused with 429 because memory was near the limit.");
  threads_ = reg_.AddGauge("qwenbox_compute_threads", "Threads computing forward passes.");
  forward_s_ = reg_.AddCounter("qwenbox_engine_forward_seconds_total", "Time in forward passes.");
  sample_s_ = reg_.AddCounter("qwenbox_engine_sampling_seconds_total", "Time sampling and detokenizing.");
  draft_s_ = reg_.AddCounter("qwenbox_engine_draft_seconds_total",
                             "Time proposing speculative tokens (the draft model's passes, n-gram lookups).");
}

void ServerMetrics::RequestDone(int status, const std::string& finish_reason, const StreamEvent* f,
                                const std::string& adapter) {
  requests_->Add(1, {{"finish_reason", finish_reason.empty() ? "none" : finish_reason}, {"code", std::to_string(status)}});
  if (!adapter.empty()) lora_requests_->Add(1, {{"adapter", adapter}});
  if (f == nullptr) return;
  if (!adapter.empty()) lora_tokens_->Add(static_cast<double>(f->generated_tokens), {{"adapter", adapter}});
  prompt_tokens_->Add(static_cast<double>(f->prompt_tokens));
  generated_tokens_->Add(static_cast<double>(f->generated_tokens));
  prompt_len_->Observe(static_cast<double>(f->prompt_tokens));
  gen_len_->Observe(static_cast<double>(f->generated_tokens));
  e2e_->Observe(f->timing.e2e_s);
  queue_->Observe(f->timing.queue_s);
  if (f->generated_tokens > 0) {
    ttft_->Observe(f->timing.ttft_s);
    prefill_->Observe(f->timing.prefill_s);
    decode_->Observe(f->timing.decode_s);
  }
}

std::string ServerMetrics::Render(const Engine* engine, MemoryGuard* guard, int threads) {
  static std::mutex mu;  // the mirrored counters' last values
  if (engine != nullptr) {
    const EngineStats s = engine->Stats();
    running_->Set(static_cast<double>(s.running));
    waiting_->Set(static_cast<double>(s.waiting));
    kv_used_->Set(static_cast<double>(s.kv_blocks_used));
    kv_total_->Set(static_cast<double>(s.kv_blocks_total));
    kv_ratio_->Set(s.kv_blocks_total > 0 ? static_cast<double>(s.kv_blocks_used) / static_cast<double>(s.kv_blocks_total) : 0);
    std::lock_guard<std::mutex> lock(mu);
    forward_s_->Add(s.forward_s - last_forward_s_);
    sample_s_->Add(s.sample_s - last_sample_s_);
    last_forward_s_ = s.forward_s;
    last_sample_s_ = s.sample_s;
    draft_s_->Add(s.draft_s - last_draft_s_);
    last_draft_s_ = s.draft_s;
    prefix_hits_->Add(static_cast<double>(s.prefix_hit_blocks - last_prefix_hits_));
    preemptions_->Add(static_cast<double>(s.preemptions - last_preemptions_));
    draft_tokens_->Add(static_cast<double>(s.draft_tokens - last_draft_tokens_));
    accepted_tokens_->Add(static_cast<double>(s.accepted_tokens - last_accepted_tokens_));
    last_prefix_hits_ = s.prefix_hit_blocks;
    last_preemptions_ = s.preemptions;
    last_draft_tokens_ = s.draft_tokens;
    last_accepted_tokens_ = s.accepted_tokens;
  }
  rss_->Set(static_cast<double>(ProcessResidentBytes()));
  if (guard != nullptr) {
    const MemorySample m = guard->Sample();
    mem_limit_->Set(static_cast<double>(m.limit_bytes.value_or(0)));
    mem_used_->Set(static_cast<double>(m.used_bytes));
    mem_headroom_->Set(static_cast<double>(m.headroom_bytes().value_or(0)));
    std::lock_guard<std::mutex> lock(mu);
    mem_shed_->Add(static_cast<double>(guard->shed_count() - last_shed_));
    last_shed_ = guard->shed_count();
  } else {
    mem_used_->Set(static_cast<double>(ProcessResidentBytes()));
  }
  threads_->Set(threads);
  return reg_.Render();
}

}  // namespace qb
