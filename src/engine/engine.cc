#include "engine/engine.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "grammar/token_constraint.h"
#include "tokenizer/unicode.h"

namespace qb {

namespace {
using Clock = std::chrono::steady_clock;
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// The backend's limit on logit rows per step bounds the scheduler's.
EngineConfig WithBackendLimits(EngineConfig c, const StepModel& model) {
  if (const int64_t rows = model.max_logit_rows(); rows > 0)
    c.scheduler.max_logit_rows = c.scheduler.max_logit_rows > 0 ? std::min(c.scheduler.max_logit_rows, rows) : rows;
  return c;
}
}  // namespace

struct Engine::Active {
  int64_t seq_id = 0;
  GenerationRequest request;
  std::shared_ptr<RequestStream> stream;
  Sampler sampler;
  std::unique_ptr<GrammarConstraint> constraint;  // structured output
  std::unique_ptr<StreamDecoder> decoder;
  std::vector<int32_t> min_tokens_ban;  // the ids that end it, banned for its first min_tokens tokens
  std::vector<TokenLogprobs> prompt_logprobs;  // computed so far (GenerationRequest::prompt_logprobs)
  std::string text;          // generated text so far (stop strings not yet excluded)
  size_t emitted = 0;        // bytes of `text` already sent
  size_t hold = 0;           // bytes held back: the longest stop string minus one
  int64_t generated = 0;
  int64_t cached_tokens = 0;
  Clock::time_point arrival, scheduled, first_token;
  bool was_scheduled = false;
  // Speculation: how many tokens to propose next, and steps to wait after a proposal that was
  // wholly refused (doubling while they keep being refused).
  int64_t draft_limit = 0;
  int64_t draft_skip = 0;
  int64_t draft_backoff = 1;
  void Verified(int64_t proposed, int64_t accepted, int64_t most) {
    if (proposed == 0) return;
    if (accepted == 0) {
      draft_limit = 1;
      draft_skip = draft_backoff;
      draft_backoff = std::min<int64_t>(draft_backoff * 2, 32);
      return;
    }
    draft_backoff = 1;
    // (A wholly accepted proposal may have been cut short by the step: the limit never shrinks then.)
    draft_limit = accepted == proposed ? std::max(draft_limit, std::min(2 * proposed, most)) : accepted + 1;
  }

