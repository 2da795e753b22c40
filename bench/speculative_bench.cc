// What speculative decoding buys one stream: the engine decodes a model's greedy continuation
// with proposals of k tokens of which the first m are right (an oracle drafter that knows the
// continuation from a plain run), so each step yields m + 1 tokens at the cost of computing
// k + 1. Random-weight models repeat nothing a real drafter could find; the oracle measures the
// mechanism (verification cost and engine overhead) at fixed acceptance. Also runs the n-gram
// drafter on the same requests (its acceptance on random weights is ~0: the overhead case).
// With a DRAFT model (--draft-model's ModelDrafter): its own proposals ("draft_model"; random
// weights agree with the target only by chance), and the oracle's proposals paid for with the
// draft model's compute ("oracle+draft": what a draft model that is right m of k times gives).
// Prints one JSON line per configuration with the median decode tokens/s over the repetitions.
//   speculative_bench MODEL [threads=2] [k=4] [gen=96] [reps=3] [DRAFT]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>

#include "engine/engine.h"
#include "engine/model_drafter.h"
#include "model/loader.h"
#include "util/thread_pool.h"

namespace {

using namespace qb;
using Clock = std::chrono::steady_clock;

// Proposes the known continuation's next k tokens with all but the first m changed.
class OracleDrafter final : public Drafter {
 public:
  OracleDrafter(std::map<int32_t, std::vector<int32_t>> full, int64_t right, int32_t vocab)
      : full_(std::move(full)), right_(right), vocab_(vocab) {}
  std::vector<std::vector<int32_t>> Propose(std::span<const DraftQuery> queries) override {
    std::vector<std::vector<int32_t>> out;
    for (const DraftQuery& q : queries) {
      const std::vector<int32_t>& f = full_.at(q.tokens[0]);  // prompts differ in their first token
      std::vector<int32_t>& d = out.emplace_back();
      for (int64_t j = 0; j < q.k && q.tokens.size() + static_cast<size_t>(j) < f.size(); ++j) {
        const int32_t t = f[q.tokens.size() + static_cast<size_t>(j)];
        d.push_back(j < right_ ? t : (t + 1) % vocab_);
      }
    }
    return out;
  }

 private:
  std::map<int32_t, std::vector<int32_t>> full_;
  int64_t right_;
  int32_t vocab_;
};

// The oracle's proposals, after running the draft model as a real drafter would (its proposals
// discarded): the oracle's acceptance at the draft model's cost.
class CostedOracleDrafter final : public Drafter {
 public:
  CostedOracleDrafter(std::shared_ptr<Drafter> oracle, std::shared_ptr<Drafter> draft)
      : oracle_(std::move(oracle)), draft_(std::move(draft)) {}
  std::vector<std::vector<int32_t>> Propose(std::span<const DraftQuery> queries) override {
    draft_->Propose(queries);
    return oracle_->Propose(queries);
  }

