// qwenbox bench --model PATH [-p 512] [-n 128] [-t THREADS] [--reps 5] [--concurrency N]
//   [--kv-dtype f16] [--speculative-tokens K] [--draft-model PATH [--draft-quant Q]] [--lora PATH] [--json]
// Prompt processing (one forward pass over p tokens) and generation (n tokens one at a time)
// in tokens/s, min/median/max over the repetitions, like llama-bench; and peak RSS.
// With --concurrency N: N sequences of p prompt tokens and n generated tokens run through the
// serving engine at once; reports the aggregate generation rate.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>

#include <fmt/format.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/draft_model.h"
#include "cli/lora_options.h"
#include "cli/exec_options.h"
#include "engine/engine.h"
#include "kernels/ops.h"
#include "model/loader.h"
#include "model/step_model.h"
#include "resources/memory_plan.h"

namespace qb::cli {

namespace {

struct BenchOptions {
  std::string model;
  int64_t prompt = 512;
  int64_t gen = 128;
  int reps = 5;
  int concurrency = 0;
  std::string kv_dtype = "f16";
  SpeculativeConfig speculative;
  DraftModelOptions draft;
  std::string lora;  // --lora: every token through this adapter
  bool json = false;
  ExecOptions exec;
};

struct Stats {
  double min = 0, median = 0, max = 0;
};

Stats Summarize(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2], v.back()};
}

int64_t PeakRssBytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}

// N requests at once through the engine: the decode rate once every request is generating
// (from the last first token to the last finish), and the rate over the whole run.
Status RunConcurrent(const BenchOptions& o, const LoadedModel& loaded, const kernels::ExecContext& ctx, ThreadPool* pool,
                     std::shared_ptr<const LoraAdapters> lora) {
  const ModelConfig& mc = loaded.model->config();
  const int64_t per_seq = o.prompt + o.gen;
  EngineConfig ec;
  QB_ASSIGN_OR_RETURN(ec.kv_dtype, ParseKvDType(o.kv_dtype, mc.head_dim));
  ec.scheduler.block_size = 16;
  ec.scheduler.max_num_seqs = std::max(o.concurrency, 1);
  ec.scheduler.max_batch_tokens = std::max<int64_t>(512, o.concurrency);
  ec.kv_blocks = (per_seq + 15) / 16 * o.concurrency + 16;
  QB_RETURN_IF_ERROR(CheckSpeculative(o.speculative));
  ec.speculative = o.speculative;
  ec.speculative.max_seqs = std::max<int64_t>(ec.speculative.max_seqs, o.concurrency);
  ec.lora = lora;
  std::optional<LoadedModel> draft;
  DraftMemory draft_sizing;
  if (o.draft.enabled()) {
    QB_ASSIGN_OR_RETURN(draft, LoadDraftModel(o.draft, nullptr, pool));
    QB_RETURN_IF_ERROR(kernels::CheckKvDType(ec.kv_dtype, draft->model->config().head_dim));
    if (ec.speculative.num_tokens == 0) ec.speculative.num_tokens = kDefaultDraftTokens;
    draft_sizing = DraftModelMemory(draft->model->config(), o.concurrency, per_seq + ec.speculative.num_tokens,
                                    ec.scheduler.block_size, ec.kv_dtype, pool->size());
  }
  std::vector<double> agg, decode;
  int64_t drafts = 0, accepted = 0, steps = 0;
  std::mt19937 rng(99);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(std::min<int64_t>(mc.vocab_size, 151643) - 1));
  for (int r = 0; r < o.reps; ++r) {
    if (draft)
      ec.drafter = MakeDraftModelDrafter(*draft, draft_sizing.kv_blocks, ec.scheduler.block_size, ec.kv_dtype,
                                         ec.speculative.num_tokens, ctx);
    Engine engine(MakeCpuStepModel(loaded, KvLayout{ec.kv_blocks, ec.scheduler.block_size, ec.kv_dtype}, ctx), nullptr,
                  ec, ctx);
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (int i = 0; i < o.concurrency; ++i) {
      GenerationRequest req;
      req.prompt.resize(static_cast<size_t>(std::max<int64_t>(o.prompt, 1)));
      for (auto& t : req.prompt) t = id(rng);  // distinct prompts: no prefix-cache help
      req.max_tokens = o.gen;
      req.ignore_eos = true;
      req.adapter = lora ? 1 : 0;
      QB_ASSIGN_OR_RETURN(auto s, engine.Submit(std::move(req)));
      streams.push_back(s);
    }
    Clock::time_point last_first = t0;
    int64_t tokens = 0, tokens_after = 0;
    std::vector<std::vector<Clock::time_point>> times(streams.size());
    for (size_t i = 0; i < streams.size(); ++i) {
      StreamEvent ev;
      while (streams[i]->Next(&ev) && ev.kind == StreamEvent::Kind::kToken) times[i].push_back(ev.time);
    }
    Clock::time_point t1 = t0;
    for (const auto& ts : times)
      if (!ts.empty()) t1 = std::max(t1, ts.back());
    for (const auto& ts : times) {
      tokens += static_cast<int64_t>(ts.size());
      if (!ts.empty()) last_first = std::max(last_first, ts.front());
    }
    for (const auto& ts : times)
      for (const auto& t : ts) tokens_after += t > last_first;
    agg.push_back(static_cast<double>(tokens) / std::chrono::duration<double>(t1 - t0).count());
    engine.Shutdown();  // (its counters are final)
    const EngineStats st = engine.Stats();
    drafts += st.draft_tokens;
    accepted += st.accepted_tokens;
    steps += st.steps;
    decode.push_back(static_cast<double>(tokens_after) / std::chrono::duration<double>(t1 - last_first).count());
  }
  const Stats a = Summarize(agg), d = Summarize(decode);
  if (o.json) {
    std::printf("{\"concurrency\": %d, \"aggregate_tg_tok_s\": %.2f, \"aggregate_tok_s_with_prefill\": %.2f, "
                "\"decode_tok_s\": {\"min\": %.2f, \"median\": %.2f, \"max\": %.2f}, \"prompt_tokens\": %lld, "
                "\"gen_tokens\": %lld, \"peak_rss_bytes\": %lld, \"engine_steps\": %lld, "
                "\"spec_draft_tokens\": %lld, \"spec_accepted_tokens\": %lld}\n",
                o.concurrency, d.median, a.median, d.min, d.median, d.max, static_cast<long long>(o.prompt),
                static_cast<long long>(o.gen), static_cast<long long>(PeakRssBytes()), static_cast<long long>(steps),
                static_cast<long long>(drafts), static_cast<long long>(accepted));
  } else {
    std::printf("%d concurrent sequences (p %lld, n %lld): decode %.2f tok/s aggregate median (min %.2f, max %.2f); "
                "%.2f tok/s over the whole run incl. prefill\n",
                o.concurrency, static_cast<long long>(o.prompt), static_cast<long long>(o.gen), d.median, d.min, d.max,
                a.median);
    if (ec.speculative.enabled())
      std::printf("speculation: %lld tokens proposed, %lld accepted (%.0f%%), %lld engine steps over %d runs\n",
                  static_cast<long long>(drafts), static_cast<long long>(accepted),
                  drafts > 0 ? 100.0 * static_cast<double>(accepted) / static_cast<double>(drafts) : 0.0,
                  static_cast<long long>(steps), o.reps);
  }
  return Status::Ok();
}

