// LoRA adapters on the command line: `serve --lora-modules NAME=PATH ...` (adapters requests pick
// by name, as vLLM's flag) and `logits|generate --lora PATH` (one adapter for every token).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/lora_adapter.h"
#include "model/qwen2.h"
#include "util/status.h"

namespace qb::cli {

// Loads each "NAME=PATH" (a bare PATH is named after its directory; vLLM's JSON form
// {"name": ..., "path": ...} works too). Names must differ from each other and from
// `served_name` (the model's own); ranks above `max_rank` (> 0) are refused.
Result<std::shared_ptr<const LoraAdapters>> LoadLoraModules(const std::vector<std::string>& specs,
                                                           const ModelConfig& config, const std::string& served_name,
                                                           int64_t max_rank = 0);
// The adapter at `path` as a set of one (named after its directory); empty `path`: no set (null).
Result<std::shared_ptr<const LoraAdapters>> LoadOneLora(const std::string& path, const ModelConfig& config);
// `batch` with every token on the first adapter of `set` (unchanged when `set` is null).
ForwardBatch WithLora(ForwardBatch batch, const LoraAdapters* set);

}  // namespace qb::cli
