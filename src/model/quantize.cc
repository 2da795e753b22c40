#include "model/quantize.h"

#include <vector>

#include <fmt/format.h>

#include "tensor/dequantize.h"
#include "tensor/interleave.h"
#include "util/mapped_file.h"

namespace qb {

Result<QuantPlan> FindQuantPlan(const std::string& name) {
  // File types: llama.cpp's LLAMA_FTYPE values (0 all F32, 1 mostly F16, 2 Q4_0, 7 Q8_0,
  // 15 Q4_K_M, 32 BF16).
  if (name == "q8_0") return QuantPlan{name, DType::kQ8_0, DType::kQ8_0, DType::kQ8_0, 7};
  if (name == "q4_0") return QuantPlan{name, DType::kQ4_0, DType::kQ6_K, DType::kQ4_0, 2};
  if (name == "q4_k") return QuantPlan{name, DType::kQ4_K, DType::kQ6_K, DType::kQ4_K, 15};
  if (name == "f16") return QuantPlan{name, DType::kF16, DType::kF16, DType::kF16, 1};
  if (name == "bf16") return QuantPlan{name, DType::kBF16, DType::kBF16, DType::kBF16, 32};
  if (name == "f32") return QuantPlan{name, DType::kF32, DType::kF32, DType::kF32, 0};
  return InvalidArgument(fmt::format("unknown quantization \"{}\" (q8_0, q4_0, q4_k, f16, bf16, f32)", name));
}

DType FitType(DType want, int64_t cols) {
  if (cols % Info(want).block_size == 0) return want;
  if (cols % Info(DType::kQ8_0).block_size == 0) return DType::kQ8_0;
  return DType::kF16;
}

Tensor ConvertTensor(const Tensor& src, DType type, ThreadPool* pool) {
  Tensor out = Tensor::EmptyLongLived(type, src.shape());  // weights: as long-lived as the model
  const int64_t cols = src.cols();
  auto rows = [&](int64_t b, int64_t e) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = b; r < e; ++r) {
      DequantizeMatrixRow(src.raw(), src.dtype(), cols, r, row.data());
      QuantizeRow(type, row.data(), static_cast<uint8_t*>(out.mutable_raw()) + r * out.row_bytes(), cols);
    }
  };
  if (pool) pool->ParallelFor(src.rows(), rows, 16);
  else rows(0, src.rows());
  return out;
}

void QuantizeWeights(Qwen2Weights& w, bool tied, const QuantPlan& plan, ThreadPool* pool,
                     const std::function<void(int64_t, int64_t)>& on_layer) {
  auto convert = [&](Tensor& t, DType want) {
    const DType type = FitType(want, t.cols());
    if (t.dtype() != type) t = ConvertTensor(t, type, pool);
  };
  const auto layers = static_cast<int64_t>(w.layers.size());
  for (int64_t i = 0; i < layers; ++i) {
    LayerWeights& l = w.layers[static_cast<size_t>(i)];
    for (Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) convert(*t, plan.matrices);
    if (on_layer) on_layer(i + 1, layers);
  }
  if (tied) {
    convert(w.token_embedding, plan.output);
    w.lm_head = w.token_embedding;
  } else {
    convert(w.token_embedding, plan.embedding);
    convert(w.lm_head, plan.output);
  }
}

namespace {

void Repack(Tensor& t, ThreadPool* pool) {
  if (!CanInterleave(t)) return;
  Tensor repacked = Interleave(t, pool);
  // The file's copy is not read again: drop its pages from the resident set (a view of an
  // mmap'd file is read-only; an owned tensor frees its memory when replaced).
  if (!t.writable()) ReleaseMappedRange(t.raw(), t.nbytes());
  t = std::move(repacked);
}

}  // namespace

void InterleaveLayer(LayerWeights& l, ThreadPool* pool) {
  for (Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) Repack(*t, pool);
}

void InterleaveWeights(Qwen2Weights& w, bool tied, ThreadPool* pool) {
  for (LayerWeights& l : w.layers) InterleaveLayer(l, pool);
  Repack(w.lm_head, pool);
  if (tied) w.token_embedding = w.lm_head;
}

}  // namespace qb
