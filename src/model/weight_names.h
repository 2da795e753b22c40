// Tensor names of the Qwen2 weights in each checkpoint format.
#pragma once

#include <string>

namespace qb {

enum class WeightRole {
  kTokenEmbedding,
  kAttnNorm,
  kQ, kQBias, kK, kKBias, kV, kVBias, kO,
  kFfnNorm,
  kGate, kUp, kDown,
  kFinalNorm,
  kLmHead,
};

enum class WeightNaming { kHuggingFace, kGguf };

// `layer` is ignored for the roles outside the decoder layers.
std::string WeightName(WeightNaming naming, WeightRole role, int64_t layer = 0);

}  // namespace qb
