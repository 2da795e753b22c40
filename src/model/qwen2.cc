#include "model/qwen2.h"

#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include "kernels/collective.h"
#include "model/lora_apply.h"
#include "model/rope.h"

namespace qb {

namespace k = kernels;

namespace {

// A tensor-parallel rank's embedding lookup: it holds the rows of its slice of the vocabulary,
// and the sum over the ranks of each one's rows (zeros for the tokens it does not hold) is the
// lookup.
void EmbedVocabSlice(std::span<const int32_t> tokens, const Qwen2Weights& w, const kernels::ExecContext& ctx,
                     Tensor& x) {
  const int64_t hidden = x.cols(), begin = w.vocab_begin, end = begin + w.token_embedding.dim(0);
  std::vector<int32_t> local;
  std::vector<int64_t> at;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < begin || tokens[i] >= end) continue;
    local.push_back(static_cast<int32_t>(tokens[i] - begin));
    at.push_back(static_cast<int64_t>(i));
  }
  std::memset(x.mutable_raw(), 0, x.nbytes());
  if (!local.empty()) {
    Tensor rows = Tensor::Uninitialized(DType::kF32, {static_cast<int64_t>(local.size()), hidden});
    k::Embedding(local, w.token_embedding, rows);
    for (size_t j = 0; j < local.size(); ++j)
      std::memcpy(x.mutable_data<float>() + at[j] * hidden, rows.data<float>() + static_cast<int64_t>(j) * hidden,
                  static_cast<size_t>(hidden) * sizeof(float));
  }
  ctx.collective->AllReduceSum(x.mutable_data<float>(), x.numel(), ctx.pool);
}

}  // namespace

Qwen2Model::Qwen2Model(ModelConfig config, Qwen2Weights weights)
    : config_(std::move(config)), weights_(std::move(weights)), rope_(MakeRopeTable(config_)) {}

ForwardBatch SequenceBatch(std::span<const int32_t> tokens, int64_t start_pos, bool all_logits) {
  static const int32_t kOneBlock[1] = {0};
  const auto n = static_cast<int64_t>(tokens.size());
  ForwardBatch b;
  b.tokens.assign(tokens.begin(), tokens.end());
  for (int64_t i = 0; i < n; ++i) {
    b.positions.push_back(static_cast<int32_t>(start_pos + i));
    b.slots.push_back(static_cast<int32_t>(start_pos + i));
    b.tables.emplace_back(kOneBlock, 1);
  }
  if (all_logits) {
    for (int64_t i = 0; i < n; ++i) b.logit_rows.push_back(static_cast<int32_t>(i));
  } else if (n > 0) {
    b.logit_rows.push_back(static_cast<int32_t>(n - 1));
  }
  return b;
}

Result<Tensor> Qwen2Model::Forward(std::span<const int32_t> tokens, int64_t start_pos, ContiguousKvCache& cache,
                                   bool all_logits, const kernels::ExecContext& ctx) const {
  const auto n = static_cast<int64_t>(tokens.size());
  if (n == 0) return InvalidArgument("no tokens to run");
  if (start_pos < 0 || start_pos + n > cache.capacity())
    return OutOfRange(fmt::format("positions {}..{} exceed the KV cache of {} tokens", start_pos,
                                  start_pos + n - 1, cache.capacity()));
  const ForwardBatch b = SequenceBatch(tokens, start_pos, all_logits);
  return Forward(b, cache.storage(), ctx);
}

