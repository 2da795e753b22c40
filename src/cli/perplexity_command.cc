// qwenbox perplexity --model PATH --file TEXT [--ctx 512] [--chunks N] [--batch 64]
//                    [--kv-dtype f16] [--kl-reference PATH] [--lora PATH] [--json]
// The perplexity of a text, computed as llama.cpp's llama-perplexity does, to compare
// quantizations (and KV cache types) of one model, or qwenbox with llama.cpp, on the same text:
// the text's tokens in chunks of --ctx, each evaluated from an empty cache, and each chunk's
// second half scored (every token from position ctx/2 + 1 on, given everything before it in its
// chunk). The running estimate goes to stderr after each chunk; the result to stdout, as
// "PPL = x +/- e" (the standard error, as llama.cpp gives it) or JSON. With --kl-reference, the
// same positions also run through a reference model (say the BF16 checkpoint the quantized one
// came from, with an f32 KV cache): the KL divergence of --model's next-token distribution from
// the reference's (mean, median, P99, max) and how often both rank the same token first, which
// shows a quantization's cost even on random weights, where perplexity means little. (The
// reference runs without --lora: with one, the divergence is the adapter's and the quantization's.)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/exec_options.h"
#include "cli/lora_options.h"
#include "model/loader.h"
#include "model/step_model.h"
#include "sampling/logprobs.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"
#include "util/json.h"

