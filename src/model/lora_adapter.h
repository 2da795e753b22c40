// LoRA adapters in PEFT's layout (a directory with adapter_config.json and
// adapter_model.safetensors): low-rank updates W x + s * B (A x) of some of each layer's seven
// projections, with s = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora). They stay apart
// from the base weights, so one server runs requests of several adapters (and of none) in one
// batch; model/lora_apply.h adds their updates in the forward pass.
#pragma once

#include <array>
#include <memory>
#include <string_view>
#include <string>
#include <vector>

#include "model/config.h"
#include "tensor/tensor.h"
#include "util/status.h"

namespace qb {

enum class LoraTarget { kQ, kK, kV, kO, kGate, kUp, kDown };
inline constexpr int kLoraTargets = 7;
// PEFT's module names: "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj".
std::string_view LoraTargetName(LoraTarget t);
// llama.cpp's names of the same projections in GGUF ("blk.N.attn_q.weight.lora_a").
inline constexpr std::array<std::string_view, kLoraTargets> kGgufLoraNames = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

// One projection's update s B (A x): `a` is A [r, in] in the file's type (F32, F16, BF16, or
// Q8_0 from a GGUF adapter);
// `bt` is s B transposed, f32 [r, out], so the update adds r scaled rows of it to each output
// row (a GEMM whose inner dimension is only r does not suit the dot-product kernels).
struct LoraPair {
  Tensor a, bt;
  bool defined() const { return a.defined(); }
};

struct LoraAdapter {
  std::string name;  // what requests ask for (the served name)
  std::string path;
  int64_t rank = 0;  // the largest r of its modules
  double alpha = 0;
  bool rslora = false;
  std::vector<std::array<LoraPair, kLoraTargets>> layers;  // [num_layers], by LoraTarget
  std::vector<std::string> targets;  // the module names it updates, in LoraTarget order
  int64_t parameters = 0;
  int64_t bytes = 0;  // as held

  const LoraPair& at(int64_t layer, LoraTarget t) const {
    return layers[static_cast<size_t>(layer)][static_cast<size_t>(t)];
  }
};

// A server's adapters; ForwardBatch::adapters numbers them from 1 (0: the base model).
using LoraAdapters = std::vector<std::shared_ptr<const LoraAdapter>>;

// Reads the adapter at `path` (a PEFT directory, or a GGUF adapter converted by llama.cpp's
// convert_lora_to_gguf.py: scale adapter.lora.alpha / r as llama.cpp applies it) for a model of
// `config`. Refused with a message:
// DoRA, fan_in_fan_out, trained biases, modules_to_save (a changed embedding or lm_head),
// alpha_pattern, LoRA on the embedding or lm_head, shapes that do not match the model, and
// PyTorch pickles (adapter_model.bin: convert to safetensors).
Result<LoraAdapter> LoadLoraAdapter(const std::string& path, const ModelConfig& config, std::string name);

// The input and output sizes of a projection of a model of `config`.
struct LoraShape {
  int64_t in = 0, out = 0;
};
LoraShape LoraTargetShape(const ModelConfig& config, LoraTarget t);
// The bytes an adapter of `rank` on all seven projections holds for a model of `config`, as
// LoadLoraAdapter keeps it: A in `a_type` (PEFT saves BF16 or F32), B transposed in f32.
int64_t LoraAdapterBytes(const ModelConfig& config, int64_t rank, DType a_type = DType::kBF16);

}  // namespace qb
