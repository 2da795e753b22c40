#include "model/weights.h"

namespace qb {

WeightsSummary Summarize(const Qwen2Weights& w) {
  WeightsSummary s;
  auto add = [&s](const Tensor& t) {
    ++s.tensors_by_dtype[t.dtype()];
    s.parameters += t.numel();
    s.bytes += static_cast<int64_t>(t.nbytes());
  };
  add(w.token_embedding);
  for (const LayerWeights& l : w.layers) {
    for (const Tensor* t : {&l.attn_norm, &l.wq, &l.bq, &l.wk, &l.bk, &l.wv, &l.bv, &l.wo, &l.ffn_norm,
                            &l.w_gate, &l.w_up, &l.w_down})
      add(*t);
  }
  add(w.final_norm);
  if (w.lm_head.raw() != w.token_embedding.raw()) add(w.lm_head);
  return s;
}

int64_t MappedEmbeddingBytes(const Qwen2Weights& w) {
  const Tensor& e = w.token_embedding;
  const bool tied = e.raw() == w.lm_head.raw();
  // A tensor that owns its memory is writable; a view of the mapped file is not.
  return tied || e.writable() ? 0 : static_cast<int64_t>(e.nbytes());
}

}  // namespace qb