  Active(GenerationRequest r, std::shared_ptr<RequestStream> s)
      : request(std::move(r)), stream(std::move(s)), sampler(request.sampling, request.prompt) {}
};

Engine::Engine(std::shared_ptr<const Qwen2Model> model, std::shared_ptr<const Tokenizer> tokenizer,
               EngineConfig config, kernels::ExecContext ctx)
    : Engine(MakeCpuStepModel(std::move(model), KvLayout{config.kv_blocks, config.scheduler.block_size, config.kv_dtype},
                              ctx),
             std::move(tokenizer), config, ctx) {}

Engine::Engine(std::unique_ptr<StepModel> model, std::shared_ptr<const Tokenizer> tokenizer, EngineConfig config,
               kernels::ExecContext host)
    : model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      config_(WithBackendLimits(std::move(config), *model_)),
      ctx_(host),
      pool_(static_cast<int32_t>(config_.kv_blocks)),
      scheduler_(config_.scheduler, &pool_) {
  if (config_.max_total_tokens <= 0) config_.max_total_tokens = model_->config().max_position_embeddings;
  if (config_.max_input_tokens <= 0) config_.max_input_tokens = config_.max_total_tokens - 1;
  if (config_.speculative.enabled() && !config_.drafter)
    config_.drafter = std::make_shared<NgramDrafter>(config_.speculative);
  counters_.kv_blocks_total = stats_.kv_blocks_total = config_.kv_blocks;
  thread_ = std::thread([this] { Loop(); });
}

Engine::~Engine() { Shutdown(); }

void Engine::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<std::shared_ptr<RequestStream>> Engine::Submit(GenerationRequest r) {
  const auto prompt = static_cast<int64_t>(r.prompt.size());
  if (prompt == 0) return InvalidArgument("the prompt is empty");
  for (int32_t id : r.prompt)
    if (id < 0 || id >= model_->config().vocab_size)
      return InvalidArgument(fmt::format("token id {} is outside the vocabulary", id));
  if (prompt > config_.max_input_tokens)
    return InvalidArgument(fmt::format("the prompt has {} tokens, more than the limit of {} (--max-input-tokens)",
                                       prompt, config_.max_input_tokens));
  if (r.max_tokens < 1) return InvalidArgument("max_tokens must be at least 1");
  for (const auto& [id, bias] : r.sampling.logit_bias)
    if (id < 0 || id >= model_->config().vocab_size)
      return InvalidArgument(fmt::format("logit_bias: token id {} is outside the vocabulary", id));
  if (r.prompt_logprobs < -1) return InvalidArgument("prompt_logprobs must be -1 (off) or at least 0");
  if (r.min_tokens < 0 || r.min_tokens > r.max_tokens)
    return InvalidArgument(fmt::format("min_tokens ({}) must be between 0 and max_tokens ({})", r.min_tokens, r.max_tokens));
  if (prompt + r.max_tokens > config_.max_total_tokens)
    return InvalidArgument(fmt::format(
        "the prompt ({} tokens) plus max_tokens ({}) exceeds the limit of {} tokens (--max-total-tokens)", prompt,
        r.max_tokens, config_.max_total_tokens));
  const int64_t blocks = (prompt + r.max_tokens + config_.scheduler.block_size - 1) / config_.scheduler.block_size;
  if (blocks > config_.kv_blocks)
    return ResourceExhausted(fmt::format("the request needs {} KV blocks, the cache has {}", blocks, config_.kv_blocks));
  const size_t adapters = config_.lora ? config_.lora->size() : 0;
  if (r.adapter < 0 || static_cast<size_t>(r.adapter) > adapters)
    return InvalidArgument(fmt::format("LoRA adapter {} is not loaded ({} are)", r.adapter, adapters));
  if (!r.stop.empty() && !tokenizer_) return InvalidArgument("stop strings need the model's tokenizer");
  if (r.grammar && !tokenizer_) return InvalidArgument("structured output needs the model's tokenizer");
  for (const auto& s : r.stop)
    if (s.empty()) return InvalidArgument("a stop string is empty");
  auto stream = std::make_shared<RequestStream>(r.id);
  auto a = std::make_unique<Active>(std::move(r), stream);
  a->arrival = Clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return Unimplemented("the engine is shutting down");
    // The queue is what is admitted beyond the running slots: the inbox (taken by the next
    // step, which may run it at once) counts against free slots first.
    const EngineStats st = Stats();
    if (config_.max_queue > 0 && static_cast<int64_t>(inbox_.size()) + st.waiting + st.running >=
                                     config_.scheduler.max_num_seqs + config_.max_queue)
      return ResourceExhausted("the waiting queue is full");
    inbox_.push_back(std::move(a));
  }
  wake_.notify_all();
  return stream;
}

EngineStats Engine::Stats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return stats_;
}

void Engine::Loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || !inbox_.empty() || !active_.empty(); });
      if (stop_) break;
    }
    Admit();
    Step();
    PublishStats();
  }
  // Shutdown: everything still queued or running ends as cancelled.
  Admit();
  std::vector<int64_t> ids;
  for (const auto& [id, a] : active_) ids.push_back(id);
  for (int64_t id : ids) FinishRequest(id, FinishReason::kCancelled);
  PublishStats();
}

void Engine::PublishStats() {
  counters_.running = static_cast<int64_t>(scheduler_.num_running());
  counters_.waiting = static_cast<int64_t>(scheduler_.num_waiting());
  counters_.kv_blocks_used = pool_.num_used();
  counters_.kv_blocks_total = pool_.num_blocks();
  counters_.prefix_hit_blocks = pool_.stats().prefix_hits;
  counters_.preemptions = scheduler_.total_preemptions();
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_ = counters_;
}

