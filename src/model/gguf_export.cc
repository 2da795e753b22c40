#include "model/gguf_export.h"

#include <vector>

#include "model/weight_names.h"
#include "tensor/dequantize.h"
#include "tensor/interleave.h"

namespace qb {

void AddGgufModelMetadata(const ModelConfig& c, const std::string& name, uint32_t file_type, GgufWriter& w) {
  auto u32 = [](int64_t v) { return GgufU32(static_cast<uint32_t>(v)); };
  w.Add("general.architecture", GgufString("qwen2"));
  w.Add("general.name", GgufString(name));
  w.Add("general.file_type", GgufU32(file_type));
  w.Add("general.quantization_version", GgufU32(2));
  w.Add("qwen2.context_length", u32(c.max_position_embeddings));
  w.Add("qwen2.embedding_length", u32(c.hidden_size));
  w.Add("qwen2.block_count", u32(c.num_layers));
  w.Add("qwen2.feed_forward_length", u32(c.intermediate_size));
  w.Add("qwen2.attention.head_count", u32(c.num_heads));
  w.Add("qwen2.attention.head_count_kv", u32(c.num_kv_heads));
  if (c.head_dim != c.hidden_size / c.num_heads) {
    w.Add("qwen2.attention.key_length", u32(c.head_dim));
    w.Add("qwen2.attention.value_length", u32(c.head_dim));
  }
  w.Add("qwen2.rope.freq_base", GgufF32(static_cast<float>(c.rope_theta)));
  w.Add("qwen2.attention.layer_norm_rms_epsilon", GgufF32(static_cast<float>(c.rms_norm_eps)));
  if (c.rope_scaling.kind == RopeScaling::Kind::kYarn) {
    w.Add("qwen2.rope.scaling.type", GgufString("yarn"));
    w.Add("qwen2.rope.scaling.factor", GgufF32(static_cast<float>(c.rope_scaling.factor)));
    w.Add("qwen2.rope.scaling.original_context_length", u32(c.rope_scaling.original_max_position_embeddings));
  }
}

namespace {

PendingTensor Converted(std::string name, const Tensor& src, DType type, ThreadPool* pool) {
  PendingTensor t{std::move(name), type, src.shape(), {}};
  t.fill = [src, type, pool](uint8_t* dst) {
    const int64_t cols = src.cols();
    const int64_t out_row = RowBytes(type, cols);
    auto rows = [&](int64_t b, int64_t e) {
      std::vector<float> row(static_cast<size_t>(cols));
      for (int64_t r = b; r < e; ++r) {
        DequantizeMatrixRow(src.raw(), src.dtype(), cols, r, row.data());
        QuantizeRow(type, row.data(), dst + r * out_row, cols);
      }
    };
    if (pool) pool->ParallelFor(src.rows(), rows, 16);
    else rows(0, src.rows());
  };
  return t;
}

}  // namespace

Status ExportGguf(const ModelConfig& c, const Qwen2Weights& w, const QuantPlan& plan, const std::string& name,
                  const std::vector<std::pair<std::string, GgufValue>>& extra, const std::string& path,
                  ThreadPool* pool) {
  GgufWriter out;
  AddGgufModelMetadata(c, name, plan.gguf_file_type, out);
  for (const auto& [k, v] : extra) out.Add(k, v);
  auto gguf = [](WeightRole r, int64_t l = 0) { return WeightName(WeightNaming::kGguf, r, l); };
  auto matrix = [&](WeightRole r, int64_t l, const Tensor& t, DType want) {
    out.AddTensor(Converted(gguf(r, l), t, FitType(want, t.cols()), pool));
  };
  auto vec = [&](WeightRole r, int64_t l, const Tensor& t) { out.AddTensor(Converted(gguf(r, l), t, DType::kF32, nullptr)); };
  matrix(WeightRole::kTokenEmbedding, 0, w.token_embedding, c.tie_word_embeddings ? plan.output : plan.embedding);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& lw = w.layers[static_cast<size_t>(l)];
    vec(WeightRole::kAttnNorm, l, lw.attn_norm);
    matrix(WeightRole::kQ, l, lw.wq, plan.matrices);
    vec(WeightRole::kQBias, l, lw.bq);
    matrix(WeightRole::kK, l, lw.wk, plan.matrices);
    vec(WeightRole::kKBias, l, lw.bk);
    matrix(WeightRole::kV, l, lw.wv, plan.matrices);
    vec(WeightRole::kVBias, l, lw.bv);
    matrix(WeightRole::kO, l, lw.wo, plan.matrices);
    vec(WeightRole::kFfnNorm, l, lw.ffn_norm);
    matrix(WeightRole::kGate, l, lw.w_gate, plan.matrices);
    matrix(WeightRole::kUp, l, lw.w_up, plan.matrices);
    matrix(WeightRole::kDown, l, lw.w_down, plan.matrices);
  }
  vec(WeightRole::kFinalNorm, 0, w.final_norm);
  if (!c.tie_word_embeddings) matrix(WeightRole::kLmHead, 0, w.lm_head, plan.output);
  return out.Write(path);
}

}  // namespace qb
