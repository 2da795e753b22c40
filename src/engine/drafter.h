// Speculative decoding: a Drafter proposes a sequence's next tokens; the engine computes the
// proposal in one forward pass with the sequence's last token and keeps the longest prefix that
// its own sampler agrees with (docs/ENGINE.md, "Speculative decoding"), so what a request
// generates never depends on the proposals, only how many steps it takes.
// The built-in drafter needs no draft model ("prompt lookup" / n-gram speculation, as vLLM's
// ngram method and TGI's --speculate): the tokens that followed the latest earlier occurrence of
// a sequence's last n tokens. It pays off where the output repeats the prompt or itself: code
// edits, extraction, summaries, quoting, RAG.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "util/status.h"

namespace qb {

struct SpeculativeConfig {
  // The most tokens proposed per sequence and step; 0: off. Each sequence adapts: after a
  // partly accepted proposal the next is one longer than what was accepted, after a wholly
  // accepted one twice as long (up to this), after a wholly refused one it waits 1, 2, 4 .. 32
  // steps and proposes one token.
  int64_t num_tokens = 0;
  int64_t ngram_max = 4;   // the longest suffix looked up
  int64_t ngram_min = 2;   // the shortest
  int64_t max_seqs = 4;    // propose only while at most this many sequences run or wait
  bool enabled() const { return num_tokens > 0; }
};

// One sequence's request for a proposal.
struct DraftQuery {
  std::span<const int32_t> tokens;  // the prompt and what was generated
  int64_t k = 0;                    // the most tokens wanted
};

class Drafter {
 public:
  virtual ~Drafter() = default;
  // Up to queries[i].k tokens that may follow queries[i].tokens, for every i (one call a step
  // with every proposing sequence, so a draft model can batch them). Engine thread only.
  virtual std::vector<std::vector<int32_t>> Propose(std::span<const DraftQuery> queries) = 0;
};

// OK, or what is wrong with the settings (counts out of range).
Status CheckSpeculative(const SpeculativeConfig& c);

// Up to `k` tokens continuing `tokens`: for n from ngram_max down to ngram_min, the latest
// earlier occurrence of the last n tokens is found and the tokens after it are proposed (a
// match whose continuation runs into the suffix itself continues periodically, as a repeating
// loop would). Empty when no suffix of those lengths occurred before.
std::vector<int32_t> NgramDraft(std::span<const int32_t> tokens, int64_t ngram_min, int64_t ngram_max, int64_t k);

class NgramDrafter final : public Drafter {
 public:
  explicit NgramDrafter(const SpeculativeConfig& c) : min_(c.ngram_min), max_(c.ngram_max) {}
  std::vector<std::vector<int32_t>> Propose(std::span<const DraftQuery> queries) override;

 private:
  int64_t min_, max_;
};

}  // namespace qb
