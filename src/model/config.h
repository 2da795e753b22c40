// The Qwen2 model configuration, read from a Hugging Face config.json or from GGUF metadata
// into the same struct, and generation defaults from generation_config.json.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/json.h"
#include "util/status.h"

namespace qb {

class GgufFile;

struct RopeScaling {
  enum class Kind { kNone, kYarn };
  Kind kind = Kind::kNone;
  double factor = 1.0;
  int64_t original_max_position_embeddings = 0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  std::optional<double> attention_factor;  // default 0.1 * ln(factor) + 1
};

// A checkpoint's quantization_config (GPTQ, AWQ, ...), kept as read.
struct QuantizationConfig {
  std::string method;  // "gptq", "awq", ...
  int64_t bits = 0;
  int64_t group_size = 0;
  bool desc_act = false;
  bool sym = true;
  bool zero_point = false;
  std::string version;  // AWQ "gemm"/"gemv", GPTQ checkpoint_format
};

struct ModelConfig {
  std::string architecture = "qwen2";
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate_size = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 32768;
  double rope_theta = 1e6;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool use_sliding_window = false;
  int64_t sliding_window = 0;
  int64_t max_window_layers = 0;
  RopeScaling rope_scaling;
  std::string torch_dtype;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
  std::optional<QuantizationConfig> quantization;

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  // Parameters of the weights (embedding and lm_head counted once when tied).
  int64_t ParameterCount() const;
  // Checks sizes are positive and consistent, and that qwenbox supports every feature used.
  Status Validate() const;
};

struct GenerationConfig {
  bool do_sample = false;
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int64_t> top_k;
  std::optional<double> repetition_penalty;
  std::optional<int64_t> max_new_tokens;
  std::optional<int64_t> bos_token_id;
  std::optional<int64_t> pad_token_id;
  std::vector<int64_t> eos_token_ids;
};

Result<ModelConfig> ParseHfConfig(const Json& json, const std::string& what);
Result<GenerationConfig> ParseGenerationConfig(const Json& json, const std::string& what);
Result<ModelConfig> ConfigFromGguf(const GgufFile& gguf);
// What a GGUF implies for generation (eos ids from the tokenizer metadata).
GenerationConfig GenerationConfigFromGguf(const GgufFile& gguf);

}  // namespace qb
