// Adds LoRA adapters' updates to a forward pass's projections: each token of a batch belongs to
// one adapter or to none (ForwardBatch::adapters), and y += s B (A x) is computed for each
// adapter's tokens together (A x through kernels::Linear, then r scaled rows of B^T added to
// each output row), so a batch mixing adapters costs one pass per adapter and projection.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/exec_context.h"
#include "model/lora_adapter.h"
#include "tensor/tensor.h"

namespace qb {

// Rows an update computes at once (its scratch: LoraScratchBytes).
inline constexpr size_t kLoraChunkRows = 256;

class LoraBatch {
 public:
  LoraBatch() = default;
  // `adapters[i]`: token i's adapter, 1-based into `set` (0: none). Empty: no token has one.
  LoraBatch(std::span<const int32_t> adapters, const LoraAdapters* set);

  bool empty() const { return groups_.empty(); }
  // y[:, offset, offset + out) += s B (A x) for the tokens of each adapter that updates layer
  // `layer`'s projection `t`. x: [n, in] f32 (the projection's input), y: [n, >= offset + out].
  void Add(const kernels::ExecContext& ctx, int64_t layer, LoraTarget t, const Tensor& x, Tensor& y,
           int64_t offset = 0) const;

 private:
  struct Group {
    const LoraAdapter* adapter = nullptr;
    std::vector<int32_t> rows;  // ascending
  };
  std::vector<Group> groups_;
  int64_t tokens_ = 0;
};

// The most scratch memory one update holds for a model of `config` with adapters of rank up
// to `max_rank`: a chunk's gathered inputs and low-rank values.
int64_t LoraScratchBytes(const ModelConfig& config, int64_t max_rank);

}  // namespace qb
