#include "model/presets.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace qb {

namespace {

struct Shape6 {
  const char* name;
  int64_t hidden, layers, heads, kv_heads, intermediate, vocab;
  bool tied;
};

// Published Qwen2.5 configs (see ../shared/docs/QWEN2.md) and the fixtures' shapes.
constexpr Shape6 kShapes[] = {
    {"micro", 256, 2, 4, 2, 768, 1024, false},
    {"tiny", 64, 2, 4, 2, 192, 151936, true},
    {"qwen2.5-0.5b", 896, 24, 14, 2, 4864, 151936, true},
    {"qwen2.5-1.5b", 1536, 28, 12, 2, 8960, 151936, true},
    {"qwen2.5-3b", 2048, 36, 16, 2, 11008, 151936, true},
    {"qwen2.5-7b", 3584, 28, 28, 4, 18944, 152064, false},
    {"qwen2.5-14b", 5120, 48, 40, 8, 13824, 152064, false},
    {"qwen2.5-32b", 5120, 64, 40, 8, 27648, 152064, false},
    {"qwen2.5-72b", 8192, 80, 64, 8, 29568, 152064, false},
};

ModelPreset Make(const Shape6& s) {
  ModelPreset p;
  p.name = s.name;
  ModelConfig& c = p.config;
  c.hidden_size = s.hidden;
  c.num_layers = s.layers;
  c.num_heads = s.heads;
  c.num_kv_heads = s.kv_heads;
  c.head_dim = s.hidden / s.heads;
  c.intermediate_size = s.intermediate;
  c.vocab_size = s.vocab;
  c.tie_word_embeddings = s.tied;
  c.rope_theta = 1e6;
  c.rms_norm_eps = 1e-6;
  c.max_window_layers = s.layers;
  c.sliding_window = 32768;
  c.torch_dtype = "bfloat16";
  GenerationConfig& g = p.generation;
  if (s.vocab == 1024) {  // micro: a 1024-token subset of the BPE with <|endoftext|> = 1023
    p.qwen25_vocabulary = false;
    c.max_position_embeddings = 4096;
    c.bos_token_id = 1023;
    c.eos_token_ids = {1023};
    g.bos_token_id = 1023;
    g.pad_token_id = 1023;
    g.eos_token_ids = {1023};
    g.max_new_tokens = 256;
  } else {  // Qwen2.5-Instruct conventions
    p.qwen25_vocabulary = true;
    c.max_position_embeddings = 32768;
    c.bos_token_id = 151643;
    c.eos_token_ids = {151645};
    g.do_sample = true;
    g.temperature = 0.7;
    g.top_p = 0.8;
    g.top_k = 20;
    g.repetition_penalty = 1.05;
    g.bos_token_id = 151643;
    g.pad_token_id = 151643;
    g.eos_token_ids = {151645, 151643};
  }
  return p;
}

}  // namespace

std::vector<std::string> PresetNames() {
  std::vector<std::string> names;
  for (const auto& s : kShapes) names.emplace_back(s.name);
  return names;
}

Result<ModelPreset> FindPreset(const std::string& name) {
  for (const auto& s : kShapes)
    if (name == s.name) return Make(s);
  return InvalidArgument(fmt::format("unknown preset \"{}\" (choose from {})", name, fmt::join(PresetNames(), ", ")));
}

}  // namespace qb
