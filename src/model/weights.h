// The Qwen2 weights as the forward pass uses them. Matrices are [out_features, in_features] in
// any DType (views into the checkpoint's mapping); norms and biases are f32.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace qb {

struct LayerWeights {
  Tensor attn_norm;  // [hidden]
  Tensor wq, bq;     // [q_dim, hidden], [q_dim]
  Tensor wk, bk;     // [kv_dim, hidden], [kv_dim]
  Tensor wv, bv;     // [kv_dim, hidden], [kv_dim]
  Tensor wo;         // [hidden, q_dim]
  Tensor ffn_norm;   // [hidden]
  Tensor w_gate;     // [intermediate, hidden]
  Tensor w_up;       // [intermediate, hidden]
  Tensor w_down;     // [hidden, intermediate]
  // GPTQ act-order: the input permutation of each matrix (i32 [in]); undefined when none.
  Tensor wq_perm, wk_perm, wv_perm, wo_perm, gate_perm, up_perm, down_perm;
  // Joined matrices (model/fuse_projections.h), undefined when not joined: [q; k; v] with its
  // bias, and [gate; up]. When defined, wq/wk/wv/bq/bk/bv (or w_gate/w_up) are views of them.
  Tensor wqkv, bqkv, w_gate_up;
};

struct Qwen2Weights {
  Tensor token_embedding;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  Tensor final_norm;  // [hidden]
  Tensor lm_head;     // [vocab, hidden]; the same tensor as token_embedding when tied
  // A tensor-parallel rank's weights (model/tensor_parallel.h) hold rows [vocab_begin,
  // vocab_begin + rows) of the vocabulary in token_embedding and lm_head; 0 for a whole model.
  int64_t vocab_begin = 0;
};

}  // namespace qb

#include <functional>
#include <map>

namespace qb {

// Calls fn on every weight tensor the forward pass reads: the embedding, each layer's norms,
// matrices and biases, the final norm, and lm_head unless it is the embedding (tied).
void ForEachWeight(const Qwen2Weights& w, const std::function<void(const Tensor&)>& fn);

struct WeightsSummary {
  std::map<DType, int64_t> tensors_by_dtype;
  int64_t parameters = 0;
  int64_t bytes = 0;  // as held in memory (tied embeddings counted once)
};

WeightsSummary Summarize(const Qwen2Weights& w);

// Bytes of an untied embedding that are still a view of the checkpoint file: the forward pass
// reads it a row at a time, so it becomes resident only as tokens are seen (sizing counts it in
// full in advance). 0 when it is tied (lm_head reads all of it every step) or was converted at
// load (then it is in memory of its own, resident already).
int64_t MappedEmbeddingBytes(const Qwen2Weights& w);

}  // namespace qb
