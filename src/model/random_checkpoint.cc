#include "model/random_checkpoint.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include <fmt/format.h>

#include "formats/gguf_writer.h"
#include "formats/safetensors_writer.h"
#include "model/gguf_export.h"
#include "model/weight_names.h"
#include "util/half.h"
#include "util/json.h"

namespace qb {

namespace fs = std::filesystem;

namespace {

// splitmix64 stream with Box-Muller normals: fast, seeded per tensor so each tensor's values do
// not depend on which others are written.
class NormalStream {
 public:
  explicit NormalStream(uint64_t seed) : state_(seed) {}
  double Next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = (static_cast<double>(Bits() >> 11) + 0.5) * 0x1p-53;
    const double u2 = static_cast<double>(Bits() >> 11) * 0x1p-53;
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2.0 * M_PI * u2);
    has_spare_ = true;
    return r * std::cos(2.0 * M_PI * u2);
  }

 private:
  uint64_t Bits() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t state_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

uint64_t NameSeed(uint64_t seed, const std::string& name) {
  return seed * 0x100000001b3ull ^ std::hash<std::string>{}(name);
}

// `key` (the Hugging Face name) seeds the values, so both formats get the same numbers.
PendingTensor RandomTensor(std::string name, const std::string& key, DType dtype, Shape shape,
                           double mean, double stddev, uint64_t seed) {
  PendingTensor t{std::move(name), dtype, std::move(shape), {}};
  const uint64_t s = NameSeed(seed, key);
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  t.fill = [dtype, n, mean, stddev, s](uint8_t* dst) {
    NormalStream rng(s);
    for (int64_t i = 0; i < n; ++i) {
      const auto v = static_cast<float>(mean + stddev * rng.Next());
      if (dtype == DType::kF32) {
        std::memcpy(dst + 4 * i, &v, 4);
      } else {
        const uint16_t h = dtype == DType::kF16 ? F32ToF16(v) : F32ToBF16(v);
        std::memcpy(dst + 2 * i, &h, 2);
      }
    }
  };
  return t;
}

std::vector<PendingTensor> RandomWeights(const ModelConfig& c, WeightNaming naming, DType matrix_type,
                                         DType vector_type, uint64_t seed) {
  constexpr double kStd = 0.02;  // the usual initializer_range
  std::vector<PendingTensor> out;
  auto matrix = [&](WeightRole r, int64_t l, Shape s) {
    out.push_back(RandomTensor(WeightName(naming, r, l), WeightName(WeightNaming::kHuggingFace, r, l),
                               matrix_type, std::move(s), 0.0, kStd, seed));
  };
  auto vec = [&](WeightRole r, int64_t l, int64_t n, double mean, double stddev) {
    out.push_back(RandomTensor(WeightName(naming, r, l), WeightName(WeightNaming::kHuggingFace, r, l),
                               vector_type, {n}, mean, stddev, seed));
  };
  const int64_t H = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  matrix(WeightRole::kTokenEmbedding, 0, {c.vocab_size, H});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    vec(WeightRole::kAttnNorm, l, H, 1.0, 0.05);
    matrix(WeightRole::kQ, l, {Q, H});
    vec(WeightRole::kQBias, l, Q, 0.0, kStd);
    matrix(WeightRole::kK, l, {KV, H});
    vec(WeightRole::kKBias, l, KV, 0.0, kStd);
    matrix(WeightRole::kV, l, {KV, H});
    vec(WeightRole::kVBias, l, KV, 0.0, kStd);
    matrix(WeightRole::kO, l, {H, Q});
    vec(WeightRole::kFfnNorm, l, H, 1.0, 0.05);
    matrix(WeightRole::kGate, l, {I, H});
    matrix(WeightRole::kUp, l, {I, H});
    matrix(WeightRole::kDown, l, {H, I});
  }
  vec(WeightRole::kFinalNorm, 0, H, 1.0, 0.05);
  if (!c.tie_word_embeddings) matrix(WeightRole::kLmHead, 0, {c.vocab_size, H});
  return out;
}

std::string TorchDType(DType t) {
  return t == DType::kF32 ? "float32" : t == DType::kF16 ? "float16" : "bfloat16";
}

Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f) return IoError(fmt::format("{}: cannot write", path));
  return Status::Ok();
}

}  // namespace

std::string HfConfigJson(const ModelConfig& c, DType dtype) {
  nlohmann::ordered_json j;
  j["architectures"] = {"Qwen2ForCausalLM"};
  j["attention_dropout"] = 0.0;
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else j["eos_token_id"] = c.eos_token_ids;
  j["hidden_act"] = "silu";
  j["hidden_size"] = c.hidden_size;
  j["initializer_range"] = 0.02;
  j["intermediate_size"] = c.intermediate_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["max_window_layers"] = c.max_window_layers;
  j["model_type"] = "qwen2";
  j["num_attention_heads"] = c.num_heads;
  j["num_hidden_layers"] = c.num_layers;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["sliding_window"] = c.sliding_window;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["torch_dtype"] = TorchDType(dtype);
  j["use_cache"] = true;
  j["use_sliding_window"] = false;
  j["vocab_size"] = c.vocab_size;
  return j.dump(2) + "\n";
}

