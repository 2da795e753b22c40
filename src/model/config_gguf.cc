// GGUF metadata (llama.cpp's qwen2 architecture keys) to ModelConfig.
#include <algorithm>

#include <fmt/format.h>

#include "formats/gguf.h"
#include "model/config.h"

namespace qb {

Result<ModelConfig> ConfigFromGguf(const GgufFile& g) {
  const std::string& what = g.path();
  auto arch = g.GetString("general.architecture");
  if (!arch) return InvalidArgument(what + ": no general.architecture in the metadata");
  if (*arch != "qwen2")
    return Unimplemented(fmt::format("{}: architecture \"{}\" is not supported (qwenbox runs qwen2)", what, *arch));
  const std::string p = *arch + ".";
  ModelConfig c;
  auto required = [&](const std::string& key, int64_t* out) -> Status {
    auto v = g.GetInt(key);
    if (!v) return InvalidArgument(fmt::format("{}: missing integer metadata {}", what, key));
    *out = *v;
    return Status::Ok();
  };
  QB_RETURN_IF_ERROR(required(p + "embedding_length", &c.hidden_size));
  QB_RETURN_IF_ERROR(required(p + "block_count", &c.num_layers));
  QB_RETURN_IF_ERROR(required(p + "attention.head_count", &c.num_heads));
  QB_RETURN_IF_ERROR(required(p + "feed_forward_length", &c.intermediate_size));
  c.num_kv_heads = g.GetInt(p + "attention.head_count_kv").value_or(c.num_heads);
  if (c.num_heads <= 0) return InvalidArgument(what + ": attention.head_count must be positive");
  c.head_dim = g.GetInt(p + "attention.key_length").value_or(c.hidden_size / c.num_heads);
  c.max_position_embeddings = g.GetInt(p + "context_length").value_or(32768);
  c.rope_theta = g.GetNumber(p + "rope.freq_base").value_or(10000.0);
  c.rms_norm_eps = g.GetNumber(p + "attention.layer_norm_rms_epsilon").value_or(1e-6);

  // Vocabulary: the embedding's rows (the tokenizer may list fewer tokens than padded rows).
  const GgufTensorInfo* embd = g.FindTensor("token_embd.weight");
  if (embd == nullptr) return NotFound(what + ": no tensor token_embd.weight");
  if (embd->shape.size() != 2) return InvalidArgument(what + ": token_embd.weight is not a matrix");
  c.vocab_size = embd->shape[0];
  c.tie_word_embeddings = g.FindTensor("output.weight") == nullptr;

  if (auto type = g.GetString(p + "rope.scaling.type"); type && *type != "none") {
    if (*type != "yarn")
      return Unimplemented(fmt::format("{}: rope scaling \"{}\" is not supported (only yarn)", what, *type));
    c.rope_scaling.kind = RopeScaling::Kind::kYarn;
    c.rope_scaling.factor = g.GetNumber(p + "rope.scaling.factor").value_or(1.0);
    c.rope_scaling.original_max_position_embeddings =
        g.GetInt(p + "rope.scaling.original_context_length").value_or(0);
    if (auto af = g.GetNumber(p + "rope.scaling.attn_factor")) c.rope_scaling.attention_factor = *af;
  }
  c.bos_token_id = g.GetInt("tokenizer.ggml.bos_token_id");
  if (auto eos = g.GetInt("tokenizer.ggml.eos_token_id")) c.eos_token_ids.push_back(*eos);
  c.torch_dtype = "gguf";
  Status s = c.Validate();
  if (!s.ok()) return s.WithContext(what);
  return c;
}

GenerationConfig GenerationConfigFromGguf(const GgufFile& g) {
  GenerationConfig gen;
  gen.bos_token_id = g.GetInt("tokenizer.ggml.bos_token_id");
  gen.pad_token_id = g.GetInt("tokenizer.ggml.padding_token_id");
  if (auto eos = g.GetInt("tokenizer.ggml.eos_token_id")) gen.eos_token_ids.push_back(*eos);
  if (auto eot = g.GetInt("tokenizer.ggml.eot_token_id"); eot && gen.eos_token_ids.end() ==
      std::find(gen.eos_token_ids.begin(), gen.eos_token_ids.end(), *eot))
    gen.eos_token_ids.push_back(*eot);
  return gen;
}

}  // namespace qb
