// Runs a loaded model the way the reference files were made: the whole prompt in one forward
// pass, then greedy decoding one token at a time through the KV cache.
#pragma once

#include <vector>

#include "model/qwen2.h"

namespace qb::test {

// Logits of every prompt position, [n][vocab].
// By default the reference kernels run (f32 activations, exact); pass a context for the fast ones.
using kernels::ExecContext;
// With `lora`, every token runs with its adapter number `adapter` (1-based).
std::vector<std::vector<float>> AllPositionLogits(const Qwen2Model& model, const std::vector<int32_t>& ids,
                                                  const ExecContext& ctx = ExecContext::Reference(),
                                                  const LoraAdapters* lora = nullptr, int32_t adapter = 1);
std::vector<float> LastLogits(const Qwen2Model& model, const std::vector<int32_t>& ids,
                              const ExecContext& ctx = ExecContext::Reference());
std::vector<int32_t> Greedy(const Qwen2Model& model, const std::vector<int32_t>& ids, int n,
                            const ExecContext& ctx = ExecContext::Reference(), const LoraAdapters* lora = nullptr,
                            int32_t adapter = 1);

}  // namespace qb::test
