// Rotary-embedding frequencies for a model config: plain RoPE (theta^(-2i/d)) or YaRN, as
// Qwen2.5 uses for contexts past 32K (rope_scaling type "yarn", applied statically).
#pragma once

#include "kernels/ops.h"
#include "model/config.h"

namespace qb {

kernels::RopeTable MakeRopeTable(const ModelConfig& config);

}  // namespace qb
