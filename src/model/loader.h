// Loads a model PATH: a directory in Hugging Face layout (config.json, generation_config.json,
// model.safetensors or sharded safetensors) or a .gguf file. Weights stay in the mmap'd files.
#pragma once

#include <memory>
#include <functional>
#include <string>

#include "model/config.h"
#include "model/qwen2.h"
#include "util/thread_pool.h"
#include "util/status.h"

namespace qb {

enum class CheckpointFormat { kSafetensors, kGguf };

struct LoadedModel {
  std::string path;
  CheckpointFormat format = CheckpointFormat::kSafetensors;
  GenerationConfig generation;
  std::shared_ptr<const Qwen2Model> model;
};

struct LoadOptions {
  std::string quant;           // "" = weights as stored; else q8_0, q4_0, q4_k, f16, bf16 (--quant)
  ThreadPool* pool = nullptr;  // threads for on-load quantization and repacking
  bool interleave = true;      // repack Q4_0/Q8_0/Q4_K/... matrices into the CPU kernels' 8-row layouts
  // Called as loading goes (stage, fraction of the whole load in [0, 1]); may be empty.
  std::function<void(const std::string& stage, double fraction)> progress;
};

// Reads only the configuration (cheap: no tensor data is touched).
Result<ModelConfig> LoadModelConfig(const std::string& path);
Result<LoadedModel> LoadModel(const std::string& path, const LoadOptions& options = {});

}  // namespace qb