void Engine::Admit() {
  std::vector<std::unique_ptr<Active>> incoming;
  {
    std::lock_guard<std::mutex> lock(mu_);
    incoming.swap(inbox_);
  }
  for (auto& a : incoming) {
    a->seq_id = next_id_++;
    if (tokenizer_) a->decoder = std::make_unique<StreamDecoder>(*tokenizer_, a->request.skip_special_tokens);
    for (const auto& s : a->request.stop) a->hold = std::max(a->hold, s.size() - 1);
    if (a->request.min_tokens > 0) {
      if (!a->request.ignore_eos) a->min_tokens_ban = config_.eos_token_ids;
      a->min_tokens_ban.insert(a->min_tokens_ban.end(), a->request.stop_token_ids.begin(), a->request.stop_token_ids.end());
    }
    if (a->request.grammar) {
      if (!token_bytes_) token_bytes_ = std::make_shared<const TokenBytesIndex>(tokenizer_);
      if (!token_sets_) token_sets_ = std::make_shared<TokenSetCaches>();
      std::vector<int32_t> ends = config_.eos_token_ids;
      ends.insert(ends.end(), a->request.stop_token_ids.begin(), a->request.stop_token_ids.end());
      a->constraint = std::make_unique<GrammarConstraint>(a->request.grammar, token_bytes_, std::move(ends),
                                                          token_sets_->For(a->request.grammar));
    }
    Sequence seq;
    seq.id = a->seq_id;
    seq.priority = a->request.priority;
    seq.tokens = a->request.prompt;
    if (a->request.prompt_logprobs >= 0) seq.logits_until = static_cast<int64_t>(a->request.prompt.size()) - 1;
    // An adapter's cached blocks are its own: the prefix cache's root differs per adapter.
    if (a->request.adapter > 0) seq.cache_salt = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(a->request.adapter);
    scheduler_.Add(std::move(seq));
    active_.emplace(a->seq_id, std::move(a));
  }
  // Cancellations (a client went away, or asked).
  std::vector<int64_t> cancelled;
  for (const auto& [id, a] : active_)
    if (a->stream->cancelled()) cancelled.push_back(id);
  for (int64_t id : cancelled) FinishRequest(id, FinishReason::kCancelled);
}

void Engine::FinishRequest(int64_t id, FinishReason reason, const std::string& error) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  Active& a = *it->second;
  scheduler_.Finish(id);
  StreamEvent ev;
  ev.kind = StreamEvent::Kind::kFinished;
  ev.reason = reason;
  ev.error = error;
  // Text held back (an incomplete character, a possible stop string) is final now.
  if (reason != FinishReason::kCancelled) {
    if (a.decoder) a.text += a.decoder->Finish();
    if (a.text.size() > a.emitted) ev.text = a.text.substr(a.emitted);
  }
  ev.prompt_tokens = static_cast<int64_t>(a.request.prompt.size());
  ev.generated_tokens = a.generated;
  ev.cached_tokens = a.cached_tokens;
  const auto now = Clock::now();
  ev.timing.e2e_s = Seconds(now - a.arrival);
  if (a.was_scheduled) ev.timing.queue_s = Seconds(a.scheduled - a.arrival);
  if (a.generated > 0) {
    ev.timing.ttft_s = Seconds(a.first_token - a.arrival);
    ev.timing.prefill_s = Seconds(a.first_token - a.scheduled);
    ev.timing.decode_s = Seconds(now - a.first_token);
  }
  a.stream->Push(std::move(ev));
  active_.erase(it);
}

StreamEvent Engine::TokenEvent(Active& a, const SampleResult& s) {
  StreamEvent ev;
  ev.token = s.token;
  ev.logprob = s.logprob;
  ev.top_logprobs = s.top;
  if (a.generated == 1 && a.request.prompt_logprobs >= 0) ev.prompt_logprobs = std::move(a.prompt_logprobs);
  return ev;
}

