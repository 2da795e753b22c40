// GPTQ and AWQ INT4 linear layers (Hugging Face checkpoints), repacked at load into Q4Z blocks
// (an fp16 scale and a 4-bit zero per 32 inputs: exactly the checkpoint's values, no f32 copy).
// GPTQ act-order (desc_act) is handled by sorting the inputs by group and keeping the
// permutation, which Linear applies to the activations.
#pragma once

#include <string>

#include "model/config.h"
#include "model/tensor_source.h"
#include "tensor/tensor.h"
#include "util/status.h"

namespace qb {

struct Int4Matrix {
  Tensor weight;  // kQ4Z [out, in]
  Tensor perm;    // i32 [in] when the inputs were reordered, else undefined
};

// Checks that qwenbox can load this quantization_config (method, bits, format, group size).
Status CheckInt4Config(const QuantizationConfig& q, const std::string& what);

// `prefix` names the layer ("model.layers.0.self_attn.q_proj"); in/out are its features.
Result<Int4Matrix> ReadInt4Linear(const TensorSource& src, const QuantizationConfig& q, const std::string& prefix,
                                  int64_t in, int64_t out);

}  // namespace qb