std::string HfGenerationConfigJson(const GenerationConfig& g) {
  nlohmann::ordered_json j;
  if (g.bos_token_id) j["bos_token_id"] = *g.bos_token_id;
  if (g.pad_token_id) j["pad_token_id"] = *g.pad_token_id;
  j["do_sample"] = g.do_sample;
  if (g.eos_token_ids.size() == 1) j["eos_token_id"] = g.eos_token_ids[0];
  else if (!g.eos_token_ids.empty()) j["eos_token_id"] = g.eos_token_ids;
  if (g.repetition_penalty) j["repetition_penalty"] = *g.repetition_penalty;
  if (g.temperature) j["temperature"] = *g.temperature;
  if (g.top_p) j["top_p"] = *g.top_p;
  if (g.top_k) j["top_k"] = *g.top_k;
  if (g.max_new_tokens) j["max_new_tokens"] = *g.max_new_tokens;
  return j.dump(2) + "\n";
}

Status WriteRandomCheckpoint(const ModelPreset& p, const RandomCheckpointOptions& o) {
  if (o.dtype != DType::kF32 && o.dtype != DType::kF16 && o.dtype != DType::kBF16)
    return InvalidArgument(fmt::format("--dtype {} is not one of f32, f16, bf16", Name(o.dtype)));
  std::error_code ec;
  if (o.gguf) {
    if (!fs::path(o.out).parent_path().empty()) fs::create_directories(fs::path(o.out).parent_path(), ec);
    GgufWriter w;
    // llama.cpp's file types: 0 all F32, 1 mostly F16, 32 mostly BF16.
    AddGgufModelMetadata(p.config, "qwenbox random " + p.name,
                         o.dtype == DType::kF32 ? 0 : o.dtype == DType::kF16 ? 1 : 32, w);
    for (const auto& [k, v] : o.gguf_metadata) w.Add(k, v);
    // As llama.cpp does, norms and biases stay F32 in GGUF.
    for (auto& t : RandomWeights(p.config, WeightNaming::kGguf, o.dtype, DType::kF32, o.seed)) w.AddTensor(std::move(t));
    return w.Write(o.out);
  }
  fs::create_directories(o.out, ec);
  if (ec) return IoError(fmt::format("{}: cannot create directory: {}", o.out, ec.message()));
  QB_RETURN_IF_ERROR(WriteText((fs::path(o.out) / "config.json").string(), HfConfigJson(p.config, o.dtype)));
  QB_RETURN_IF_ERROR(WriteText((fs::path(o.out) / "generation_config.json").string(),
                               HfGenerationConfigJson(p.generation)));
  std::vector<std::vector<PendingTensor>> shards(1);
  uint64_t shard_bytes = 0, total = 0;
  for (auto& t : RandomWeights(p.config, WeightNaming::kHuggingFace, o.dtype, o.dtype, o.seed)) {
    if (o.max_shard_bytes > 0 && shard_bytes > 0 && shard_bytes + t.nbytes() > o.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shard_bytes += t.nbytes();
    total += t.nbytes();
    shards.back().push_back(std::move(t));
  }
  if (shards.size() == 1) {
    SafetensorsWriter w;
    w.SetMetadata("format", "pt");
    for (auto& t : shards[0]) w.AddTensor(std::move(t));
    return w.Write((fs::path(o.out) / "model.safetensors").string());
  }
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = nlohmann::ordered_json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
    SafetensorsWriter w;
    w.SetMetadata("format", "pt");
    for (auto& t : shards[i]) {
      index["weight_map"][t.name] = file;
      w.AddTensor(std::move(t));
    }
    QB_RETURN_IF_ERROR(w.Write((fs::path(o.out) / file).string()));
  }
  return WriteText((fs::path(o.out) / "model.safetensors.index.json").string(), index.dump(2) + "\n");
}

Qwen2Weights RandomWeightsInMemory(const ModelPreset& p, DType dtype, uint64_t seed) {
  std::map<std::string, Tensor> by_name;
  for (auto& t : RandomWeights(p.config, WeightNaming::kHuggingFace, dtype, DType::kF32, seed)) {
    Tensor out = Tensor::Empty(t.dtype, t.shape);
    t.fill(static_cast<uint8_t*>(out.mutable_raw()));
    by_name.emplace(t.name, std::move(out));
  }
  auto get = [&](WeightRole r, int64_t l = 0) { return by_name.at(WeightName(WeightNaming::kHuggingFace, r, l)); };
  Qwen2Weights w;
  w.token_embedding = get(WeightRole::kTokenEmbedding);
  for (int64_t l = 0; l < p.config.num_layers; ++l) {
    LayerWeights lw;
    lw.attn_norm = get(WeightRole::kAttnNorm, l);
    lw.wq = get(WeightRole::kQ, l);
    lw.bq = get(WeightRole::kQBias, l);
    lw.wk = get(WeightRole::kK, l);
    lw.bk = get(WeightRole::kKBias, l);
    lw.wv = get(WeightRole::kV, l);
    lw.bv = get(WeightRole::kVBias, l);
    lw.wo = get(WeightRole::kO, l);
    lw.ffn_norm = get(WeightRole::kFfnNorm, l);
    lw.w_gate = get(WeightRole::kGate, l);
    lw.w_up = get(WeightRole::kUp, l);
    lw.w_down = get(WeightRole::kDown, l);
    w.layers.push_back(std::move(lw));
  }
  w.final_norm = get(WeightRole::kFinalNorm);
  w.lm_head = p.config.tie_word_embeddings ? w.token_embedding : get(WeightRole::kLmHead);
  return w;
}

}  // namespace qb
