// --draft-model: speculative decoding with a small model of the same tokenizer (e.g.
// Qwen2.5-0.5B-Instruct for the 7B), for `serve` and `bench` (engine/model_drafter.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "engine/drafter.h"
#include "kernels/exec_context.h"
#include "model/loader.h"
#include "tokenizer/tokenizer.h"

namespace qb::cli {

// Proposed tokens per step with a draft model when --speculative-tokens is not given.
constexpr int64_t kDefaultDraftTokens = 4;

struct DraftModelOptions {
  std::string path;   // --draft-model
  std::string quant;  // --draft-quant
  bool enabled() const { return !path.empty(); }
  void Add(CLI::App* cmd);
};

// Loads the draft model (--draft-quant applied); with a `target` tokenizer, checks that the draft
// model's is the same (every token's bytes and the special tokens), else proposals would mean
// other text.
Result<LoadedModel> LoadDraftModel(const DraftModelOptions& o, const Tokenizer* target, ThreadPool* pool);

// The drafter running `draft` on `ctx`'s threads over a pool of `kv_blocks` blocks (sized by
// DraftModelMemory, resources/memory_plan.h).
std::shared_ptr<Drafter> MakeDraftModelDrafter(const LoadedModel& draft, int64_t kv_blocks, int64_t block_size,
                                               DType kv_dtype, int64_t num_tokens, const kernels::ExecContext& ctx);

}  // namespace qb::cli
