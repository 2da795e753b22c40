#include "cli/draft_model.h"

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>

#include "engine/model_drafter.h"
#include "kv/kv_storage.h"
#include "model/step_model.h"
#include "resources/memory_plan.h"

namespace qb::cli {

void DraftModelOptions::Add(CLI::App* cmd) {
  cmd->add_option("--draft-model,--speculative-model", path,
                  "Speculative decoding with this draft model (a Hugging Face directory or a .gguf file with the same "
                  "tokenizer, e.g. Qwen2.5-0.5B-Instruct for the 7B): it proposes --speculative-tokens tokens (default " +
                      std::to_string(kDefaultDraftTokens) +
                      ") per step for up to --speculative-max-seqs sequences, and the model verifies them in one pass");
  cmd->add_option("--draft-quant", quant, "Convert the draft model's weights when loading: q8_0, q4_0, q4_k, f16, bf16");
}

namespace {

// GGUF files list a token for every embedding row, padding the vocabulary to the model's size
// (Qwen2.5-0.5B: 151,936; 7B: 152,064; Hugging Face's tokenizer.json: 151,665), so the sizes may
// differ by the padding; every id both have must be the same token.
constexpr int32_t kMaxVocabPadding = 1024;

Status CheckSameTokenizer(const Tokenizer& target, const Tokenizer& draft) {
  if (std::abs(target.vocab_size() - draft.vocab_size()) > kMaxVocabPadding)
    return InvalidArgument(fmt::format("the draft model's tokenizer has {} tokens, the model's {}", draft.vocab_size(),
                                       target.vocab_size()));
  for (int32_t id = 0; id < std::min(target.vocab_size(), draft.vocab_size()); ++id) {
    const std::string* a = target.TokenBytes(id);
    const std::string* b = draft.TokenBytes(id);
    if ((a == nullptr) != (b == nullptr) || (a && *a != *b) || target.IsSpecial(id) != draft.IsSpecial(id))
      return InvalidArgument(fmt::format("the draft model's tokenizer differs from the model's at token id {}", id));
  }
  return Status::Ok();
}

}  // namespace

Result<LoadedModel> LoadDraftModel(const DraftModelOptions& o, const Tokenizer* target, ThreadPool* pool) {
  LoadOptions lo;
  lo.quant = o.quant;
  lo.pool = pool;
  auto loaded = LoadModel(o.path, lo);
  if (!loaded.ok()) return Status(loaded.status().code(), "--draft-model: " + loaded.status().message());
  if (target) {
    auto tok = LoadTokenizer(o.path);
    if (!tok.ok()) return Status(tok.status().code(), "--draft-model: " + tok.status().message());
    if (Status s = CheckSameTokenizer(*target, **tok); !s.ok())
      return InvalidArgument(fmt::format("--draft-model {}: {}", o.path, s.message()));
  }
  return loaded;
}

std::shared_ptr<Drafter> MakeDraftModelDrafter(const LoadedModel& draft, int64_t kv_blocks, int64_t block_size,
                                               DType kv_dtype, int64_t num_tokens, const kernels::ExecContext& ctx) {
  ModelDrafterConfig c;
  c.block_size = block_size;
  c.max_batch_tokens = kDraftMaxBatchTokens;
  c.max_draft_tokens = num_tokens;
  return std::make_shared<ModelDrafter>(MakeCpuStepModel(draft, KvLayout{kv_blocks, block_size, kv_dtype}, ctx),
                                        c);
}

}  // namespace qb::cli