Result<Tensor> Qwen2Model::Forward(const ForwardBatch& batch, KvStorage& kv, const kernels::ExecContext& ctx) const {
  const ModelConfig& c = config_;
  const auto n = static_cast<int64_t>(batch.tokens.size());
  if (n == 0) return InvalidArgument("no tokens to run");
  if (static_cast<int64_t>(weights_.layers.size()) != c.num_layers)
    return Internal("this model holds no weights (loaded split for tensor parallelism: run its ranks)");
  QB_CHECK(batch.positions.size() == batch.tokens.size() && batch.slots.size() == batch.tokens.size() &&
               batch.tables.size() == batch.tokens.size(),
           "ForwardBatch: inconsistent sizes");
  for (int32_t id : batch.tokens)
    if (id < 0 || id >= c.vocab_size)
      return InvalidArgument(fmt::format("token id {} is outside the vocabulary (0..{})", id, c.vocab_size - 1));
  if (!batch.adapters.empty()) {
    if (batch.adapters.size() != batch.tokens.size() || batch.lora == nullptr)
      return InvalidArgument("ForwardBatch: adapters without one per token, or without the adapters");
    for (int32_t a : batch.adapters)
      if (a < 0 || static_cast<size_t>(a) > batch.lora->size())
        return InvalidArgument(fmt::format("LoRA adapter {} of {}", a, batch.lora->size()));
  }
  const LoraBatch lora(batch.adapters, batch.lora);
  if (!lora.empty() && ctx.collective != nullptr)
    return Unimplemented("LoRA adapters with tensor parallelism are not supported");
  const std::span<const int32_t> pos(batch.positions);
  const std::span<const int32_t> slots(batch.slots);
  const int64_t block_size = kv.layout().block_size;

  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  // Every buffer below is written in full before it is read: no zero-fill (the logits alone are
  // 600 KB a sequence).
  Tensor x = Tensor::Uninitialized(DType::kF32, {n, c.hidden_size});  // residual stream
  Tensor h = Tensor::Uninitialized(DType::kF32, {n, c.hidden_size});  // normalized input
  Tensor q = Tensor::Uninitialized(DType::kF32, {n, c.q_dim()});
  Tensor attn = Tensor::Uninitialized(DType::kF32, {n, c.q_dim()});
  Tensor proj = Tensor::Uninitialized(DType::kF32, {n, c.hidden_size});  // a sublayer's output
  Tensor gate = Tensor::Uninitialized(DType::kF32, {n, c.intermediate_size});
  // Made on first use: which ones a layer needs depends on its weights (joined q|k|v go straight
  // from qkv to q and the KV cache; separate k and v pass through kk and v).
  Tensor up, qkv, gate_up, kk, v;

  if (ctx.collective == nullptr)
    k::Embedding(batch.tokens, weights_.token_embedding, x);
  else
    EmbedVocabSlice(batch.tokens, weights_, ctx, x);
  const float eps = static_cast<float>(c.rms_norm_eps);
  k::RmsNorm(ctx, x, weights_.layers[0].attn_norm, eps, h);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& w = weights_.layers[static_cast<size_t>(l)];
    // Attention block: x += o_proj(attention(rope(q), rope(k), v)) over h = rmsnorm(x) (made by
    // the previous layer's last add, or above for layer 0).
    if (w.wqkv.defined()) {  // joined at load (model/fuse_projections.h): one Linear, then split
      if (!qkv.defined()) qkv = Tensor::Uninitialized(DType::kF32, {n, w.wqkv.rows()});
      k::Linear(ctx, h, w.wqkv, w.bqkv.defined() ? &w.bqkv : nullptr, qkv);
      if (!lora.empty()) {
        lora.Add(ctx, l, LoraTarget::kQ, h, qkv, 0);
        lora.Add(ctx, l, LoraTarget::kK, h, qkv, c.q_dim());
        lora.Add(ctx, l, LoraTarget::kV, h, qkv, c.q_dim() + c.kv_dim());
      }
      k::SplitRopeScatter(ctx, qkv, c.head_dim, block_size, pos, rope_, slots, q, kv.keys(l), kv.values(l));
    } else {
      if (!kk.defined()) {
        kk = Tensor::Uninitialized(DType::kF32, {n, c.kv_dim()});
        v = Tensor::Uninitialized(DType::kF32, {n, c.kv_dim()});
      }
      k::Linear(ctx, h, w.wq, &w.bq, q, &w.wq_perm);
      k::Linear(ctx, h, w.wk, &w.bk, kk, &w.wk_perm);
      k::Linear(ctx, h, w.wv, &w.bv, v, &w.wv_perm);
      if (!lora.empty()) {
        lora.Add(ctx, l, LoraTarget::kQ, h, q);
        lora.Add(ctx, l, LoraTarget::kK, h, kk);
        lora.Add(ctx, l, LoraTarget::kV, h, v);
      }
      k::Rope(ctx, q, kk, c.head_dim, pos, rope_);
      k::ScatterKv(ctx, kk, slots, kv.keys(l), c.head_dim, block_size);
      k::ScatterKv(ctx, v, slots, kv.values(l), c.head_dim, block_size);
    }
    k::Attention(ctx, q, kv.keys(l), kv.values(l), c.head_dim, block_size, pos, batch.tables, scale, attn);
    k::Linear(ctx, attn, w.wo, nullptr, proj, &w.wo_perm);
    if (!lora.empty()) lora.Add(ctx, l, LoraTarget::kO, attn, proj);
    // Tensor parallel: each rank's o_proj saw only its heads; the sum of the ranks' is the whole.
    if (ctx.collective != nullptr) ctx.collective->AllReduceSum(proj.mutable_data<float>(), proj.numel(), ctx.pool);
    // MLP block: x += down(silu(gate(m)) * up(m)), m = rmsnorm(x).
    k::AddRmsNorm(ctx, x, proj, w.ffn_norm, eps, h);
    if (w.w_gate_up.defined()) {
      if (!gate_up.defined()) gate_up = Tensor::Uninitialized(DType::kF32, {n, 2 * c.intermediate_size});
      k::Linear(ctx, h, w.w_gate_up, nullptr, gate_up);
      if (!lora.empty()) {
        lora.Add(ctx, l, LoraTarget::kGate, h, gate_up, 0);
        lora.Add(ctx, l, LoraTarget::kUp, h, gate_up, c.intermediate_size);
      }
      k::SiluMulJoined(ctx, gate_up, gate);
    } else {
      if (!up.defined()) up = Tensor::Uninitialized(DType::kF32, {n, c.intermediate_size});
      k::Linear(ctx, h, w.w_gate, nullptr, gate, &w.gate_perm);
      k::Linear(ctx, h, w.w_up, nullptr, up, &w.up_perm);
      if (!lora.empty()) {
        lora.Add(ctx, l, LoraTarget::kGate, h, gate);
        lora.Add(ctx, l, LoraTarget::kUp, h, up);
      }
      k::SiluMul(ctx, gate, up, gate);
    }
    k::Linear(ctx, gate, w.w_down, nullptr, proj, &w.down_perm);
    if (!lora.empty()) lora.Add(ctx, l, LoraTarget::kDown, gate, proj);
    if (ctx.collective != nullptr) ctx.collective->AllReduceSum(proj.mutable_data<float>(), proj.numel(), ctx.pool);
    // The residual add, with the next layer's attention norm when there is one.
    if (l + 1 < c.num_layers)
      k::AddRmsNorm(ctx, x, proj, weights_.layers[static_cast<size_t>(l + 1)].attn_norm, eps, h);
    else
      k::AddInPlace(ctx, x, proj);
  }
  // Final norm and lm_head, only for the rows that need logits.
  const auto m = static_cast<int64_t>(batch.logit_rows.size());
  Tensor last = Tensor::Uninitialized(DType::kF32, {m, c.hidden_size});
  for (int64_t i = 0; i < m; ++i) {
    const int32_t r = batch.logit_rows[static_cast<size_t>(i)];
    QB_CHECK(r >= 0 && r < n, "logit row {} of {}", r, n);
    std::memcpy(last.mutable_data<float>() + i * c.hidden_size, x.data<float>() + r * c.hidden_size,
                static_cast<size_t>(c.hidden_size) * sizeof(float));
  }
  Tensor normed = Tensor::Uninitialized(DType::kF32, last.shape());
  k::RmsNorm(ctx, last, weights_.final_norm, eps, normed);
  if (ctx.collective == nullptr) {
    Tensor logits = Tensor::Uninitialized(DType::kF32, {m, c.vocab_size});
    k::Linear(ctx, normed, weights_.lm_head, nullptr, logits);
    return logits;
  }
  // Tensor parallel: each rank holds a slice of the vocabulary's rows; rank 0 joins the logits
  // (the other ranks return an empty tensor).
  Tensor part = Tensor::Uninitialized(DType::kF32, {m, weights_.lm_head.dim(0)});
  k::Linear(ctx, normed, weights_.lm_head, nullptr, part);
  const bool receives = ctx.collective->rank() == 0;
  Tensor logits = receives ? Tensor::Uninitialized(DType::kF32, {m, c.vocab_size}) : Tensor();
  ctx.collective->GatherColumns(part.data<float>(), m, part.cols(), receives ? logits.mutable_data<float>() : nullptr);
  return logits;
}

}  // namespace qb
