// The qwenbox_* metrics (docs/METRICS.md) and the process figures they include.
#pragma once

#include <cstdint>
#include <string>

#include "engine/engine.h"
#include "resources/memory_guard.h"
#include "server/prometheus.h"

namespace qb {

class ServerMetrics {
 public:
  ServerMetrics();

  // A request ended: its HTTP status, finish reason ("" when it never ran) and timings; `adapter`:
  // the LoRA adapter it ran with ("" for the model itself).
  void RequestDone(int status, const std::string& finish_reason, const StreamEvent* finish,
                   const std::string& adapter = "");
  void InterTokenLatency(double seconds) { itl_->Observe(seconds); }
  // Renders everything, refreshing the gauges from the engine (may be null while loading).
  // `guard` (may be null) gives the memory limit, the memory in use and the headroom.
  std::string Render(const Engine* engine, MemoryGuard* guard, int threads);

 private:
  prom::Registry reg_;
  prom::Counter *requests_, *prompt_tokens_, *generated_tokens_, *prefix_hits_, *preemptions_;
  prom::Counter *draft_tokens_, *accepted_tokens_, *forward_s_, *sample_s_, *draft_s_;
  prom::Histogram *ttft_, *itl_, *e2e_, *queue_, *prefill_, *decode_, *prompt_len_, *gen_len_;
  prom::Gauge *running_, *waiting_, *kv_used_, *kv_total_, *kv_ratio_, *rss_, *mem_limit_, *threads_;
  prom::Gauge *mem_used_, *mem_headroom_;
  prom::Counter* mem_shed_;
  prom::Counter *lora_requests_, *lora_tokens_;
  int64_t last_prefix_hits_ = 0, last_preemptions_ = 0, last_shed_ = 0, last_draft_tokens_ = 0,
          last_accepted_tokens_ = 0;
  double last_forward_s_ = 0, last_sample_s_ = 0, last_draft_s_ = 0;
};

}  // namespace qb
