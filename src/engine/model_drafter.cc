#include "engine/model_drafter.h"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace qb {

namespace {

int64_t CommonPrefix(std::span<const int32_t> a, std::span<const int32_t> b) {
  const auto n = std::min(a.size(), b.size());
  return static_cast<int64_t>(std::mismatch(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(n), b.begin()).first -
                              a.begin());
}

}  // namespace

ModelDrafter::ModelDrafter(std::unique_ptr<StepModel> model, ModelDrafterConfig config)
    : model_(std::move(model)), config_(config) {
  free_.reserve(static_cast<size_t>(model_->kv_blocks()));
  for (int64_t b = model_->kv_blocks() - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

ModelDrafter::Slot* ModelDrafter::PickSlot(std::span<const int32_t> tokens, const std::vector<Slot*>& taken,
                                           int64_t* reuse) {
  // A slot is this sequence's own when everything in it but (at most) its last proposal is
  // the start of `tokens`: the tokens the engine accepted since, and a newer turn of the same
  // conversation, continue it.
  Slot* best = nullptr;
  int64_t best_prefix = -1;
  for (const auto& s : slots_) {
    if (std::find(taken.begin(), taken.end(), s.get()) != taken.end()) continue;
    const int64_t prefix = CommonPrefix(s->tokens, tokens);
    if (prefix + config_.max_draft_tokens < static_cast<int64_t>(s->tokens.size()) || prefix == 0) continue;
    if (prefix > best_prefix) best = s.get(), best_prefix = prefix;
  }
  if (!best) {
    slots_.push_back(std::make_unique<Slot>());
    best = slots_.back().get();
    best_prefix = 0;
  }
  // The last token is always computed again: its logits give the first proposal.
  *reuse = std::min(best_prefix, static_cast<int64_t>(tokens.size()) - 1);
  return best;
}

void ModelDrafter::Release(Slot* slot, int64_t keep_tokens) {
  const int64_t keep_blocks = (keep_tokens + config_.block_size - 1) / config_.block_size;
  while (static_cast<int64_t>(slot->blocks.size()) > keep_blocks) {
    free_.push_back(slot->blocks.back());
    slot->blocks.pop_back();
  }
  if (static_cast<int64_t>(slot->tokens.size()) > keep_tokens) slot->tokens.resize(static_cast<size_t>(keep_tokens));
}

bool ModelDrafter::Reserve(Slot* slot, int64_t tokens, const std::vector<Slot*>& keep) {
  const int64_t need = (tokens + config_.block_size - 1) / config_.block_size - static_cast<int64_t>(slot->blocks.size());
  auto evictable = [&](const Slot* s) {
    return s != slot && !s->blocks.empty() && std::find(keep.begin(), keep.end(), s) == keep.end();
  };
  // Evict nothing unless the eviction makes room.
  int64_t could_free = static_cast<int64_t>(free_.size());
  for (const auto& s : slots_)
    if (evictable(s.get())) could_free += static_cast<int64_t>(s->blocks.size());
  if (could_free < need) return false;
  while (static_cast<int64_t>(free_.size()) < need) {
    Slot* victim = nullptr;
    for (const auto& s : slots_)
      if (evictable(s.get()) && (!victim || s->last_used < victim->last_used)) victim = s.get();
    Release(victim, 0);
    ++stats_.evicted_slots;
  }
  for (int64_t i = 0; i < need; ++i) {
    slot->blocks.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

int64_t ModelDrafter::held_blocks() const {
  int64_t n = 0;
  for (const auto& s : slots_) n += static_cast<int64_t>(s->blocks.size());
  return n;
}

Result<std::vector<int32_t>> ModelDrafter::Run(const ForwardBatch& batch) {
  QB_ASSIGN_OR_RETURN(Tensor logits, model_->Step(batch));
  ++stats_.forward_passes;
  stats_.computed_tokens += static_cast<int64_t>(batch.tokens.size());
  std::vector<int32_t> greedy;
  greedy.reserve(batch.logit_rows.size());
  const int64_t vocab = logits.cols();
  for (size_t r = 0; r < batch.logit_rows.size(); ++r) {
    const float* row = logits.data<float>() + static_cast<int64_t>(r) * vocab;
    greedy.push_back(static_cast<int32_t>(std::max_element(row, row + vocab) - row));
  }
  return greedy;
}

std::vector<std::vector<int32_t>> ModelDrafter::Propose(std::span<const DraftQuery> queries) {
  ++clock_;
  // Slots left without blocks (a query that did not fit, a failed pass) hold nothing.
  std::erase_if(slots_, [](const std::unique_ptr<Slot>& s) { return s->blocks.empty(); });
  std::vector<std::vector<int32_t>> out(queries.size());
  struct Job {
    size_t query;
    Slot* slot;
    int64_t start;  // first position computed
    int64_t n;      // the query's tokens
  };
  std::vector<Job> jobs;
  // Every query's slot first, so that making room for one never evicts another's.
  std::vector<Slot*> taken;
  std::vector<Slot*> picked(queries.size(), nullptr);
  std::vector<int64_t> reuse(queries.size(), 0);
  for (size_t i = 0; i < queries.size(); ++i) {
    const DraftQuery& q = queries[i];
    if (q.k <= 0 || q.tokens.empty()) continue;
    const auto n = static_cast<int64_t>(q.tokens.size());
    // Beyond the draft model's context, or holding a token it has no embedding for (the model's
    // vocabulary may be padded further): no proposal.
    const int64_t vocab = model_->config().vocab_size;
    if (n + q.k - 1 > model_->config().max_position_embeddings ||
        std::any_of(q.tokens.begin(), q.tokens.end(), [vocab](int32_t t) { return t < 0 || t >= vocab; })) {
      ++stats_.unfit_queries;
      continue;
    }
    picked[i] = PickSlot(q.tokens, taken, &reuse[i]);
    taken.push_back(picked[i]);
  }
  for (size_t i = 0; i < queries.size(); ++i) {
    Slot* slot = picked[i];
    if (!slot) continue;
    const DraftQuery& q = queries[i];
    const auto n = static_cast<int64_t>(q.tokens.size());
    slot->tokens.resize(static_cast<size_t>(reuse[i]));
    slot->last_used = clock_;
    // Positions written: up to the second-to-last proposed token (the last one is not fed back).
    if (!Reserve(slot, n + q.k - 1, taken)) {
      ++stats_.unfit_queries;
      continue;
    }
    stats_.reused_tokens += reuse[i];
    jobs.push_back(Job{i, slot, reuse[i], n});
  }

  auto fail = [&](const Status& s) {
    spdlog::warn("draft model: {}; no proposals this step", s.ToString());
    for (Slot* slot : taken) Release(slot, 0);
    for (auto& o : out) o.clear();
    return out;
  };
  const int64_t bs = config_.block_size;
  auto add = [&](ForwardBatch& batch, const Job& j, int32_t token, int64_t pos) {
    batch.tokens.push_back(token);
    batch.positions.push_back(static_cast<int32_t>(pos));
    batch.slots.push_back(static_cast<int32_t>(j.slot->blocks[static_cast<size_t>(pos / bs)] * bs + pos % bs));
    batch.tables.emplace_back(j.slot->blocks);
  };

  // Catch up: one pass over the jobs' tokens from `start`, at most max_batch_tokens of them, the
  // shortest first (a continuing sequence has 1 to k + 1 new tokens; a new one its prompt). A
  // job whose tokens do not all fit keeps what was computed and proposes in a later step, so a
  // long prompt never stalls the batch for more than one pass. The logits of a job's last
  // token give its first proposal.
  std::stable_sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) { return a.n - a.start < b.n - b.start; });
  {
    ForwardBatch batch;
    std::vector<size_t> row_job;
    for (size_t ji = 0; ji < jobs.size(); ++ji) {
      Job& j = jobs[ji];
      const DraftQuery& q = queries[j.query];
      const int64_t count = std::min(j.n - j.start, config_.max_batch_tokens - static_cast<int64_t>(batch.tokens.size()));
      for (int64_t p = j.start; p < j.start + count; ++p) add(batch, j, q.tokens[static_cast<size_t>(p)], p);
      j.slot->tokens.assign(q.tokens.begin(), q.tokens.begin() + static_cast<std::ptrdiff_t>(j.start + count));
      if (j.start + count < j.n) {
        Release(j.slot, j.start + count);  // (its blocks come back when it continues)
        j.n = -1;                          // (not caught up: no proposal this step)
        continue;
      }
      batch.logit_rows.push_back(static_cast<int32_t>(batch.tokens.size() - 1));
      row_job.push_back(ji);
    }
    if (!batch.tokens.empty()) {
      auto greedy = Run(batch);
      if (!greedy.ok()) return fail(greedy.status());
      for (size_t r = 0; r < greedy->size(); ++r) out[jobs[row_job[r]].query].push_back((*greedy)[r]);
    }
  }
  std::erase_if(jobs, [](const Job& j) { return j.n < 0; });

  // Then one pass per further proposed token, over the jobs that want it.
  for (int64_t step = 1;; ++step) {
    ForwardBatch batch;
    std::vector<size_t> row_job;
    for (size_t ji = 0; ji < jobs.size(); ++ji) {
      const Job& j = jobs[ji];
      if (queries[j.query].k <= step) continue;
      const int32_t last = out[j.query].back();
      add(batch, j, last, j.n + step - 1);
      batch.logit_rows.push_back(static_cast<int32_t>(batch.tokens.size() - 1));
      row_job.push_back(ji);
      j.slot->tokens.push_back(last);
    }
    if (batch.tokens.empty()) break;
    auto greedy = Run(batch);
    if (!greedy.ok()) return fail(greedy.status());
    for (size_t r = 0; r < greedy->size(); ++r) out[jobs[row_job[r]].query].push_back((*greedy)[r]);
  }
  return out;
}

}  // namespace qb
