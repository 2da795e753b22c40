#include "scheduler/scheduler.h"

#include <algorithm>

#include "util/check.h"

namespace qb {

void Scheduler::InsertWaiting(Sequence seq, bool front) {
  // Preempted sequences go before everything of their priority; new ones after it.
  auto pos = std::find_if(waiting_.begin(), waiting_.end(), [&](const Sequence& w) {
    return front ? w.priority >= seq.priority : w.priority > seq.priority;
  });
  waiting_.insert(pos, std::move(seq));
}

void Scheduler::Add(Sequence seq) {
  QB_CHECK(!seq.tokens.empty(), "sequence {} has no tokens", seq.id);
  seq.arrival = next_arrival_++;
  seq.num_computed = 0;
  seq.blocks.clear();
  seq.hashes.clear();
  InsertWaiting(std::move(seq), false);
}

Sequence* Scheduler::Find(int64_t id) {
  for (auto& s : running_)
    if (s.id == id) return &s;
  for (auto& s : waiting_)
    if (s.id == id) return &s;
  return nullptr;
}

std::vector<Sequence*> Scheduler::Decoding() {
  std::vector<Sequence*> out;
  for (auto& s : running_)
    if (s.num_computed + 1 == static_cast<int64_t>(s.tokens.size())) out.push_back(&s);
  return out;
}

void Scheduler::ReleaseBlocks(Sequence& s) {
  for (int32_t b : s.blocks) pool_->Release(b);
  s.blocks.clear();
  s.hashes.clear();
  s.num_computed = 0;
}

bool Scheduler::Abort(int64_t id) {
  for (size_t i = 0; i < running_.size(); ++i)
    if (running_[i].id == id) {
      ReleaseBlocks(running_[i]);
      running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
      return true;
    }
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
    if (it->id == id) {
      ReleaseBlocks(*it);
      waiting_.erase(it);
      return true;
    }
  return false;
}

void Scheduler::Preempt(size_t i) {
  Sequence s = std::move(running_[i]);
  s.draft.clear();
  running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
  ReleaseBlocks(s);
  ++s.preemptions;
  ++total_preemptions_;
  InsertWaiting(std::move(s), true);
}

void Scheduler::MatchPrefix(Sequence& s) {
  QB_CHECK(s.blocks.empty(), "sequence {} is matched against the prefix cache holding {} blocks", s.id, s.blocks.size());
  s.cached_tokens = 0;
  if (!config_.prefix_caching || s.logits_until > 0) return;
  const int64_t bs = config_.block_size;
  const auto n = static_cast<int64_t>(s.tokens.size());
  uint64_t parent = s.cache_salt;
  for (int64_t b = 0; (b + 1) * bs <= n - 1; ++b) {  // leave at least one token to compute
    std::span<const int32_t> toks(s.tokens.data() + b * bs, static_cast<size_t>(bs));
    const uint64_t h = HashBlock(parent, toks);
    const int32_t blk = pool_->Lookup(h, parent, toks);
    if (blk < 0) break;
    s.blocks.push_back(blk);
    s.hashes.push_back(h);
    parent = h;
  }
  s.num_computed = static_cast<int64_t>(s.blocks.size()) * bs;
  s.cached_tokens = s.num_computed;
}

StepPlan Scheduler::Schedule() {
  StepPlan plan;
  int64_t budget = config_.max_batch_tokens;
  int64_t rows = 0;  // logit rows taken
  // 1. Running sequences, oldest first.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence& s = running_[i];
    const int64_t need = static_cast<int64_t>(s.tokens.size()) - s.num_computed;
    int64_t chunk = std::min(need, budget);
    // (A row is left for each running sequence after this one.)
    if (s.logits_until > s.num_computed)
      chunk = std::min(chunk, std::max<int64_t>(1, config_.RowCap() - rows - static_cast<int64_t>(running_.size() - i - 1)));
    int64_t blocks_needed = BlocksFor(s.num_computed + chunk) - static_cast<int64_t>(s.blocks.size());
    // Free blocks by preempting the newest running sequences (not yet given a chunk).
    bool self_preempted = false;
    while (blocks_needed > pool_->num_free()) {
      const size_t victim = running_.size() - 1;
      if (victim == i) {
        plan.preempted.push_back(s.id);
        Preempt(i);
        self_preempted = true;
        break;
      }
      plan.preempted.push_back(running_[victim].id);
      Preempt(victim);
    }
    if (self_preempted) break;  // i was the last one: nothing after it
    for (; blocks_needed > 0; --blocks_needed) {
      const int32_t b = pool_->Allocate();
      QB_CHECK(b >= 0, "no block after freeing enough");
      s.blocks.push_back(b);
    }
    const bool sample = s.num_computed + chunk == static_cast<int64_t>(s.tokens.size());
    plan.chunks.push_back({s.id, s.num_computed, chunk, sample, 0});
    budget -= chunk;
    rows += RowsOf(s, s.num_computed, chunk, sample);
    ++i;
  }
  // 2. Admit waiting sequences (not in a step that had to preempt: they would thrash).
  while (plan.preempted.empty() && budget > 0 && !waiting_.empty() &&
         static_cast<int64_t>(running_.size()) < config_.max_num_seqs) {
    Sequence& s = waiting_.front();
    s.draft.clear();  // drafts are for decoding sequences
    MatchPrefix(s);
    const int64_t need = static_cast<int64_t>(s.tokens.size()) - s.num_computed;
    int64_t chunk = std::min(need, budget);
    if (s.logits_until > s.num_computed) {
      if (rows >= config_.RowCap()) {  // its rows next step
        ReleaseBlocks(s);
        break;
      }
      chunk = std::min(chunk, config_.RowCap() - rows);
    } else if (chunk == need && rows >= config_.RowCap()) {
      // (Prompt scores took the step's rows:) all of the prompt but the token that samples.
      if (need == 1) {
        ReleaseBlocks(s);  // give back the prefix blocks just taken
        break;
      }
      chunk = need - 1;
    }
    const int64_t blocks_needed = BlocksFor(s.num_computed + chunk) - static_cast<int64_t>(s.blocks.size());
    if (blocks_needed > pool_->num_free()) {
      ReleaseBlocks(s);  // give back the prefix blocks just taken
      break;
    }
    for (int64_t k = 0; k < blocks_needed; ++k) s.blocks.push_back(pool_->Allocate());
    const bool sample = s.num_computed + chunk == static_cast<int64_t>(s.tokens.size());
    plan.chunks.push_back({s.id, s.num_computed, chunk, sample});
    budget -= chunk;
    rows += RowsOf(s, s.num_computed, chunk, sample);
    running_.push_back(std::move(s));
    waiting_.pop_front();
  }
  // 3. Drafts, last: only what the step's budget, logit rows and free blocks have left.
  AddDrafts(plan, budget, rows);
  plan.num_tokens = config_.max_batch_tokens - budget;
  // A draft is for this step only: those not scheduled are dropped.
  for (Sequence& s : running_)
    if (!s.draft.empty() && std::none_of(plan.chunks.begin(), plan.chunks.end(),
                                         [&](const ScheduledChunk& c) { return c.seq_id == s.id && c.draft > 0; }))
      s.draft.clear();
  return plan;
}

