#include "common/model_runner.h"

#include <gtest/gtest.h>

#include "sampling/sampler.h"

namespace qb::test {

namespace {

// One sequence's forward pass through a contiguous cache, its tokens on `adapter` of `lora`.
Result<Tensor> Run(const Qwen2Model& model, ContiguousKvCache& cache, const std::vector<int32_t>& ids, int64_t pos,
                   bool all, const ExecContext& ctx, const LoraAdapters* lora, int32_t adapter) {
  ForwardBatch b = SequenceBatch(ids, pos, all);
  if (lora != nullptr) {
    b.lora = lora;
    b.adapters.assign(ids.size(), adapter);
  }
  return model.Forward(b, cache.storage(), ctx);
}

}  // namespace

std::vector<std::vector<float>> AllPositionLogits(const Qwen2Model& model, const std::vector<int32_t>& ids,
                                                  const ExecContext& ctx, const LoraAdapters* lora, int32_t adapter) {
  ContiguousKvCache cache(model.config(), static_cast<int64_t>(ids.size()));
  auto logits = Run(model, cache, ids, 0, true, ctx, lora, adapter);
  EXPECT_TRUE(logits.ok()) << logits.status().ToString();
  std::vector<std::vector<float>> rows;
  if (!logits.ok()) return rows;
  for (int64_t r = 0; r < logits->rows(); ++r) {
    const float* p = logits->data<float>() + r * logits->cols();
    rows.emplace_back(p, p + logits->cols());
  }
  return rows;
}

std::vector<float> LastLogits(const Qwen2Model& model, const std::vector<int32_t>& ids, const ExecContext& ctx) {
  ContiguousKvCache cache(model.config(), static_cast<int64_t>(ids.size()));
  auto logits = model.Forward(ids, 0, cache, false, ctx);
  EXPECT_TRUE(logits.ok()) << logits.status().ToString();
  if (!logits.ok()) return {};
  return {logits->data<float>(), logits->data<float>() + logits->cols()};
}

std::vector<int32_t> Greedy(const Qwen2Model& model, const std::vector<int32_t>& ids, int n, const ExecContext& ctx,
                            const LoraAdapters* lora, int32_t adapter) {
  ContiguousKvCache cache(model.config(), static_cast<int64_t>(ids.size()) + n);
  std::vector<int32_t> out, step = ids;
  int64_t pos = 0;
  for (int i = 0; i < n; ++i) {
    auto logits = Run(model, cache, step, pos, false, ctx, lora, adapter);
    EXPECT_TRUE(logits.ok()) << logits.status().ToString();
    if (!logits.ok()) break;
    pos += static_cast<int64_t>(step.size());
    out.push_back(Argmax({logits->data<float>(), static_cast<size_t>(logits->cols())}));
    step = {out.back()};
  }
  return out;
}

}  // namespace qb::test
