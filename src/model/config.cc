#include "model/config.h"

#include <fmt/format.h>

namespace qb {

int64_t ModelConfig::ParameterCount() const {
  const int64_t attn = hidden_size * q_dim() + q_dim() + 2 * (hidden_size * kv_dim() + kv_dim()) +
                       q_dim() * hidden_size;
  const int64_t mlp = 3 * hidden_size * intermediate_size;
  const int64_t per_layer = attn + mlp + 2 * hidden_size;
  const int64_t embed = vocab_size * hidden_size;
  return num_layers * per_layer + embed * (tie_word_embeddings ? 1 : 2) + hidden_size;
}

Status ModelConfig::Validate() const {
  auto positive = [](int64_t v, const char* name) -> Status {
    if (v <= 0) return InvalidArgument(fmt::format("{} must be positive, got {}", name, v));
    return Status::Ok();
  };
  QB_RETURN_IF_ERROR(positive(hidden_size, "hidden_size"));
  QB_RETURN_IF_ERROR(positive(num_layers, "num_hidden_layers"));
  QB_RETURN_IF_ERROR(positive(num_heads, "num_attention_heads"));
  QB_RETURN_IF_ERROR(positive(num_kv_heads, "num_key_value_heads"));
  QB_RETURN_IF_ERROR(positive(head_dim, "head_dim"));
  QB_RETURN_IF_ERROR(positive(intermediate_size, "intermediate_size"));
  QB_RETURN_IF_ERROR(positive(vocab_size, "vocab_size"));
  QB_RETURN_IF_ERROR(positive(max_position_embeddings, "max_position_embeddings"));
  if (num_heads % num_kv_heads != 0)
    return InvalidArgument(fmt::format("num_attention_heads {} is not a multiple of num_key_value_heads {}",
                                       num_heads, num_kv_heads));
  if (head_dim % 2 != 0) return InvalidArgument(fmt::format("head_dim {} must be even for RoPE", head_dim));
  if (!(rope_theta > 0)) return InvalidArgument("rope_theta must be positive");
  if (!(rms_norm_eps > 0)) return InvalidArgument("rms_norm_eps must be positive");
  if (use_sliding_window)
    return Unimplemented(
        "use_sliding_window is true: sliding-window attention is not implemented (no Qwen2.5 "
        "release uses it)");
  if (rope_scaling.kind == RopeScaling::Kind::kYarn) {
    if (!(rope_scaling.factor >= 1.0))
      return InvalidArgument(fmt::format("rope_scaling factor {} must be >= 1", rope_scaling.factor));
    if (rope_scaling.original_max_position_embeddings <= 0)
      return InvalidArgument("rope_scaling needs original_max_position_embeddings");
  }
  for (int64_t e : eos_token_ids)
    if (e < 0 || e >= vocab_size)
      return InvalidArgument(fmt::format("eos token id {} is outside the vocabulary of {}", e, vocab_size));
  return Status::Ok();
}

}  // namespace qb
