// Runs a loaded model the way the reference files were made: the whole prompt in one forward
// pass, then greedy decoding one token at a time through the KV cache.
#pragma once

#include <vector>

#include "model/qwen2.h"

namespace qb::test {

// Logits of every prompt position, [n][vocab].
std::vector<std::vector<float>> AllPositionLogits(const Qwen2Model& model, const std::vector<int32_t>& ids);
std::vector<float> LastLogits(const Qwen2Model& model, const std::vector<int32_t>& ids);
std::vector<int32_t> Greedy(const Qwen2Model& model, const std::vector<int32_t>& ids, int n);

}  // namespace qb::test