namespace qb::cli {

namespace {

struct PerplexityOptions {
  std::string model;
  std::string file;
  int64_t ctx = 512;
  int64_t chunks = 0;  // 0: every whole chunk of the text
  int64_t batch = 64;  // positions scored per forward pass (logit rows held at once)
  std::string kv_dtype = "f16";
  std::string kl_reference;  // a model to compare against (KL divergence, same top token)
  std::string lora;
  bool json = false;
  ExecOptions exec;
};

// The q-quantile of `v` (sorted in place), nearest rank.
double Quantile(std::vector<double>& v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) - (q > 0 ? 1 : 0);
  return v[std::min(i, v.size() - 1)];
}

Status RunPerplexity(const PerplexityOptions& o) {
  if (o.ctx < 4) return InvalidArgument("--ctx must be at least 4");
  if (o.batch < 1) return InvalidArgument("--batch must be at least 1");
  if (o.chunks < 0) return InvalidArgument("--chunks must be >= 0");
  QB_ASSIGN_OR_RETURN(std::string text, ReadFileToString(o.file));
  std::unique_ptr<ThreadPool> pool;
  kernels::ExecContext ctx;
  QB_RETURN_IF_ERROR(o.exec.Make(&pool, &ctx));
  QB_ASSIGN_OR_RETURN(auto tok, LoadTokenizer(o.model));
  QB_ASSIGN_OR_RETURN(LoadedModel loaded, o.exec.Load(o.model, pool.get()));
  QB_ASSIGN_OR_RETURN(const DType kv_dtype, ParseKvDType(o.kv_dtype, loaded.model->config().head_dim));
  if (!o.lora.empty() && o.exec.tensor_parallel > 1) return Unimplemented("--lora with --tp is not supported");
  QB_ASSIGN_OR_RETURN(auto lora, LoadOneLora(o.lora, loaded.model->config()));
  if (o.ctx > loaded.model->config().max_position_embeddings)
    return InvalidArgument(fmt::format("--ctx {} is longer than the model's context ({} tokens)", o.ctx,
                                       loaded.model->config().max_position_embeddings));
  const std::vector<int32_t> tokens = tok->Encode(text);
  const auto whole = static_cast<int64_t>(tokens.size()) / o.ctx;
  if (whole == 0)
    return InvalidArgument(fmt::format("{} has {} tokens, fewer than one chunk of --ctx {}", o.file, tokens.size(), o.ctx));
  const int64_t chunks = o.chunks > 0 ? std::min(o.chunks, whole) : whole;
  auto step = MakeCpuSequenceModel(loaded, o.ctx, kv_dtype, ctx);
  // The reference, as it is (no --quant), with an f32 KV cache.
  std::unique_ptr<StepModel> ref;
  LoadedModel ref_loaded;
  if (!o.kl_reference.empty()) {
    ExecOptions plain = o.exec;
    plain.quant.clear();
    QB_ASSIGN_OR_RETURN(ref_loaded, plain.Load(o.kl_reference, pool.get()));
    if (ref_loaded.model->config().vocab_size != loaded.model->config().vocab_size)
      return InvalidArgument(fmt::format("--kl-reference has a vocabulary of {} tokens, --model {}",
                                         ref_loaded.model->config().vocab_size, loaded.model->config().vocab_size));
    ref = MakeCpuSequenceModel(ref_loaded, o.ctx, DType::kF32, ctx);
  }
  const int64_t first = o.ctx / 2;
  // Sums over the scored tokens of -log p and its square (for the standard error); with a
  // reference, its -log p, each token's KL divergence and whether the top tokens agree.
  double nll = 0, nll2 = 0, ref_nll = 0;
  int64_t count = 0, same_top = 0;
  std::vector<double> klds;
  const auto t0 = std::chrono::steady_clock::now();
  struct Scored {
    double nll = 0, ref_nll = 0, kld = 0;
    bool same_top = false;
  };
  std::vector<Scored> scored;
  for (int64_t c = 0; c < chunks; ++c) {
    const std::span<const int32_t> chunk(tokens.data() + c * o.ctx, static_cast<size_t>(o.ctx));
    // The first half is context only (its last row is computed and not used).
    const ForwardBatch context = WithLora(SequenceBatch(chunk.first(static_cast<size_t>(first)), 0, false), lora.get());
    QB_RETURN_IF_ERROR(step->Step(context).status());
    if (ref) QB_RETURN_IF_ERROR(ref->Step(SequenceBatch(chunk.first(static_cast<size_t>(first)), 0, false)).status());
    // Then the rest, `batch` positions at a time: the row of position p scores token p + 1.
    for (int64_t s = first; s < o.ctx - 1; s += o.batch) {
      const int64_t e = std::min(s + o.batch, o.ctx - 1);
      const auto piece = chunk.subspan(static_cast<size_t>(s), static_cast<size_t>(e - s));
      QB_ASSIGN_OR_RETURN(Tensor logits, step->Step(WithLora(SequenceBatch(piece, s, true), lora.get())));
      Tensor ref_logits;
      if (ref) {
        QB_ASSIGN_OR_RETURN(ref_logits, ref->Step(SequenceBatch(piece, s, true)));
      }
      scored.assign(static_cast<size_t>(e - s), Scored{});
      const auto vocab = static_cast<size_t>(logits.cols());
      auto score = [&](int64_t b, int64_t end) {
        for (int64_t r = b; r < end; ++r) {
          const int32_t next = chunk[static_cast<size_t>(s + r + 1)];
          const std::span<const float> row(logits.data<float>() + r * logits.cols(), vocab);
          Scored& out = scored[static_cast<size_t>(r)];
          out.nll = -LogprobsOf(row, next, 0).logprob;
          if (ref) {
            const std::span<const float> ref_row(ref_logits.data<float>() + r * ref_logits.cols(), vocab);
            out.ref_nll = -LogprobsOf(ref_row, next, 0).logprob;
            out.kld = KlDivergence(ref_row, row);
            out.same_top = Argmax(ref_row) == Argmax(row);
          }
        }
      };
      if (pool) pool->ParallelFor(e - s, score);
      else score(0, e - s);
      for (const Scored& x : scored) {
        nll += x.nll;
        nll2 += x.nll * x.nll;
        ref_nll += x.ref_nll;
        if (ref) klds.push_back(x.kld);
        same_top += x.same_top ? 1 : 0;
      }
      count += e - s;
    }
    std::fprintf(stderr, "[%lld]%.4f%s", static_cast<long long>(c + 1), std::exp(nll / static_cast<double>(count)),
                 c + 1 == chunks ? "\n" : ",");
    std::fflush(stderr);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double mean = nll / static_cast<double>(count);
  const double ppl = std::exp(mean);
  const double var = nll2 / static_cast<double>(count) - mean * mean;
  const double err = count > 1 && var > 0 ? std::sqrt(var / static_cast<double>(count - 1)) * ppl : 0.0;
  const int64_t evaluated = chunks * (o.ctx - 1);  // (each chunk's last token is only scored)
  double kld_mean = 0;
  for (double k : klds) kld_mean += k;
  if (!klds.empty()) kld_mean /= static_cast<double>(klds.size());
  const double ref_ppl = std::exp(ref_nll / static_cast<double>(count));
  const double same = static_cast<double>(same_top) / static_cast<double>(count);
  if (o.json) {
    nlohmann::ordered_json j = {{"model", o.model},
                     {"file", o.file},
                     {"text_tokens", tokens.size()},
                     {"ctx", o.ctx},
                     {"chunks", chunks},
                     {"scored_tokens", count},
                     {"kv_dtype", o.kv_dtype},
                     {"nll", mean},
                     {"ppl", ppl},
                     {"ppl_stderr", err},
                     {"seconds", seconds},
                     {"tokens_per_s", static_cast<double>(evaluated) / seconds}};
    if (ref) {
      std::vector<double> sorted = klds;
      const double max = *std::max_element(sorted.begin(), sorted.end());
      j["reference"] = {{"model", o.kl_reference},
                        {"ppl", ref_ppl},
                        {"ppl_ratio", ppl / ref_ppl},
                        {"kld_mean", kld_mean},
                        {"kld_median", Quantile(sorted, 0.5)},
                        {"kld_p99", Quantile(sorted, 0.99)},
                        {"kld_max", max},
                        {"same_top", same}};
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("PPL = %.4f +/- %.5f (%lld chunks of %lld tokens, %lld scored; %.1f tokens/s)\n", ppl, err,
                static_cast<long long>(chunks), static_cast<long long>(o.ctx), static_cast<long long>(count),
                static_cast<double>(evaluated) / seconds);
    if (ref) {
      std::vector<double> sorted = klds;
      std::printf("reference PPL = %.4f (ratio %.4f); KL divergence mean %.6f, median %.6f, P99 %.6f, max %.6f; same top token %.2f%%\n",
                  ref_ppl, ppl / ref_ppl, kld_mean, Quantile(sorted, 0.5), Quantile(sorted, 0.99),
                  *std::max_element(klds.begin(), klds.end()), 100.0 * same);
    }
  }
  return Status::Ok();
}

}  // namespace

void AddPerplexityCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<PerplexityOptions>();
  CLI::App* cmd = app.add_subcommand(
      "perplexity", "Perplexity of a text file (as llama.cpp's llama-perplexity): compare quantizations and KV types");
  cmd->add_option("--model", o->model, "Model: a Hugging Face directory or a .gguf file (with its tokenizer)")->required();
  cmd->add_option("--file", o->file, "The text (e.g. wikitext-2's wiki.test.raw)")->required();
  cmd->add_option("--ctx", o->ctx, "Tokens per chunk; the second half of each is scored")->capture_default_str();
  cmd->add_option("--chunks", o->chunks, "Chunks to evaluate (0: every whole chunk of the text)")->capture_default_str();
  cmd->add_option("--batch", o->batch, "Positions scored per forward pass")->capture_default_str();
  cmd->add_option("--kv-dtype", o->kv_dtype, "KV cache type: f16, bf16, f32 or q8_0")->capture_default_str();
  cmd->add_option("--kl-reference", o->kl_reference,
                  "A reference model (same tokenizer; loaded without --quant, f32 KV cache): KL divergence and same top token")
      ->check(CLI::ExistingPath);
  cmd->add_option("--lora", o->lora, "A LoRA adapter (PEFT directory) applied to the model");
  cmd->add_flag("--json", o->json, "Print the result as JSON");
  o->exec.Add(cmd, "fast");
  o->exec.AddTensorParallel(cmd);
  cmd->callback([o, exit_code] {
    Status s = RunPerplexity(*o);
    *exit_code = s.ok() ? 0 : ReportError("perplexity", s);
  });
}

}  // namespace qb::cli
