#include "model/qwen2.h"

#include <cmath>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include "model/rope.h"

namespace qb {

namespace k = kernels;

Qwen2Model::Qwen2Model(ModelConfig config, Qwen2Weights weights)
    : config_(std::move(config)), weights_(std::move(weights)), rope_(MakeRopeTable(config_)) {}

Result<Tensor> Qwen2Model::Forward(std::span<const int32_t> tokens, int64_t start_pos,
                                   ContiguousKvCache& cache, bool all_logits,
                                   const kernels::ExecContext& ctx) const {
  const ModelConfig& c = config_;
  const auto n = static_cast<int64_t>(tokens.size());
  if (n == 0) return InvalidArgument("no tokens to run");
  for (int32_t id : tokens)
    if (id < 0 || id >= c.vocab_size)
      return InvalidArgument(fmt::format("token id {} is outside the vocabulary (0..{})", id, c.vocab_size - 1));
  if (start_pos < 0 || start_pos + n > cache.capacity())
    return OutOfRange(fmt::format("positions {}..{} exceed the KV cache of {} tokens", start_pos,
                                  start_pos + n - 1, cache.capacity()));
  std::vector<int32_t> pos(static_cast<size_t>(n));
  std::iota(pos.begin(), pos.end(), static_cast<int32_t>(start_pos));

  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  Tensor x = Tensor::Empty(DType::kF32, {n, c.hidden_size});       // residual stream
  Tensor h = Tensor::Empty(DType::kF32, {n, c.hidden_size});       // normalized input
  Tensor q = Tensor::Empty(DType::kF32, {n, c.q_dim()});
  Tensor kk = Tensor::Empty(DType::kF32, {n, c.kv_dim()});
  Tensor v = Tensor::Empty(DType::kF32, {n, c.kv_dim()});
  Tensor attn = Tensor::Empty(DType::kF32, {n, c.q_dim()});
  Tensor proj = Tensor::Empty(DType::kF32, {n, c.hidden_size});    // a sublayer's output
  Tensor gate = Tensor::Empty(DType::kF32, {n, c.intermediate_size});
  Tensor up = Tensor::Empty(DType::kF32, {n, c.intermediate_size});

  k::Embedding(tokens, weights_.token_embedding, x);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& w = weights_.layers[static_cast<size_t>(l)];
    // Attention block: x += o_proj(attention(rope(q), rope(k), v)) over rmsnorm(x).
    k::RmsNorm(ctx, x, w.attn_norm, static_cast<float>(c.rms_norm_eps), h);
    k::Linear(ctx, h, w.wq, &w.bq, q, &w.wq_perm);
    k::Linear(ctx, h, w.wk, &w.bk, kk, &w.wk_perm);
    k::Linear(ctx, h, w.wv, &w.bv, v, &w.wv_perm);
    k::Rope(ctx, q, c.head_dim, pos, rope_);
    k::Rope(ctx, kk, c.head_dim, pos, rope_);
    k::ScatterRows(kk, pos, cache.keys(l));
    k::ScatterRows(v, pos, cache.values(l));
    const int64_t n_keys = start_pos + n;
    k::Attention(ctx, q, cache.keys(l).Slice(0, n_keys), cache.values(l).Slice(0, n_keys), c.head_dim, pos,
                 scale, attn);
    k::Linear(ctx, attn, w.wo, nullptr, proj, &w.wo_perm);
    k::AddInPlace(x, proj);
    // MLP block: x += down(silu(gate(m)) * up(m)), m = rmsnorm(x).
    k::RmsNorm(ctx, x, w.ffn_norm, static_cast<float>(c.rms_norm_eps), h);
    k::Linear(ctx, h, w.w_gate, nullptr, gate, &w.gate_perm);
    k::Linear(ctx, h, w.w_up, nullptr, up, &w.up_perm);
    k::SiluMul(ctx, gate, up, gate);
    k::Linear(ctx, gate, w.w_down, nullptr, proj, &w.down_perm);
    k::AddInPlace(x, proj);
  }
  Tensor last = all_logits ? x : x.Slice(n - 1, n);
  Tensor normed = Tensor::Empty(DType::kF32, last.shape());
  k::RmsNorm(ctx, last, weights_.final_norm, static_cast<float>(c.rms_norm_eps), normed);
  Tensor logits = Tensor::Empty(DType::kF32, {normed.rows(), c.vocab_size});
  k::Linear(ctx, normed, weights_.lm_head, nullptr, logits);
  return logits;
}

}  // namespace qb
