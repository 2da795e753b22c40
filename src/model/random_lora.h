// Writes a random LoRA adapter in PEFT's layout (adapter_config.json + adapter_model.safetensors)
// or as llama.cpp's GGUF adapter (the same matrices), for a model of a given config: `qwenbox make-lora`, and the tests' adapters. Unlike a freshly
// initialised PEFT adapter (B = 0, no effect) both matrices are random, so the adapter changes
// the logits by about a tenth of a projection's output.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/lora_adapter.h"
#include "tensor/dtype.h"
#include "util/status.h"

namespace qb {

struct RandomLoraOptions {
  std::string out;  // the adapter's directory (made if missing), or a .gguf file (llama.cpp's form)
  int64_t rank = 8;
  double alpha = 16;
  bool rslora = false;
  std::vector<LoraTarget> targets = {LoraTarget::kQ,    LoraTarget::kK,  LoraTarget::kV,   LoraTarget::kO,
                                     LoraTarget::kGate, LoraTarget::kUp, LoraTarget::kDown};
  DType dtype = DType::kBF16;  // f32, f16 or bf16
  uint64_t seed = 0;
  std::string base_model;  // base_model_name_or_path in the config
};

Status WriteRandomLora(const ModelConfig& config, const RandomLoraOptions& options);

// "q_proj,v_proj" (or "all") -> targets; an unknown name is an error.
Result<std::vector<LoraTarget>> ParseLoraTargets(const std::string& list);

}  // namespace qb
