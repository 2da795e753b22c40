#include "model/loader.h"

#include <filesystem>

#include <fmt/format.h>

#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "model/fuse_projections.h"
#include "model/int4_checkpoint.h"
#include "model/quantize.h"
#include "model/tensor_parallel.h"
#include "model/tensor_source.h"
#include "model/weight_names.h"
#include "tensor/dequantize.h"

namespace qb {

namespace fs = std::filesystem;

namespace {

bool IsGgufPath(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec) && fs::path(path).extension() != ".safetensors";
}

// The directory of a Hugging Face checkpoint (PATH itself, or the folder of a .safetensors file).
std::string HfDir(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return fs::path(path).parent_path().string();
  return path;
}

Result<ModelConfig> ReadHfConfig(const std::string& dir) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  QB_ASSIGN_OR_RETURN(Json j, ReadJsonFile(config_path));
  return ParseHfConfig(j, config_path);
}

Status CheckSupportedQuantization(const ModelConfig& c, const std::string& dir) {
  if (!c.quantization) return Status::Ok();
  return CheckInt4Config(*c.quantization, dir + "/config.json: quantization_config");
}

Tensor ToF32(const Tensor& t) {
  if (t.dtype() == DType::kF32) return t;
  Tensor out = Tensor::Empty(DType::kF32, t.shape());
  for (int64_t r = 0; r < t.rows(); ++r)
    DequantizeRow(t.dtype(), t.row(r), out.mutable_data<float>() + r * t.cols(), t.cols());
  return out;
}

class WeightReader {
 public:
  WeightReader(const TensorSource& src, WeightNaming naming) : src_(src), naming_(naming) {}

  // A matrix or vector of the expected shape; vectors (norms, biases) are converted to f32.
  Result<Tensor> Read(WeightRole role, int64_t layer, const Shape& want) {
    const std::string name = WeightName(naming_, role, layer);
    QB_ASSIGN_OR_RETURN(Tensor t, src_.Get(name));
    if (t.shape() != want)
      return InvalidArgument(fmt::format("{}: tensor {} has shape {}, expected {}", src_.FileOf(name),
                                         name, ShapeToString(t.shape()), ShapeToString(want)));
    if (want.size() == 1) {
      if (!Info(t.dtype()).is_float)
        return InvalidArgument(fmt::format("{}: tensor {} is {}, expected a float type", src_.FileOf(name),
                                           name, Name(t.dtype())));
      return ToF32(t);
    }
    if (t.dtype() == DType::kI32 || t.dtype() == DType::kI8 || t.dtype() == DType::kU8)
      return InvalidArgument(fmt::format("{}: tensor {} is {}, not a weight type", src_.FileOf(name), name,
                                         Name(t.dtype())));
    return t;
  }

 private:
  const TensorSource& src_;
  WeightNaming naming_;
};

Result<Qwen2Weights> ReadWeights(const ModelConfig& c, const TensorSource& src, WeightNaming naming) {
  WeightReader r(src, naming);
  // GPTQ/AWQ checkpoints hold the decoder's matrices as qweight/qzeros/scales(/g_idx).
  auto matrix = [&](WeightRole role, int64_t l, const Shape& shape, Tensor* w, Tensor* perm) -> Status {
    if (!c.quantization) {
      QB_ASSIGN_OR_RETURN(*w, r.Read(role, l, shape));
      return Status::Ok();
    }
    std::string prefix = WeightName(naming, role, l);
    prefix.resize(prefix.size() - std::string(".weight").size());
    QB_ASSIGN_OR_RETURN(Int4Matrix m, ReadInt4Linear(src, *c.quantization, prefix, shape[1], shape[0]));
    *w = std::move(m.weight);
    *perm = std::move(m.perm);
    return Status::Ok();
  };
  Qwen2Weights w;
  const int64_t H = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  QB_ASSIGN_OR_RETURN(w.token_embedding, r.Read(WeightRole::kTokenEmbedding, 0, {c.vocab_size, H}));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerWeights lw;
    QB_ASSIGN_OR_RETURN(lw.attn_norm, r.Read(WeightRole::kAttnNorm, l, {H}));
    QB_RETURN_IF_ERROR(matrix(WeightRole::kQ, l, {Q, H}, &lw.wq, &lw.wq_perm));
    QB_ASSIGN_OR_RETURN(lw.bq, r.Read(WeightRole::kQBias, l, {Q}));
    QB_RETURN_IF_ERROR(matrix(WeightRole::kK, l, {KV, H}, &lw.wk, &lw.wk_perm));
    QB_ASSIGN_OR_RETURN(lw.bk, r.Read(WeightRole::kKBias, l, {KV}));
    QB_RETURN_IF_ERROR(matrix(WeightRole::kV, l, {KV, H}, &lw.wv, &lw.wv_perm));
    QB_ASSIGN_OR_RETURN(lw.bv, r.Read(WeightRole::kVBias, l, {KV}));
    QB_RETURN_IF_ERROR(matrix(WeightRole::kO, l, {H, Q}, &lw.wo, &lw.wo_perm));
    QB_ASSIGN_OR_RETURN(lw.ffn_norm, r.Read(WeightRole::kFfnNorm, l, {H}));
    QB_RETURN_IF_ERROR(matrix(WeightRole::kGate, l, {I, H}, &lw.w_gate, &lw.gate_perm));
    QB_RETURN_IF_ERROR(matrix(WeightRole::kUp, l, {I, H}, &lw.w_up, &lw.up_perm));
    QB_RETURN_IF_ERROR(matrix(WeightRole::kDown, l, {H, I}, &lw.w_down, &lw.down_perm));
    w.layers.push_back(std::move(lw));
  }
  QB_ASSIGN_OR_RETURN(w.final_norm, r.Read(WeightRole::kFinalNorm, 0, {H}));
  if (c.tie_word_embeddings) {
    w.lm_head = w.token_embedding;
  } else {
    QB_ASSIGN_OR_RETURN(w.lm_head, r.Read(WeightRole::kLmHead, 0, {c.vocab_size, H}));
  }
  return w;
}

}  // namespace

