// Writes a random-weight Qwen2 checkpoint of a preset's shape (seeded, finite, at the scale of
// a trained model's initialisation) as a Hugging Face directory or a GGUF file.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "formats/gguf.h"
#include "model/presets.h"
#include "model/weights.h"
#include "tensor/dtype.h"
#include "util/status.h"

namespace qb {

struct RandomCheckpointOptions {
  std::string out;         // a directory (safetensors) or a .gguf file
  bool gguf = false;
  DType dtype = DType::kBF16;  // f32, f16 or bf16 for the matrices
  uint64_t seed = 0;
  // Safetensors are split into model-0000i-of-0000n.safetensors shards past this size, with a
  // model.safetensors.index.json, as Hugging Face does (0 = one file).
  uint64_t max_shard_bytes = 0;
  // Extra GGUF metadata (the tokenizer's), written after the model's own keys.
  std::vector<std::pair<std::string, GgufValue>> gguf_metadata;
};

Status WriteRandomCheckpoint(const ModelPreset& preset, const RandomCheckpointOptions& options);

// The same random weights built in memory (the server's demo model): matrices in `dtype`,
// norms and biases f32.
Qwen2Weights RandomWeightsInMemory(const ModelPreset& preset, DType dtype, uint64_t seed);

// config.json / generation_config.json text for a config (as Hugging Face writes them).
std::string HfConfigJson(const ModelConfig& c, DType dtype);
std::string HfGenerationConfigJson(const GenerationConfig& g);

}  // namespace qb
