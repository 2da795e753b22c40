// qwenbox serve [--model PATH] [--host H] [--port P] [--probe-port P] [--api-key KEY | --api-key-file F]
//               [--served-model-name NAME] [engine limits] [-t N] [--quant Q]
// Without --model it serves a demo model: random weights of the tiny preset with the real
// Qwen2.5 tokenizer, built in memory. SIGTERM/SIGINT drains: new requests get 503, running ones
// finish within --drain-timeout, the rest are cancelled, and the process exits 0.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <sstream>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "assets/assets.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/exec_options.h"
#include "cli/lora_options.h"
#include "cli/serve_options.h"
#include "cli/stop_signals.h"
#include "engine/engine.h"
#include "kv/kv_storage.h"
#include "model/loader.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"
#include "server/http_server.h"
#include "tokenizer/chat_template.h"
#include "resources/memory_guard.h"
#include "util/byte_size.h"
#include "util/json.h"

namespace qb::cli {

namespace {

Result<LoadedModel> DemoModel(int tensor_parallel, std::shared_ptr<const Tokenizer>* tok) {
  QB_ASSIGN_OR_RETURN(ModelPreset preset, FindPreset("tiny"));
  LoadedModel m;
  m.path = "(demo: random tiny model)";
  m.generation = preset.generation;
  LoadOptions lo;
  lo.tensor_parallel = tensor_parallel;
  QB_RETURN_IF_ERROR(FinishLoading(preset.config, RandomWeightsInMemory(preset, DType::kBF16, 0), lo, &m));
  QB_ASSIGN_OR_RETURN(*tok, LoadTokenizerFromText(assets::Qwen25TokenizerJson(), assets::Qwen25TokenizerConfigJson(),
                                                  "built-in"));
  return m;
}

Status RunServe(ServeOptions o) {
  // Before any other thread starts: SIGTERM/SIGINT exit while starting and drain once ready.
  StopSignals stop_signals;
  ::signal(SIGPIPE, SIG_IGN);
  // Allocations of 1 MiB and more are mapped and unmapped, so their memory returns to the system
  // when freed. glibc's default raises that threshold as large blocks are freed and keeps the
  // freed memory in per-thread arenas (8 per visible CPU): a server that rejected a few 8 MB
  // prompts on different HTTP threads held ~1 GB more (measured: 40 such requests, 0.6 -> 1.5
  // GB; with this setting +3 MB). The engine's own buffers are allocated once, so it costs no
  // measurable speed (`qwenbox bench` pp512/tg32 within the noise).
  mallopt(M_MMAP_THRESHOLD, 1 << 20);

  if (!o.api_key_file.empty()) {
    QB_ASSIGN_OR_RETURN(std::string key, ReadFileToString(o.api_key_file));
    while (!key.empty() && (key.back() == '\n' || key.back() == '\r' || key.back() == ' ')) key.pop_back();
    if (key.empty()) return InvalidArgument(o.api_key_file + ": the API key file is empty");
    o.server.api_key = key;
  }
  // "a,b", ["a", "b"] (vLLM's form) or repeated flags: one origin each, without quotes or brackets.
  for (const std::string& value : o.allowed_origins) {
    std::istringstream list(value);
    for (std::string origin; std::getline(list, origin, ',');) {
      std::erase_if(origin, [](char ch) { return ch == '[' || ch == ']' || ch == '"' || ch == '\'' || ch == ' '; });
      while (origin.size() > 1 && origin.back() == '/') origin.pop_back();  // browsers send no path
      if (!origin.empty()) o.server.allowed_origins.push_back(origin);
    }
  }
  ServeSizing sizing;
  QB_RETURN_IF_ERROR(DetectServeLimits(o, &sizing));

  // --print-config loads and measures the model but does not listen.
  o.server.http_threads = HttpThreads(o);
  HttpServer server(o.server);
  if (!o.print_config) {
    QB_RETURN_IF_ERROR(server.Start());
    spdlog::info("listening on http://{}:{} (/health answers while loading)", o.server.host, server.port());
    if (server.probe_port() >= 0)
      spdlog::info("probes (/health, /ready, /metrics) also on http://{}:{}", o.server.host, server.probe_port());
  }

  std::unique_ptr<ThreadPool> pool;
  kernels::ExecContext ctx;
  QB_RETURN_IF_ERROR(o.exec.Make(&pool, &ctx));
  // Loading stages go to /ready and, on a terminal, to a progress bar on stderr.
  const bool tty = ::isatty(2) != 0;
  auto stage = [&server, tty](const std::string& what, double fraction) {
    server.SetLoading(what, fraction);
    if (!tty) return;
    constexpr int kWidth = 30;
    const int filled = std::clamp(static_cast<int>(fraction * kWidth), 0, kWidth);
    std::fprintf(stderr, "\r\033[Kloading [%s%s] %3d%% %s", std::string(static_cast<size_t>(filled), '#').c_str(),
                 std::string(static_cast<size_t>(kWidth - filled), ' ').c_str(), static_cast<int>(fraction * 100),
                 what.c_str());
    if (fraction >= 1.0) std::fputc('\n', stderr);
    std::fflush(stderr);
  };
  stage("loading weights", 0.05);
  std::shared_ptr<const Tokenizer> tok;
  LoadedModel loaded;
  if (o.model.empty()) {
    spdlog::warn("no --model given: serving a DEMO model (random weights of the tiny preset, real Qwen2.5 "
                 "tokenizer); its text is meaningless");
    QB_ASSIGN_OR_RETURN(loaded, DemoModel(o.exec.tensor_parallel, &tok));
  } else {
    // The load itself is 5-70% of the bar.
    QB_ASSIGN_OR_RETURN(loaded, o.exec.Load(o.model, pool.get(), [&stage](const std::string& what, double f) {
      stage(what, 0.05 + 0.65 * f);
    }));
    stage("loading the tokenizer", 0.75);
    QB_ASSIGN_OR_RETURN(tok, LoadTokenizer(o.model));
  }
  std::optional<LoadedModel> draft;
  if (o.draft.enabled()) {
    stage("loading the draft model", 0.77);
    QB_ASSIGN_OR_RETURN(draft, LoadDraftModel(o.draft, tok.get(), pool.get()));
  }
  const ModelConfig& mc = loaded.model->config();
  if (!o.lora_modules.empty()) {
    stage("loading the LoRA adapters", 0.78);
    QB_ASSIGN_OR_RETURN(sizing.engine.lora, LoadLoraModules(o.lora_modules, mc, o.server.served_model_name,
                                                                  o.max_lora_rank));
    for (const auto& a : *sizing.engine.lora)
      spdlog::info("LoRA adapter \"{}\": {} (rank {}, {}, {})", a->name, a->path, a->rank,
                   fmt::format("{}", fmt::join(a->targets, ",")), HumanBytes(a->bytes));
  }
  stage("sizing the KV cache (first forward pass: reads every weight)", 0.8);
  QB_RETURN_IF_ERROR(SizeServe(o, loaded, draft ? &*draft : nullptr, static_cast<int>(pool->size()), &sizing));
  if (o.device != "cpu") stage("uploading the weights to the GPU", 0.87);
  QB_ASSIGN_OR_RETURN(std::unique_ptr<StepModel> step, MakeServeStepModel(o, loaded, ctx, &sizing));
  if (o.print_config) {
    std::puts(ServeConfigJson(o, sizing, static_cast<int>(pool->size())).dump(2).c_str());
    return Status::Ok();
  }
  spdlog::info("memory: limit {} ({}); KV cache {}", sizing.memory_limit ? HumanBytes(*sizing.memory_limit) : "none",
               sizing.limit_source, sizing.kv_how);
  EngineConfig ec = sizing.engine;
  for (int64_t e : loaded.generation.eos_token_ids) ec.eos_token_ids.push_back(static_cast<int32_t>(e));
  if (auto im_end = tok->AddedTokenId("<|im_end|>");
      im_end && std::find(ec.eos_token_ids.begin(), ec.eos_token_ids.end(), *im_end) == ec.eos_token_ids.end())
    ec.eos_token_ids.push_back(*im_end);
  if (draft)
    ec.drafter = MakeDraftModelDrafter(*draft, sizing.draft.kv_blocks, o.block_size, ec.kv_dtype, ec.speculative.num_tokens, ctx);
  Engine engine(std::move(step), tok, ec, ctx);

  stage("warming up", 0.95);
  {
    GenerationRequest warm;
    warm.prompt = {0};
    warm.max_tokens = 1;
    warm.ignore_eos = true;
    QB_ASSIGN_OR_RETURN(auto s, engine.Submit(warm));
    StreamEvent ev;
    while (s->Next(&ev) && ev.kind != StreamEvent::Kind::kFinished) {
    }
  }
  ServedModel sm;
  sm.engine = &engine;
  sm.tokenizer = tok;
  if (auto kind = RecognizeChatTemplate(tok->chat_template()); kind.ok()) sm.chat_template = *kind;
  else spdlog::warn("/v1/chat/completions is off: {}", kind.status().message());
  const GenerationConfig& g = loaded.generation;
  sm.defaults.temperature = g.do_sample ? static_cast<float>(g.temperature.value_or(1.0)) : 0.0f;
  sm.defaults.top_p = g.do_sample ? static_cast<float>(g.top_p.value_or(1.0)) : 1.0f;
  sm.defaults.top_k = g.do_sample ? g.top_k.value_or(0) : 0;
  sm.defaults.repetition_penalty = static_cast<float>(g.repetition_penalty.value_or(1.0));
  sm.defaults.max_total_tokens = ec.max_total_tokens;
  sm.dtype = mc.torch_dtype;
  sm.compute_threads = pool->size();
  sm.memory_guard = std::make_shared<MemoryGuard>(sizing.limits, sizing.memory_limit, sizing.limit_from_cgroup,
                                                  sizing.guard_reserve_bytes);
  stage("ready", 1.0);
  server.SetModel(sm);
  spdlog::info("ready: {} as \"{}\" on {} ({} {} KV blocks of {} tokens, {} compute threads, max {} tokens a request)",
               loaded.path, o.server.served_model_name, sizing.device, ec.kv_blocks, Name(ec.kv_dtype), o.block_size,
               pool->size(), ec.max_total_tokens);

  stop_signals.SetReady();
  const int sig = stop_signals.WaitForSignal();
  spdlog::info("{}: draining (up to {} s)", StopSignalName(sig), o.drain_timeout);
  server.BeginDrain();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.drain_timeout);
  while (server.in_flight() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (server.in_flight() > 0) spdlog::warn("drain timeout: cancelling {} requests", server.in_flight());
  engine.Shutdown();
  for (int i = 0; i < 100 && server.in_flight() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  server.Stop();
  spdlog::info("stopped");
  return Status::Ok();
}

}  // namespace

void AddServeCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve the OpenAI- and TGI-compatible HTTP API");
  cmd->add_option("--model", o->model, "A Hugging Face directory or a .gguf file (default: the built-in demo model)");
  cmd->add_option("--host", o->server.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", o->server.port, "Port (0: any free port)")->capture_default_str();
  cmd->add_option("--probe-port", o->server.probe_port,
                  "Also serve /health, /ready and /metrics on this port, with threads of their own: probes answer "
                  "while every connection of --port is busy (Kubernetes manifests use it; -1: off)")
      ->capture_default_str();
  auto* key = cmd->add_option("--api-key", o->server.api_key, "Require 'Authorization: Bearer KEY'");
  cmd->add_option("--api-key-file", o->api_key_file, "Read the API key from this file")->excludes(key);
  cmd->add_option("--served-model-name", o->server.served_model_name, "The model name clients use")->capture_default_str();
  cmd->add_option("--allowed-origins,--cors-allow-origin", o->allowed_origins,
                  "CORS: origins whose web pages may call the API, e.g. https://ui.example.com, or * for any "
                  "(comma-separated or repeated; vLLM's JSON list works too; default: none)");
  cmd->add_option("--max-num-seqs", o->max_num_seqs, "Sequences batched at once")->capture_default_str();
  cmd->add_option("--max-batch-tokens", o->max_batch_tokens, "Tokens per engine step (prefill chunks + decodes)")
      ->capture_default_str();
  cmd->add_option("--max-input-tokens", o->max_input_tokens, "Longest prompt (default: max total - 1)");
  cmd->add_option("--max-total-tokens", o->max_total_tokens,
                  "Prompt + generated tokens per request (default: the model's context, within the KV cache)");
  cmd->add_option("--max-queue", o->max_queue, "Waiting requests before answering 429")->capture_default_str();
  cmd->add_option("--kv-cache-bytes", o->kv_cache_bytes,
                  "Bytes of KV cache, e.g. 4g (default: what the memory limit leaves; 4 GiB without a limit)");
  cmd->add_option("--memory-limit", o->memory_limit, "Memory to fit in, e.g. 8g (default: the cgroup's limit)");
  cmd->add_option("--memory-margin", o->memory_margin, "Fraction of the memory limit left free")->capture_default_str();
  cmd->add_flag("--print-config", o->print_config,
                "Print the detected limits and every derived setting as JSON, and exit (loads the model)");
  cmd->add_option("--device", o->device, "cpu, or cuda (GPU 0; in qwenbox-cuda, built with -DQWENBOX_CUDA=ON)")->capture_default_str();
  cmd->add_option("--gpu-memory-utilization", o->gpu_memory_utilization,
                  "With --device cuda: the fraction of the GPU's memory for weights, activations and KV cache")
      ->capture_default_str();
  cmd->add_option("--kv-dtype", o->kv_dtype, "KV cache type: f16, bf16, f32, or q8_0 (CPU: half of f16's memory)")->capture_default_str();
  cmd->add_option("--block-size", o->block_size, "Tokens per KV block")->capture_default_str();
  cmd->add_flag("--no-prefix-caching", o->no_prefix_caching, "Do not reuse KV blocks of shared prefixes");
  cmd->add_option("--speculative-tokens", o->speculative.num_tokens,
                  "Speculative decoding: tokens proposed per step, verified in one pass. Without --draft-model they come "
                  "from the request's earlier text (n-gram; 0: off; 3 suits CPUs; pays where outputs repeat their "
                  "input: edits, extraction, quotes); with it, from the draft model (0: 4)")
      ->capture_default_str();
  cmd->add_option("--speculative-ngram-min", o->speculative.ngram_min, "Shortest suffix looked up for a proposal")
      ->capture_default_str();
  cmd->add_option("--speculative-ngram-max", o->speculative.ngram_max, "Longest suffix looked up for a proposal")
      ->capture_default_str();
  cmd->add_option("--speculative-max-seqs", o->speculative.max_seqs,
                  "Propose only while at most this many requests run or wait (larger batches are compute-bound)")
      ->capture_default_str();
  o->draft.Add(cmd);
  cmd->add_option("--lora-modules", o->lora_modules,
                  "LoRA adapters (PEFT directories with adapter_config.json and adapter_model.safetensors) as "
                  "NAME=PATH, requests choose one with \"model\": NAME (OpenAI) or \"adapter_id\" (TGI)")
      ->expected(1, -1);
  cmd->add_flag("--enable-lora", o->enable_lora,
                "Accepted for vLLM's command lines (adapters are on when --lora-modules names some)");
  cmd->add_option("--max-lora-rank", o->max_lora_rank, "Refuse adapters of a higher rank (0: any)")
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", o->server.max_body_bytes, "Largest request body (413 above)")->capture_default_str();
  cmd->add_option("--http-threads", o->server.http_threads,
                  "Connections served at once (default: --max-num-seqs + --max-queue + 64)");
  cmd->add_option("--drain-timeout", o->drain_timeout, "Seconds to let requests finish on SIGTERM")->capture_default_str();
  o->exec.Add(cmd, "fast");
  o->exec.AddTensorParallel(cmd);
  cmd->callback([o, exit_code] {
    Status s = RunServe(*o);
    *exit_code = s.ok() ? 0 : ReportError("serve", s);
  });
}

}  // namespace qb::cli