bool Engine::Emit(Active& a, const SampleResult& s) {
  StreamEvent ev = TokenEvent(a, s);
  bool stopped = false;
  if (a.decoder) {
    const size_t before = a.text.size();
    auto piece = a.decoder->Push(s.token);
    if (piece.ok()) a.text += *piece;
    // A stop string can only end in the new text: search from where it could start (and not
    // before min_tokens tokens).
    size_t cut = std::string::npos;
    const size_t from = before > a.hold ? before - a.hold : 0;
    if (a.generated >= a.request.min_tokens)
      for (const auto& stop : a.request.stop) cut = std::min(cut, a.text.find(stop, from));
    size_t ready;
    if (cut != std::string::npos) {
      a.text.resize(cut);  // the stop string and anything after it are not output
      ready = cut;
      stopped = true;
    } else {
      // Hold back what could be the start of a stop string, cut at a character boundary.
      ready = a.text.size() > a.hold ? a.text.size() - a.hold : 0;
      while (ready > a.emitted && ready < a.text.size() && (static_cast<uint8_t>(a.text[ready]) & 0xc0) == 0x80) --ready;
    }
    if (ready > a.emitted) {
      ev.text = a.text.substr(a.emitted, ready - a.emitted);
      a.emitted = ready;
    }
  }
  a.stream->Push(std::move(ev));
  return stopped;
}

bool Engine::EndsRequest(const Active& a, int32_t token) const {
  const auto& eos = config_.eos_token_ids;
  const auto& stop_ids = a.request.stop_token_ids;
  return (!a.request.ignore_eos && std::find(eos.begin(), eos.end(), token) != eos.end()) ||
         (a.constraint && a.constraint->IsEnd(token)) ||
         std::find(stop_ids.begin(), stop_ids.end(), token) != stop_ids.end();
}

void Engine::ProposeDrafts() {
  const SpeculativeConfig& sp = config_.speculative;
  if (static_cast<int64_t>(scheduler_.num_running() + scheduler_.num_waiting()) > sp.max_seqs) return;
  const auto vocab = static_cast<int32_t>(model_->config().vocab_size);
  std::vector<Sequence*> proposing;
  std::vector<DraftQuery> queries;
  for (Sequence* s : scheduler_.Decoding()) {
    Active& a = *active_.at(s->id);
    if (a.draft_skip > 0) {
      --a.draft_skip;
      continue;
    }
    if (a.draft_limit == 0) a.draft_limit = sp.num_tokens;
    const int64_t total = static_cast<int64_t>(a.request.prompt.size()) + a.generated;
    // The accepted tokens and the one after them stay within max_tokens and max_total_tokens.
    const int64_t k = std::min({a.draft_limit, a.request.max_tokens - a.generated - 1, config_.max_total_tokens - total - 1});
    if (k <= 0) continue;
    proposing.push_back(s);
    queries.push_back(DraftQuery{s->tokens, k});
  }
  if (queries.empty()) return;
  const auto t0 = Clock::now();
  std::vector<std::vector<int32_t>> drafts = config_.drafter->Propose(queries);
  counters_.draft_s += Seconds(Clock::now() - t0);
  for (size_t i = 0; i < proposing.size() && i < drafts.size(); ++i) {
    Sequence* s = proposing[i];
    s->draft = std::move(drafts[i]);
    // (A drafter's proposal is only ever a guess: too many tokens or ids outside the vocabulary
    // are cut off rather than computed.)
    if (static_cast<int64_t>(s->draft.size()) > queries[i].k) s->draft.resize(static_cast<size_t>(queries[i].k));
    s->draft.erase(std::find_if(s->draft.begin(), s->draft.end(), [&](int32_t t) { return t < 0 || t >= vocab; }),
                   s->draft.end());
  }
}

