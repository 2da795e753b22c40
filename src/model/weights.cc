#include "model/weights.h"

namespace qb {

void ForEachWeight(const Qwen2Weights& w, const std::function<void(const Tensor&)>& fn) {
  fn(w.token_embedding);
  for (const LayerWeights& l : w.layers) {
    for (const Tensor* t : {&l.attn_norm, &l.wq, &l.bq, &l.wk, &l.bk, &l.wv, &l.bv, &l.wo, &l.ffn_norm,
                            &l.w_gate, &l.w_up, &l.w_down})
      fn(*t);
  }
  fn(w.final_norm);
  if (w.lm_head.raw() != w.token_embedding.raw()) fn(w.lm_head);
}

WeightsSummary Summarize(const Qwen2Weights& w) {
  WeightsSummary s;
  ForEachWeight(w, [&s](const Tensor& t) {
    ++s.tensors_by_dtype[t.dtype()];
    s.parameters += t.numel();
    s.bytes += static_cast<int64_t>(t.nbytes());
  });
  return s;
}

int64_t MappedEmbeddingBytes(const Qwen2Weights& w) {
  const Tensor& e = w.token_embedding;
  const bool tied = e.raw() == w.lm_head.raw();
  // A tensor that owns its memory is writable; a view of the mapped file is not.
  return tied || e.writable() ? 0 : static_cast<int64_t>(e.nbytes());
}

}  // namespace qb