void Scheduler::AddDrafts(StepPlan& plan, int64_t& budget, int64_t rows) {
  if (std::none_of(running_.begin(), running_.end(), [](const Sequence& s) { return !s.draft.empty(); })) return;
  for (ScheduledChunk& c : plan.chunks) {
    if (!c.sample || budget <= 0) continue;
    Sequence* s = Find(c.seq_id);
    if (s == nullptr || s->draft.empty()) continue;
    int64_t room = budget;
    if (config_.max_logit_rows > 0) room = std::min(room, config_.max_logit_rows - rows);
    const int64_t n = TakeDraft(*s, room);
    c.count += n;
    c.draft = n;
    budget -= n;
    rows += n;
  }
}

int64_t Scheduler::TakeDraft(Sequence& s, int64_t budget) {
  const auto end = static_cast<int64_t>(s.tokens.size());  // the draft's first position
  // Only the blocks that are free now: a draft never preempts anyone.
  const int64_t slots = (static_cast<int64_t>(s.blocks.size()) + pool_->num_free()) * config_.block_size - end;
  const int64_t n = std::clamp<int64_t>(std::min(budget, slots), 0, static_cast<int64_t>(s.draft.size()));
  s.draft.resize(static_cast<size_t>(n));
  for (int64_t b = BlocksFor(end + n) - static_cast<int64_t>(s.blocks.size()); b > 0; --b) {
    const int32_t blk = pool_->Allocate();
    QB_CHECK(blk >= 0, "no block for a draft after counting the free ones");
    s.blocks.push_back(blk);
  }
  return n;
}

void Scheduler::Publish(Sequence& s) {
  if (!config_.prefix_caching) return;
  const int64_t bs = config_.block_size;
  while ((static_cast<int64_t>(s.hashes.size()) + 1) * bs <= s.num_computed) {
    const auto b = static_cast<int64_t>(s.hashes.size());
    const uint64_t parent = b > 0 ? s.hashes.back() : s.cache_salt;
    std::span<const int32_t> toks(s.tokens.data() + b * bs, static_cast<size_t>(bs));
    const uint64_t h = HashBlock(parent, toks);
    pool_->Publish(s.blocks[static_cast<size_t>(b)], h, parent, toks);
    s.hashes.push_back(h);
  }
}

void Scheduler::Complete(const StepPlan& plan, const std::vector<int32_t>& next) {
  std::vector<std::vector<int32_t>> each;
  each.reserve(next.size());
  for (int32_t t : next) each.push_back({t});
  Complete(plan, each);
}

void Scheduler::Complete(const StepPlan& plan, const std::vector<std::vector<int32_t>>& next) {
  size_t k = 0;
  for (const ScheduledChunk& c : plan.chunks) {
    Sequence* s = Find(c.seq_id);
    if (s == nullptr) {  // aborted while the step ran
      if (c.sample) ++k;
      continue;
    }
    if (!c.sample) {
      s->num_computed = c.start + c.count;
      Publish(*s);
      continue;
    }
    QB_CHECK(k < next.size(), "Complete: {} sampled chunks' tokens for more chunks", next.size());
    const std::vector<int32_t>& add = next[k++];
    const auto accepted = static_cast<int64_t>(add.size()) - 1;
    QB_CHECK(accepted >= 0 && accepted <= c.draft, "Complete: {} tokens for a chunk with {} draft tokens", add.size(),
             c.draft);
    QB_CHECK(std::equal(add.begin(), add.end() - 1, s->draft.begin()), "Complete: accepted tokens differ from the draft");
    s->tokens.insert(s->tokens.end(), add.begin(), add.end());  // (before Publish reads them)
    s->draft.clear();
    s->num_computed = c.start + c.count - c.draft + accepted;
    Publish(*s);
    // Blocks taken for rejected draft tokens go back (the next step needs the last token's slot).
    while (static_cast<int64_t>(s->blocks.size()) > BlocksFor(static_cast<int64_t>(s->tokens.size()))) {
      pool_->Release(s->blocks.back());
      s->blocks.pop_back();
    }
  }
}

}  // namespace qb