 private:
  std::shared_ptr<Drafter> oracle_, draft_;
};

struct Run {
  double decode_tok_s = 0;
  int64_t steps = 0, drafts = 0, accepted = 0;
  std::vector<int32_t> output;
};

Run Generate(std::shared_ptr<const Qwen2Model> model, const kernels::ExecContext& ctx, const std::vector<int32_t>& prompt,
             int64_t gen, SpeculativeConfig sp, std::shared_ptr<Drafter> drafter) {
  EngineConfig ec;
  ec.kv_blocks = (static_cast<int64_t>(prompt.size()) + gen + 64) / 16 + 2;
  ec.speculative = sp;
  ec.drafter = std::move(drafter);
  Engine engine(std::move(model), nullptr, ec, ctx);
  GenerationRequest r;
  r.prompt = prompt;
  r.max_tokens = gen;
  r.ignore_eos = true;
  auto stream = *engine.Submit(r);
  Run run;
  StreamEvent ev;
  Clock::time_point first, last;
  while (stream->Next(&ev) && ev.kind == StreamEvent::Kind::kToken) {
    if (run.output.empty()) first = ev.time;
    last = ev.time;
    run.output.push_back(ev.token);
  }
  engine.Shutdown();
  const EngineStats st = engine.Stats();
  run.decode_tok_s = static_cast<double>(run.output.size() - 1) / std::chrono::duration<double>(last - first).count();
  run.steps = st.steps;
  run.drafts = st.draft_tokens;
  run.accepted = st.accepted_tokens;
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: speculative_bench MODEL [threads=2] [k=4] [gen=96] [reps=3] [DRAFT]\n");
    return 2;
  }
  const int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  const int64_t k = argc > 3 ? std::atoll(argv[3]) : 4;
  const int64_t gen = argc > 4 ? std::atoll(argv[4]) : 96;
  const int reps = argc > 5 ? std::atoi(argv[5]) : 3;
  ThreadPool pool(threads);
  const kernels::ExecContext ctx{&pool, kernels::DetectIsa()};
  LoadOptions lo;
  lo.pool = &pool;
  auto loaded = LoadModel(argv[1], lo);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", loaded.status().ToString().c_str());
    return 1;
  }
  auto model = loaded->model;
  std::shared_ptr<const Qwen2Model> draft_model;
  if (argc > 6) {
    auto d = LoadModel(argv[6], lo);
    if (!d.ok()) {
      std::fprintf(stderr, "%s\n", d.status().ToString().c_str());
      return 1;
    }
    draft_model = d->model;
  }
  // A fresh draft model drafter (its own KV pool) for one request.
  auto make_draft = [&]() -> std::shared_ptr<Drafter> {
    ModelDrafterConfig dc;
    dc.max_draft_tokens = k;
    const int64_t blocks = (64 + gen + k + 15) / 16 + 1;
    return std::make_shared<ModelDrafter>(MakeCpuStepModel(draft_model, KvLayout{blocks, 16, DType::kF16}, ctx), dc);
  };
  const auto vocab = static_cast<int32_t>(model->config().vocab_size);
  std::mt19937 rng(5);
  std::vector<std::vector<int32_t>> prompts;
  std::map<int32_t, std::vector<int32_t>> full;  // prompt + greedy continuation, by first token
  for (int r = 0; r < reps; ++r) {
    std::vector<int32_t> p(64);
    for (auto& t : p) t = std::uniform_int_distribution<int32_t>(0, std::min(vocab, 151643) - 1)(rng);
    p[0] = 100 + r;
    prompts.push_back(p);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  // Plain decoding first: its outputs are what the oracle proposes.
  for (const auto& p : prompts) {
    Run run = Generate(model, ctx, p, gen, {}, nullptr);
    std::vector<int32_t> f = p;
    f.insert(f.end(), run.output.begin(), run.output.end());
    full[p[0]] = f;
  }
  SpeculativeConfig sp;
  sp.num_tokens = k;
  std::vector<int64_t> rights = {0, 1, k / 2, k};
  std::sort(rights.begin(), rights.end());
  rights.erase(std::unique(rights.begin(), rights.end()), rights.end());
  // Then every configuration on each prompt in turn (the machine's drift spreads over all).
  struct Config {
    std::string name;
    int64_t right = -1;  // -1: plain; -2: the n-gram drafter; -3: the draft model
    bool draft_cost = false;
    std::vector<double> rates;
    Run last;
  };
  std::vector<Config> configs = {{"plain", -1, false, {}, {}}};
  for (int64_t right : rights) configs.push_back({"oracle", right, false, {}, {}});
  configs.push_back({"ngram", -2, false, {}, {}});
  if (draft_model) {
    configs.push_back({"draft_model", -3, false, {}, {}});
    for (int64_t right : rights) configs.push_back({"oracle+draft", right, true, {}, {}});
  }
  for (const auto& p : prompts) {
    const std::vector<int32_t> want(full[p[0]].begin() + static_cast<std::ptrdiff_t>(p.size()), full[p[0]].end());
    for (Config& c : configs) {
      std::shared_ptr<Drafter> drafter;
      if (c.right >= 0) drafter = std::make_shared<OracleDrafter>(full, c.right, vocab);
      if (c.draft_cost) drafter = std::make_shared<CostedOracleDrafter>(drafter, make_draft());
      if (c.right == -3) drafter = make_draft();
      c.last = Generate(model, ctx, p, gen, c.right == -1 ? SpeculativeConfig{} : sp, drafter);
      if (c.last.output != want) {
        std::fprintf(stderr, "speculation changed the output (%s, k %lld, right %lld)\n", c.name.c_str(),
                     static_cast<long long>(k), static_cast<long long>(c.right));
        return 1;
      }
      c.rates.push_back(c.last.decode_tok_s);
    }
  }
  const double base = median(configs[0].rates);
  for (const Config& c : configs)
    std::printf("{\"config\": \"%s\", \"threads\": %d, \"gen\": %lld, \"k\": %lld, \"right\": %lld, "
                "\"tokens_per_step\": %.2f, \"drafted\": %lld, \"accepted\": %lld, \"decode_tok_s\": %.2f, "
                "\"speedup\": %.2f}\n",
                c.name.c_str(), threads, static_cast<long long>(gen), static_cast<long long>(c.right == -1 ? 0 : k),
                static_cast<long long>(c.right), static_cast<double>(gen) / static_cast<double>(c.last.steps - 1),
                static_cast<long long>(c.last.drafts), static_cast<long long>(c.last.accepted), median(c.rates),
                median(c.rates) / base);
  return 0;
}
