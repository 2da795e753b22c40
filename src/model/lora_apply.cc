#include "model/lora_apply.h"

#include <algorithm>
#include <cstring>

#include "kernels/ops.h"
#include "util/check.h"

namespace qb {

namespace {

// Below this many multiply-adds an update runs on the calling thread (handing it to the pool
// would cost more than it saves): a 0.5B decode step's update of a projection is ~0.1 M, a 7B's
// ~0.4 M.
constexpr int64_t kParallelWork = int64_t{1} << 18;

}  // namespace

LoraBatch::LoraBatch(std::span<const int32_t> adapters, const LoraAdapters* set) {
  tokens_ = static_cast<int64_t>(adapters.size());
  if (set == nullptr) return;
  std::vector<int> group_of(set->size() + 1, -1);
  for (size_t i = 0; i < adapters.size(); ++i) {
    const int32_t id = adapters[i];
    QB_CHECK(id >= 0 && static_cast<size_t>(id) <= set->size(), "LoRA adapter {} of {}", id, set->size());
    if (id == 0) continue;
    int& g = group_of[static_cast<size_t>(id)];
    if (g < 0) {
      g = static_cast<int>(groups_.size());
      groups_.push_back({(*set)[static_cast<size_t>(id - 1)].get(), {}});
    }
    groups_[static_cast<size_t>(g)].rows.push_back(static_cast<int32_t>(i));
  }
}

void LoraBatch::Add(const kernels::ExecContext& ctx, int64_t layer, LoraTarget t, const Tensor& x, Tensor& y,
                    int64_t offset) const {
  for (const Group& g : groups_) {
    const LoraPair& p = g.adapter->at(layer, t);
    if (!p.defined()) continue;
    const int64_t in = x.cols(), out = p.bt.cols(), y_cols = y.cols();
    QB_CHECK(p.a.cols() == in && offset + out <= y_cols && x.rows() == tokens_ && y.rows() == tokens_,
             "LoRA {}: shapes", LoraTargetName(t));
    // kLoraChunkRows rows at a time, so the update's scratch stays small for long prefills.
    for (size_t c0 = 0; c0 < g.rows.size(); c0 += kLoraChunkRows) {
      const std::span<const int32_t> rows(g.rows.data() + c0, std::min(g.rows.size() - c0, kLoraChunkRows));
      const auto m = static_cast<int64_t>(rows.size());
      const int64_t r = p.a.rows();
      kernels::ExecContext run = ctx;
      if (m * r * (in + out) < kParallelWork) run.pool = nullptr;
      // The rows of x: a view when they are consecutive (a sequence's prefill chunk, or the whole
      // batch), else gathered.
      Tensor xs;
      if (rows.back() - rows.front() + 1 == m) {
        xs = Tensor::View(DType::kF32, {m, in}, x.data<float>() + int64_t{rows.front()} * in);
      } else {
        xs = Tensor::Uninitialized(DType::kF32, {m, in});
        for (int64_t i = 0; i < m; ++i)
          std::memcpy(xs.mutable_data<float>() + i * in, x.data<float>() + rows[static_cast<size_t>(i)] * in,
                      static_cast<size_t>(in) * sizeof(float));
      }
      Tensor low = Tensor::Uninitialized(DType::kF32, {m, r});
      kernels::Linear(run, xs, p.a, nullptr, low);
      kernels::AddLowRank(run, low, p.bt, rows, y, offset);
    }
  }
}

int64_t LoraScratchBytes(const ModelConfig& c, int64_t max_rank) {
  const auto rows = static_cast<int64_t>(kLoraChunkRows);
  const int64_t widest = std::max({c.hidden_size, c.q_dim(), c.intermediate_size});
  return rows * (widest + max_rank) * static_cast<int64_t>(sizeof(float));
}

}  // namespace qb