Result<ModelConfig> LoadModelConfig(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound(fmt::format("{}: no such file or directory", path));
  if (IsGgufPath(path)) {
    QB_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(path));
    return ConfigFromGguf(g);
  }
  return ReadHfConfig(HfDir(path));
}

Result<LoadedModel> LoadModel(const std::string& path, const LoadOptions& options) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound(fmt::format("{}: no such file or directory", path));
  LoadedModel out;
  out.path = path;
  ModelConfig config;
  Qwen2Weights weights;
  if (IsGgufPath(path)) {
    out.format = CheckpointFormat::kGguf;
    QB_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(path));
    auto gguf = std::make_shared<const GgufFile>(std::move(g));
    QB_ASSIGN_OR_RETURN(config, ConfigFromGguf(*gguf));
    out.generation = GenerationConfigFromGguf(*gguf);
    auto src = MakeGgufSource(gguf);
    QB_ASSIGN_OR_RETURN(weights, ReadWeights(config, *src, WeightNaming::kGguf));
  } else {
    out.format = CheckpointFormat::kSafetensors;
    const std::string dir = HfDir(path);
    QB_ASSIGN_OR_RETURN(config, ReadHfConfig(dir));
    QB_RETURN_IF_ERROR(CheckSupportedQuantization(config, dir));
    const std::string gen_path = (fs::path(dir) / "generation_config.json").string();
    if (fs::exists(gen_path, ec)) {
      QB_ASSIGN_OR_RETURN(Json gj, ReadJsonFile(gen_path));
      QB_ASSIGN_OR_RETURN(out.generation, ParseGenerationConfig(gj, gen_path));
    }
    if (out.generation.eos_token_ids.empty()) out.generation.eos_token_ids = config.eos_token_ids;
    QB_ASSIGN_OR_RETURN(SafetensorsCheckpoint ck, SafetensorsCheckpoint::Open(dir));
    auto src = MakeSafetensorsSource(std::make_shared<const SafetensorsCheckpoint>(std::move(ck)), dir);
    QB_ASSIGN_OR_RETURN(weights, ReadWeights(config, *src, WeightNaming::kHuggingFace));
  }
  auto report = [&](const std::string& stage, double f) {
    if (options.progress) options.progress(stage, f);
  };
  report("weights mapped", 0.1);
  if (!options.quant.empty()) {
    QB_ASSIGN_OR_RETURN(QuantPlan plan, FindQuantPlan(options.quant));
    if (options.tensor_parallel > 1)
      QB_RETURN_IF_ERROR(CheckTensorParallel(config, weights, options.tensor_parallel, plan.matrices));
    // Converting reads and rewrites every matrix: most of a load's time.
    QuantizeWeights(weights, config.tie_word_embeddings, plan, options.pool, [&](int64_t done, int64_t total) {
      report("converting to " + options.quant, 0.1 + 0.85 * static_cast<double>(done) / static_cast<double>(total));
    });
  }
  QB_RETURN_IF_ERROR(FinishLoading(std::move(config), std::move(weights), options, &out));
  report("weights ready", 1.0);
  return out;
}

Status FinishLoading(ModelConfig config, Qwen2Weights weights, const LoadOptions& options, LoadedModel* out) {
  if (options.tensor_parallel < 1) return InvalidArgument("tensor parallel size must be at least 1");
  out->shards.clear();
  if (options.tensor_parallel > 1) {
    QB_ASSIGN_OR_RETURN(std::vector<TensorParallelShard> shards,
                        ShardWeights(config, std::move(weights), options.tensor_parallel));
    weights = Qwen2Weights{};
    if (options.interleave) {
      // Layer by layer across the ranks: a row slice keeps its whole matrix (converted at load)
      // alive until every rank has repacked its own, so this holds one layer twice at most.
      for (size_t l = 0; l < shards[0].weights.layers.size(); ++l)
        for (TensorParallelShard& s : shards) InterleaveLayer(s.weights.layers[l], options.pool);
      for (TensorParallelShard& s : shards) {
        InterleaveWeights(s.weights, config.tie_word_embeddings, options.pool);  // lm_head (layers are done)
        FuseProjections(s.weights);
      }
    }
    for (TensorParallelShard& s : shards)
      out->shards.push_back(std::make_shared<const Qwen2Model>(std::move(s.config), std::move(s.weights)));
  } else if (options.interleave) {  // the CPU kernels' layouts
    InterleaveWeights(weights, config.tie_word_embeddings, options.pool);
    FuseProjections(weights);
  }
  out->model = std::make_shared<const Qwen2Model>(std::move(config), std::move(weights));
  return Status::Ok();
}

WeightsSummary LoadedModel::Summary() const {
  return shards.empty() ? Summarize(model->weights()) : SummarizeShards(shards);
}

const Qwen2Weights& LoadedModel::FirstWeights() const {
  return shards.empty() ? model->weights() : shards[0]->weights();
}

int64_t LoadedModel::MappedEmbeddingBytes() const {
  if (shards.empty()) return qb::MappedEmbeddingBytes(model->weights());
  int64_t bytes = 0;
  for (const auto& s : shards) bytes += qb::MappedEmbeddingBytes(s->weights());
  return bytes;
}

}  // namespace qb
