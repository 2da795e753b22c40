// `qwenbox serve`'s options, and the start-up sizing that turns them, the detected container
// limits and the loaded model into engine settings (threads, KV blocks, token limits).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cli/draft_model.h"
#include "cli/exec_options.h"
#include "engine/engine.h"
#include "model/loader.h"
#include "model/step_model.h"
#include "resources/limits.h"
#include "resources/memory_plan.h"
#include "server/http_server.h"
#include "util/json.h"

namespace qb::cli {

// HTTP threads beyond running and queued requests, so probes and 429s are answered at once.
constexpr int64_t kProbeThreads = 64;

struct ServeOptions {
  std::string model;
  ServerConfig server = [] {
    ServerConfig c;
    c.http_threads = 0;  // 0: HttpThreads()
    return c;
  }();
  std::string api_key_file;
  std::vector<std::string> allowed_origins;  // --allowed-origins, as given
  ExecOptions exec;
  int64_t max_num_seqs = 64;
  int64_t max_batch_tokens = 2048;
  int64_t max_input_tokens = 0;
  int64_t max_total_tokens = 0;
  int64_t max_queue = 256;
  std::string kv_cache_bytes;  // "" or "0": sized from the memory limit
  std::string memory_limit;    // "": the cgroup's
  double memory_margin = 0.05;
  std::string kv_dtype = "f16";
  int64_t block_size = 16;
  bool no_prefix_caching = false;
  SpeculativeConfig speculative;  // --speculative-*
  DraftModelOptions draft;        // --draft-model, --draft-quant
  std::vector<std::string> lora_modules;  // --lora-modules NAME=PATH ...
  int64_t max_lora_rank = 0;              // --max-lora-rank (0: any)
  bool enable_lora = false;               // --enable-lora: vLLM's; no effect here
  double drain_timeout = 30;
  bool print_config = false;
  std::string device = "cpu";           // cpu or cuda
  double gpu_memory_utilization = 0.9;  // of the GPU's memory (weights + activations + KV)
};

struct ServeSizing {
  ResourceLimits limits;
  std::optional<int64_t> memory_limit;  // the effective limit
  std::string limit_source;
  bool limit_from_cgroup = false;
  int64_t resident_bytes = 0;
  int64_t weights_bytes = 0;
  int64_t activation_bytes = 0;
  int64_t connection_bytes = 0;
  int64_t http_threads = 0;
  int64_t kv_bytes_per_token = 0;
  int64_t kv_cache_bytes = 0;
  std::string kv_how;
  int64_t guard_reserve_bytes = 0;
  DraftMemory draft;          // the draft model's pool and activations (--draft-model)
  int64_t draft_weights_bytes = 0;
  int64_t lora_bytes = 0;      // the LoRA adapters' weights (resident, part of resident_bytes)
  EngineConfig engine;         // engine.lora: the adapters, set before SizeServe
  std::string device = "cpu";  // the backend's description once made
  nlohmann::ordered_json gpu;  // GPU memory and KV sizing (--device cuda)
};

// --http-threads, or by default one per running and queued request plus kProbeThreads: each
// thread costs memory (stack, kernel stack) whether or not it is busy.
int HttpThreads(const ServeOptions& o);
// Reads the limits (detection, or --memory-limit) before anything is loaded.
Status DetectServeLimits(const ServeOptions& o, ServeSizing* s);
// After loading and warming up: measures what the model (and the draft model, if any) holds and
// sizes the KV cache and token limits; the error explains what does not fit.
Status SizeServe(const ServeOptions& o, const LoadedModel& loaded, const LoadedModel* draft, int threads,
                 ServeSizing* s);
// Whether --device names a backend this executable has (qwenbox: cpu; qwenbox-cuda: also cuda).
Status CheckDevice(const ServeOptions& o);
// The backend for --device: the CPU (a KV pool of the sized blocks in host memory) or the CUDA
// GPU (weights uploaded, the pool sized in device memory: updates s->engine's blocks and token
// limits and s->gpu).
Result<std::unique_ptr<StepModel>> MakeServeStepModel(const ServeOptions& o, const LoadedModel& loaded,
                                                      const kernels::ExecContext& ctx, ServeSizing* s);
// Everything detected and derived, for --print-config.
nlohmann::ordered_json ServeConfigJson(const ServeOptions& o, const ServeSizing& s, int threads);

}  // namespace qb::cli
