// Model shapes qwenbox can generate random weights for: the test fixtures' shapes (micro, tiny)
// and the published Qwen2.5 sizes.
#pragma once

#include <string>
#include <vector>

#include "model/config.h"
#include "util/status.h"

namespace qb {

struct ModelPreset {
  std::string name;
  ModelConfig config;
  GenerationConfig generation;
  bool qwen25_vocabulary;  // the real 151,665-token Qwen2.5 tokenizer applies
};

std::vector<std::string> PresetNames();
Result<ModelPreset> FindPreset(const std::string& name);

}  // namespace qb