Status RunBench(const BenchOptions& o) {
  if (o.prompt < 0 || o.gen < 0 || o.reps < 1) return InvalidArgument("-p and -n must be >= 0, --reps >= 1");
  if (o.concurrency <= 0 && (o.draft.enabled() || o.speculative.enabled()))
    return InvalidArgument("--draft-model and --speculative-tokens run through the engine: add --concurrency N");
  std::unique_ptr<ThreadPool> pool;
  kernels::ExecContext ctx;
  QB_RETURN_IF_ERROR(o.exec.Make(&pool, &ctx));
  QB_ASSIGN_OR_RETURN(LoadedModel loaded, o.exec.Load(o.model, pool.get()));
  if (!o.lora.empty() && o.exec.tensor_parallel > 1) return Unimplemented("--lora with --tp is not supported");
  QB_ASSIGN_OR_RETURN(std::shared_ptr<const LoraAdapters> lora, LoadOneLora(o.lora, loaded.model->config()));
  if (o.concurrency > 0) return RunConcurrent(o, loaded, ctx, pool.get(), lora);
  const ModelConfig& mc = loaded.model->config();
  const int64_t total = std::max<int64_t>(o.prompt, o.gen);
  if (total > mc.max_position_embeddings)
    return InvalidArgument(fmt::format("{} tokens exceed the context length {}", total, mc.max_position_embeddings));
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(std::min<int64_t>(mc.vocab_size, 151643) - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(o.prompt));
  for (auto& t : prompt) t = id(rng);
  QB_ASSIGN_OR_RETURN(const DType kv_dtype, ParseKvDType(o.kv_dtype, mc.head_dim));
  auto step = MakeCpuSequenceModel(loaded, std::max<int64_t>(total, 1), kv_dtype, ctx);
  auto forward = [&step, &lora](const std::vector<int32_t>& tokens, int64_t start) {
    return step->Step(WithLora(SequenceBatch(tokens, start, false), lora.get()));
  };
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  // Warm-up: touch every weight page once.
  { QB_ASSIGN_OR_RETURN(Tensor w, forward(std::vector<int32_t>{1}, 0)); }
  std::vector<double> pp, tg;
  for (int r = 0; r < o.reps; ++r) {
    if (o.prompt > 0) {
      const auto t0 = Clock::now();
      QB_ASSIGN_OR_RETURN(Tensor logits, forward(prompt, 0));
      pp.push_back(static_cast<double>(o.prompt) / seconds(Clock::now() - t0));
    }
    if (o.gen > 0) {
      const auto t0 = Clock::now();
      int32_t tok = id(rng);
      for (int64_t i = 0; i < o.gen; ++i) {
        QB_ASSIGN_OR_RETURN(Tensor logits, forward(std::vector<int32_t>{tok}, i));
        tok = std::max_element(logits.data<float>(), logits.data<float>() + logits.cols()) - logits.data<float>();
      }
      tg.push_back(static_cast<double>(o.gen) / seconds(Clock::now() - t0));
    }
  }
  const Stats p = Summarize(pp), g = Summarize(tg);
  const int64_t rss = PeakRssBytes();
  const int64_t weight_bytes = loaded.Summary().bytes;
  if (o.json) {
    std::printf("{\"pp_tok_s\": {\"min\": %.2f, \"median\": %.2f, \"max\": %.2f}, "
                "\"tg_tok_s\": {\"min\": %.2f, \"median\": %.2f, \"max\": %.2f}, \"peak_rss_bytes\": %lld, "
                "\"prompt_tokens\": %lld, \"gen_tokens\": %lld, \"threads\": %d, \"isa\": \"%s\", \"weight_bytes\": %lld, "
                "\"tensor_parallel\": %d}\n",
                p.min, p.median, p.max, g.min, g.median, g.max, static_cast<long long>(rss),
                static_cast<long long>(o.prompt), static_cast<long long>(o.gen), pool->size(),
                std::string(kernels::IsaName(ctx.isa)).c_str(), static_cast<long long>(weight_bytes), o.exec.tensor_parallel);
    return Status::Ok();
  }
  std::printf("%s", fmt::format("model {} ({:.3f} B parameters, {:.1f} MiB of weights), {} threads on {}, {} kernels\n",
                                o.model, static_cast<double>(mc.ParameterCount()) / 1e9,
                                static_cast<double>(weight_bytes) / 1048576.0, pool->size(), step->device(),
                                kernels::IsaName(ctx.isa))
                        .c_str());
  if (o.prompt > 0)
    std::printf("pp%-5lld %8.2f tok/s median (min %.2f, max %.2f) over %d runs\n", static_cast<long long>(o.prompt),
                p.median, p.min, p.max, o.reps);
  if (o.gen > 0)
    std::printf("tg%-5lld %8.2f tok/s median (min %.2f, max %.2f); weights read at %.1f GB/s\n",
                static_cast<long long>(o.gen), g.median, g.min, g.max,
                g.median * static_cast<double>(weight_bytes) / 1e9);
  std::printf("peak RSS %.1f MiB\n", static_cast<double>(rss) / 1048576.0);
  return Status::Ok();
}

}  // namespace

void AddBenchCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Prompt-processing and generation speed, like llama-bench");
  cmd->add_option("--model", o->model, "Model: a Hugging Face directory or a .gguf file")->required();
  cmd->add_option("-p,--prompt", o->prompt, "Prompt tokens per prompt-processing run")->capture_default_str();
  cmd->add_option("-n,--gen", o->gen, "Tokens generated per generation run")->capture_default_str();
  cmd->add_option("--reps", o->reps, "Repetitions")->capture_default_str();
  cmd->add_option("--concurrency", o->concurrency,
                  "Run this many sequences at once through the serving engine (aggregate generation rate)");
  cmd->add_option("--kv-dtype", o->kv_dtype, "KV cache type: f16, bf16, f32 or q8_0")
      ->capture_default_str();
  cmd->add_option("--speculative-tokens", o->speculative.num_tokens,
                  "With --concurrency: speculative decoding, tokens proposed per step (n-gram without --draft-model, "
                  "0: off; with it 0: 4)")
      ->capture_default_str();
  o->draft.Add(cmd);
  cmd->add_option("--lora", o->lora, "A LoRA adapter (PEFT directory) applied to every token");
  cmd->add_option("--speculative-ngram-min", o->speculative.ngram_min, "Shortest suffix looked up")->capture_default_str();
  cmd->add_option("--speculative-ngram-max", o->speculative.ngram_max, "Longest suffix looked up")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON");
  o->exec.Add(cmd, "fast");
  o->exec.AddTensorParallel(cmd);
  cmd->callback([o, exit_code] {
    Status s = RunBench(*o);
    *exit_code = s.ok() ? 0 : ReportError("bench", s);
  });
}

}  // namespace qb::cli
