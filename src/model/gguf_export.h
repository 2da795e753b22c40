// Writes a model as a GGUF file with llama.cpp's qwen2 tensor names and metadata, converting
// the matrices per a quantization plan row by row as it writes (no f32 copy of the model).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "formats/gguf_writer.h"
#include "model/config.h"
#include "model/quantize.h"
#include "model/weights.h"
#include "util/status.h"
#include "util/thread_pool.h"

namespace qb {

// general.architecture, qwen2.* hyper-parameters (and YaRN keys when used).
void AddGgufModelMetadata(const ModelConfig& c, const std::string& name, uint32_t file_type, GgufWriter& w);

// `extra` (the tokenizer's metadata) is written after the model's keys.
Status ExportGguf(const ModelConfig& config, const Qwen2Weights& weights, const QuantPlan& plan,
                  const std::string& name, const std::vector<std::pair<std::string, GgufValue>>& extra,
                  const std::string& path, ThreadPool* pool = nullptr);

}  // namespace qb