void Engine::ScorePrompts(const std::vector<PromptRow>& rows, const Tensor& logits) {
  std::vector<TokenLogprobs> scored(rows.size());
  auto score = [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const PromptRow& r = rows[static_cast<size_t>(i)];
      const GenerationRequest& g = r.active->request;
      const float* row = logits.data<float>() + r.row * logits.cols();
      scored[static_cast<size_t>(i)] = LogprobsOf({row, static_cast<size_t>(logits.cols())},
                                                  g.prompt[static_cast<size_t>(r.position + 1)], g.prompt_logprobs, true);
    }
  };
  if (ctx_.pool != nullptr) ctx_.pool->ParallelFor(static_cast<int64_t>(rows.size()), score);
  else score(0, static_cast<int64_t>(rows.size()));
  for (size_t i = 0; i < rows.size(); ++i) rows[i].active->prompt_logprobs.push_back(std::move(scored[i]));
}

void Engine::Step() {
  if (scheduler_.num_running() == 0 && scheduler_.num_waiting() == 0) return;
  if (config_.speculative.enabled()) ProposeDrafts();
  const StepPlan plan = scheduler_.Schedule();
  if (plan.chunks.empty()) {
    // Nothing fits (cannot happen for admitted requests, which were sized against the pool).
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return;
  }
  const int64_t bs = config_.scheduler.block_size;
  ForwardBatch batch;
  batch.tokens.reserve(static_cast<size_t>(plan.num_tokens));
  const bool lora = config_.lora && !config_.lora->empty();
  if (lora) batch.lora = config_.lora.get();
  // Per sampled chunk: its sequence, its first logit row and its draft (the tokens to verify).
  std::vector<int64_t> sample_ids;
  std::vector<int64_t> first_row;
  std::vector<std::vector<int32_t>> drafts;
  std::vector<PromptRow> prompt_rows;
  const auto now = Clock::now();
  int64_t prompt_tokens = 0;
  for (const ScheduledChunk& c : plan.chunks) {
    Sequence* s = scheduler_.Find(c.seq_id);
    Active& a = *active_.at(c.seq_id);
    if (!a.was_scheduled) {
      a.was_scheduled = true;
      a.scheduled = now;
      a.cached_tokens = s->cached_tokens;
    }
    const auto known = static_cast<int64_t>(s->tokens.size());
    for (int64_t p = c.start; p < c.start + c.count; ++p) {
      batch.tokens.push_back(p < known ? s->tokens[static_cast<size_t>(p)] : s->draft[static_cast<size_t>(p - known)]);
      batch.positions.push_back(static_cast<int32_t>(p));
      batch.slots.push_back(static_cast<int32_t>(s->blocks[static_cast<size_t>(p / bs)] * bs + p % bs));
      batch.tables.emplace_back(s->blocks);
      if (lora) batch.adapters.push_back(a.request.adapter);
      if (p < static_cast<int64_t>(a.request.prompt.size())) ++prompt_tokens;
      // (After a preemption the prompt is computed again: its rows are not asked twice.)
      if (p < s->logits_until && p >= static_cast<int64_t>(a.prompt_logprobs.size())) {
        prompt_rows.push_back({&a, p, static_cast<int64_t>(batch.logit_rows.size())});
        batch.logit_rows.push_back(static_cast<int32_t>(batch.tokens.size() - 1));
      }
    }
    if (c.sample) {
      // The last known token's row, then one row per draft token.
      first_row.push_back(static_cast<int64_t>(batch.logit_rows.size()));
      for (int64_t r = c.draft; r >= 0; --r) batch.logit_rows.push_back(static_cast<int32_t>(batch.tokens.size() - 1 - r));
      sample_ids.push_back(c.seq_id);
      drafts.push_back(s->draft);
    }
  }
  const auto t0 = Clock::now();
  auto logits = model_->Step(batch);
  const auto t1 = Clock::now();
  if (!logits.ok()) {
    spdlog::error("forward pass failed: {}", logits.status().ToString());
    for (int64_t id : sample_ids) FinishRequest(id, FinishReason::kError, logits.status().message());
    return;
  }
  if (!prompt_rows.empty()) ScorePrompts(prompt_rows, *logits);
  // Sampling is independent per sequence (each has its own sampler): spread it over the pool.
  // A sequence with a draft samples row after row while its sampler picks the draft's tokens:
  // exactly the tokens, and the random draws, of sampling one step at a time.
  std::vector<std::vector<SampleResult>> samples(sample_ids.size());
  std::vector<Active*> actives(sample_ids.size());
  for (size_t i = 0; i < sample_ids.size(); ++i) actives[i] = active_.at(sample_ids[i]).get();
  auto sample_range = [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      Active& a = *actives[static_cast<size_t>(i)];
      const std::vector<int32_t>& draft = drafts[static_cast<size_t>(i)];
      for (size_t j = 0; j <= draft.size(); ++j) {
        const float* row = logits->data<float>() + (first_row[static_cast<size_t>(i)] + static_cast<int64_t>(j)) * logits->cols();
        const bool early = a.generated + static_cast<int64_t>(j) < a.request.min_tokens;
        SampleResult s = a.sampler.Sample({row, static_cast<size_t>(logits->cols())}, a.constraint.get(),
                                          early ? std::span<const int32_t>(a.min_tokens_ban) : std::span<const int32_t>());
        // (A token the grammar refuses here would be a bug; the request ends with an error rather
        // than the server.)
        if (a.constraint && s.token >= 0 && !a.constraint->Accept(s.token)) s.token = -1;
        const int32_t token = s.token;
        samples[static_cast<size_t>(i)].push_back(std::move(s));
        if (j == draft.size() || token != draft[j] || token < 0 || EndsRequest(a, token)) break;
      }
    }
  };
  if (ctx_.pool != nullptr) ctx_.pool->ParallelFor(static_cast<int64_t>(sample_ids.size()), sample_range);
  else sample_range(0, static_cast<int64_t>(sample_ids.size()));
  std::vector<std::vector<int32_t>> next(sample_ids.size());
  std::vector<std::pair<int64_t, FinishReason>> finished;
  std::vector<int64_t> no_token;
  int64_t new_tokens = 0;
  for (size_t i = 0; i < sample_ids.size(); ++i) {
    Active& a = *actives[i];
    std::vector<int32_t>& add = next[i];
    for (const SampleResult& s : samples[i]) {
      if (s.token < 0) {  // structured output: no token can continue the text
        add.push_back(0);  // (the sequence ends in this step; the token is never computed on)
        no_token.push_back(sample_ids[i]);
        break;
      }
      add.push_back(s.token);
      if (a.generated == 0) {
        a.first_token = Clock::now();
        if (Sequence* seq = scheduler_.Find(sample_ids[i])) seq->logits_until = 0;  // the prompt is scored
      }
      ++a.generated;
      if (EndsRequest(a, s.token)) {
        a.stream->Push(TokenEvent(a, s));  // the stop token itself carries no text
        finished.emplace_back(sample_ids[i], FinishReason::kStop);
        break;
      }
      if (Emit(a, s)) {
        a.decoder.reset();  // the text is final: nothing held back is sent after the stop string
        finished.emplace_back(sample_ids[i], FinishReason::kStop);
        break;
      }
      const int64_t total = static_cast<int64_t>(a.request.prompt.size()) + a.generated;
      if (a.generated >= a.request.max_tokens || total >= config_.max_total_tokens) {
        finished.emplace_back(sample_ids[i], FinishReason::kLength);
        break;
      }
    }
    new_tokens += static_cast<int64_t>(add.size());
    counters_.draft_tokens += static_cast<int64_t>(drafts[i].size());
    counters_.accepted_tokens += static_cast<int64_t>(add.size()) - 1;
    a.Verified(static_cast<int64_t>(drafts[i].size()), static_cast<int64_t>(add.size()) - 1,
               config_.speculative.num_tokens);
  }
  scheduler_.Complete(plan, next);
  for (const auto& [id, reason] : finished) FinishRequest(id, reason);
  for (int64_t id : no_token) FinishRequest(id, FinishReason::kError, "no token of the vocabulary can continue the structured output");
  const auto t2 = Clock::now();
  ++counters_.steps;
  counters_.prompt_tokens += prompt_tokens;
  counters_.generated_tokens += new_tokens;
  counters_.forward_s += Seconds(t1 - t0);
  counters_.sample_s += Seconds(t2 - t1);
}

}  // namespace qb
