#include "model/tensor_parallel.h"

#include <cstring>
#include <numeric>
#include <set>

#include <fmt/format.h>

#include "model/quantize.h"
#include "util/mapped_file.h"

namespace qb {

namespace {

struct Cut {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

// Rank r's share of `total` elements split into `world` parts of whole `unit`s (the last part
// takes any remainder).
Cut Share(int64_t total, int64_t unit, int world, int r) {
  const int64_t units = total / unit;
  Cut c{units * r / world * unit, units * (r + 1) / world * unit};
  if (r == world - 1) c.end = total;
  return c;
}

// The type of down_proj in layer `l`, once converted to `convert_to` when given.
DType DownType(const LayerWeights& l, std::optional<DType> convert_to) {
  return convert_to ? FitType(*convert_to, l.w_down.cols()) : l.w_down.dtype();
}

// The unit the intermediate width is cut in: whole blocks of every layer's down type (its input
// columns), and whole 8-row groups of gate and up when the width allows (the CPU kernels'
// repacked layout).
int64_t IntermediateUnit(const ModelConfig& c, const Qwen2Weights& w, int world, std::optional<DType> convert_to) {
  int64_t block = 1;
  for (const LayerWeights& l : w.layers) block = std::lcm(block, Info(DownType(l, convert_to)).block_size);
  const int64_t grouped = std::lcm(block, int64_t{8});
  return c.intermediate_size % grouped == 0 && c.intermediate_size / grouped >= world ? grouped : block;
}

// Input columns [begin, end) of every row: a copy (rows of block-quantized types are blocks of
// inputs, so a cut must fall on a block boundary; CheckTensorParallel made sure it does).
Tensor Columns(const Tensor& t, Cut cut) {
  if (cut.begin == 0 && cut.end == t.cols()) return t;
  const DType dt = t.dtype();
  QB_CHECK(Info(dt).row_group == 1 && cut.begin % Info(dt).block_size == 0 && cut.end % Info(dt).block_size == 0,
           "column cut {}..{} of a {} matrix", cut.begin, cut.end, Name(dt));
  Tensor out = Tensor::EmptyLongLived(dt, {t.dim(0), cut.size()});
  const auto offset = static_cast<size_t>(RowBytes(dt, cut.begin));
  const auto bytes = static_cast<size_t>(RowBytes(dt, cut.size()));
  auto* dst = static_cast<uint8_t*>(out.mutable_raw());
  for (int64_t r = 0; r < t.dim(0); ++r)
    std::memcpy(dst + static_cast<size_t>(r) * bytes, static_cast<const uint8_t*>(t.row(r)) + offset, bytes);
  return out;
}

Tensor Rows(const Tensor& t, Cut cut) { return cut.begin == 0 && cut.end == t.dim(0) ? t : t.Slice(cut.begin, cut.end); }

}  // namespace

Status CheckTensorParallelShape(const ModelConfig& c, int world, std::optional<DType> o_proj_type) {
  if (world < 1) return InvalidArgument(fmt::format("tensor parallel size {}: must be at least 1", world));
  if (world == 1) return Status::Ok();
  if (c.num_kv_heads % world != 0)
    return InvalidArgument(fmt::format("tensor parallel size {}: the model's {} KV heads do not split evenly (each "
                                       "rank takes whole KV heads and their query heads)",
                                       world, c.num_kv_heads));
  const int64_t q_cols = c.q_dim() / world;
  if (o_proj_type && q_cols % Info(*o_proj_type).block_size != 0)
    return InvalidArgument(fmt::format("tensor parallel size {}: o_proj is {} (blocks of {} inputs) and does not split "
                                       "at a rank's {} heads ({} inputs); use a smaller size or another --quant",
                                       world, Name(*o_proj_type), Info(*o_proj_type).block_size, c.num_heads / world,
                                       q_cols));
  return Status::Ok();
}

Status CheckTensorParallel(const ModelConfig& c, const Qwen2Weights& w, int world, std::optional<DType> convert_to) {
  QB_RETURN_IF_ERROR(CheckTensorParallelShape(c, world, std::nullopt));
  if (world == 1) return Status::Ok();
  for (const LayerWeights& lw : w.layers) {
    QB_CHECK(!lw.wqkv.defined() && !lw.w_gate_up.defined() && Info(lw.wo.dtype()).row_group == 1,
             "ShardWeights runs before the CPU kernels' repacking");
    if (lw.wo_perm.defined() || lw.down_perm.defined())
      return InvalidArgument(fmt::format("tensor parallel size {}: GPTQ act-order (desc_act) reorders o_proj's and "
                                         "down_proj's inputs across the ranks' slices; this checkpoint cannot be split",
                                         world));
    QB_RETURN_IF_ERROR(
        CheckTensorParallelShape(c, world, convert_to ? FitType(*convert_to, lw.wo.cols()) : lw.wo.dtype()));
  }
  const int64_t unit = IntermediateUnit(c, w, world, convert_to);
  if (c.intermediate_size / unit < world)
    return InvalidArgument(fmt::format("tensor parallel size {}: the intermediate width {} has {} blocks of {} "
                                       "(down_proj's inputs), fewer than the ranks",
                                       world, c.intermediate_size, c.intermediate_size / unit, unit));
  return Status::Ok();
}

Result<std::vector<TensorParallelShard>> ShardWeights(const ModelConfig& c, Qwen2Weights w, int world) {
  QB_RETURN_IF_ERROR(CheckTensorParallel(c, w, world));
  if (world == 1) return std::vector<TensorParallelShard>{{c, std::move(w)}};
  const int64_t hd = c.head_dim;
  const int64_t kv_heads = c.num_kv_heads / world, q_heads = c.num_heads / world;
  const int64_t unit = IntermediateUnit(c, w, world, std::nullopt);
  std::vector<TensorParallelShard> shards(static_cast<size_t>(world));
  auto q = [&](int r) { return Cut{r * q_heads * hd, (r + 1) * q_heads * hd}; };
  auto kv = [&](int r) { return Cut{r * kv_heads * hd, (r + 1) * kv_heads * hd}; };
  auto inter = [&](int r) { return Share(c.intermediate_size, unit, world, r); };
  for (int r = 0; r < world; ++r) {
    TensorParallelShard& s = shards[static_cast<size_t>(r)];
    s.config = c;
    s.config.num_heads = q_heads;
    s.config.num_kv_heads = kv_heads;
    s.config.intermediate_size = inter(r).size();
    Qwen2Weights& o = s.weights;
    // The embedding is split by vocabulary like lm_head (the rank holding a token's row looks
    // it up, the others add zeros): with tied embeddings a rank's slice serves both.
    const Cut vocab = Share(c.vocab_size, 8, world, r);
    o.token_embedding = Rows(w.token_embedding, vocab);
    o.lm_head = w.lm_head.raw() == w.token_embedding.raw() ? o.token_embedding : Rows(w.lm_head, vocab);
    o.vocab_begin = vocab.begin;
    o.final_norm = w.final_norm;
  }
  // Layer by layer, each whole layer dropped once every rank has its slices: a column slice is
  // a copy, so its whole matrix is freed (converted at load) or its file pages released (mapped)
  // at once, and the memory held at a time is the model plus one layer.
  for (LayerWeights& lw : w.layers) {
    for (int r = 0; r < world; ++r) {
      LayerWeights l;
      l.attn_norm = lw.attn_norm;
      l.ffn_norm = lw.ffn_norm;
      l.wq = Rows(lw.wq, q(r));
      l.bq = Rows(lw.bq, q(r));
      l.wk = Rows(lw.wk, kv(r));
      l.bk = Rows(lw.bk, kv(r));
      l.wv = Rows(lw.wv, kv(r));
      l.bv = Rows(lw.bv, kv(r));
      l.wo = Columns(lw.wo, q(r));
      l.w_gate = Rows(lw.w_gate, inter(r));
      l.w_up = Rows(lw.w_up, inter(r));
      l.w_down = Columns(lw.w_down, inter(r));
      // Act-order permutations of the inputs that every rank reads whole (the hidden state).
      l.wq_perm = lw.wq_perm;
      l.wk_perm = lw.wk_perm;
      l.wv_perm = lw.wv_perm;
      l.gate_perm = lw.gate_perm;
      l.up_perm = lw.up_perm;
      shards[static_cast<size_t>(r)].weights.layers.push_back(std::move(l));
    }
    for (const Tensor* t : {&lw.wo, &lw.w_down})
      if (!t->writable()) ReleaseMappedRange(t->raw(), t->nbytes());
    lw = LayerWeights{};
  }
  return shards;
}

WeightsSummary SummarizeShards(const std::vector<std::shared_ptr<const Qwen2Model>>& shards) {
  WeightsSummary total;
  std::set<const void*> seen;  // the ranks share the norms
  for (const auto& shard : shards) {
    ForEachWeight(shard->weights(), [&](const Tensor& t) {
      if (!seen.insert(t.raw()).second) return;
      ++total.tensors_by_dtype[t.dtype()];
      total.parameters += t.numel();
      total.bytes += static_cast<int64_t>(t.nbytes());
    });
  }
  return total;
}

}  // namespace qb
