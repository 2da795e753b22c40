// Weight quantization: which type each weight gets for a target (`--quant`, `qwenbox quantize`),
// and the row-by-row conversion (never an f32 copy of a whole tensor).
#pragma once

#include <functional>

#include <string>

#include "model/weights.h"
#include "util/status.h"
#include "util/thread_pool.h"

namespace qb {

// Target types, as llama.cpp names its file types: q8_0, q4_0, q4_k (its Q4_K_M-like mix), and
// the float types f16, bf16, f32.
struct QuantPlan {
  std::string name;
  DType matrices;  // every linear weight
  DType output;    // lm_head, or the embedding when tied (it serves as lm_head)
  DType embedding; // the embedding when it is not tied
  uint32_t gguf_file_type;
};

Result<QuantPlan> FindQuantPlan(const std::string& name);
// The type a matrix of `cols` columns gets: `want`, or a fallback when its rows are not whole
// blocks of `want` (Q4_K/Q6_K need multiples of 256: falls back to Q8_0, then F16).
DType FitType(DType want, int64_t cols);

// A new tensor holding `src` converted to `type` (rows converted independently, in parallel).
Tensor ConvertTensor(const Tensor& src, DType type, ThreadPool* pool = nullptr);
// Converts every matrix of the weights in place per the plan (for --quant at load).
// `on_layer(done, total)` after each layer (progress reports); may be empty.
void QuantizeWeights(Qwen2Weights& w, bool tied, const QuantPlan& plan, ThreadPool* pool = nullptr,
                     const std::function<void(int64_t, int64_t)>& on_layer = {});
// Repacks the matrices that have a row-interleaved layout (Q4_0, Q8_0, Q4_K, ... -> *x8; see
// tensor/interleave.h) for the CPU kernels, on `pool`'s threads when there is one.
// Matrices already repacked are left as they are.
void InterleaveWeights(Qwen2Weights& w, bool tied, ThreadPool* pool = nullptr);
// The same for one layer's matrices.
void InterleaveLayer(LayerWeights& l, ThreadPool* pool = nullptr);

}  // namespace qb
