// Loads a model PATH: a directory in Hugging Face layout (config.json, generation_config.json,
// model.safetensors or sharded safetensors) or a .gguf file. Weights stay in the mmap'd files.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/qwen2.h"
#include "model/weights.h"
#include "util/thread_pool.h"
#include "util/status.h"

namespace qb {

enum class CheckpointFormat { kSafetensors, kGguf };

struct LoadedModel {
  std::string path;
  CheckpointFormat format = CheckpointFormat::kSafetensors;
  GenerationConfig generation;
  // The whole model; with tensor parallelism (LoadOptions::tensor_parallel > 1) only its config:
  // the weights are in `shards`, one model per rank (model/tensor_parallel.h), and model's are
  // empty (run the shards: MakeCpuStepModel(const LoadedModel&, ...) in model/step_model.h).
  std::shared_ptr<const Qwen2Model> model;
  std::vector<std::shared_ptr<const Qwen2Model>> shards;

  // The weights as held: the model's, or every rank's (what they share counted once).
  WeightsSummary Summary() const;
  // The weights of the model, or of rank 0 (the same types).
  const Qwen2Weights& FirstWeights() const;
  // MappedEmbeddingBytes (model/weights.h) of the model, or of every rank's embedding slice.
  int64_t MappedEmbeddingBytes() const;
};

struct LoadOptions {
  std::string quant;           // "" = weights as stored; else q8_0, q4_0, q4_k, f16, bf16 (--quant)
  ThreadPool* pool = nullptr;  // threads for on-load quantization and repacking
  bool interleave = true;      // repack Q4_0/Q8_0/Q4_K/... matrices into the CPU kernels' 8-row layouts
  int tensor_parallel = 1;     // > 1: split the weights over this many ranks (LoadedModel::shards)
  // Called as loading goes (stage, fraction of the whole load in [0, 1]); may be empty.
  std::function<void(const std::string& stage, double fraction)> progress;
};

// Reads only the configuration (cheap: no tensor data is touched).
Result<ModelConfig> LoadModelConfig(const std::string& path);
Result<LoadedModel> LoadModel(const std::string& path, const LoadOptions& options = {});
// Loading's last stage, also for weights made in memory (the demo model): splits them over
// options.tensor_parallel ranks and repacks them for the CPU kernels (options.interleave), into
// out->model (and out->shards).
Status FinishLoading(ModelConfig config, Qwen2Weights weights, const LoadOptions& options, LoadedModel* out);

}  // namespace qb
