// Joined projections (model/fuse_projections.h): which loads join, that the parts become views
// of the joined matrix, and that the forward pass gives the same logits bit for bit either way.
#include "model/fuse_projections.h"

#include <gtest/gtest.h>

#include "common/model_runner.h"
#include "common/test_paths.h"
#include "model/loader.h"
#include "model/qwen2.h"

namespace qb {
namespace {

using test::DataPath;

// The same weights with the joined matrices dropped (the parts stay views of their memory).
Qwen2Model Unjoined(const Qwen2Model& m) {
  Qwen2Weights w = m.weights();
  for (LayerWeights& l : w.layers) l.wqkv = l.bqkv = l.w_gate_up = Tensor();
  return Qwen2Model(m.config(), std::move(w));
}

struct FuseCase {
  const char* path;
  const char* quant;
  bool joined;
};

class FuseProjectionsTest : public ::testing::TestWithParam<FuseCase> {};

TEST_P(FuseProjectionsTest, JoinedAndSeparateGiveTheSameLogits) {
  const FuseCase c = GetParam();
  LoadOptions o;
  o.quant = c.quant;
  auto loaded = LoadModel(DataPath(c.path), o);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const Qwen2Model& joined = *loaded->model;
  const LayerWeights& l0 = joined.weights().layers[0];
  ASSERT_EQ(l0.wqkv.defined(), c.joined);
  ASSERT_EQ(l0.w_gate_up.defined(), c.joined);
  if (c.joined) {
    EXPECT_EQ(l0.wq.raw(), l0.wqkv.raw());  // views, not copies
    EXPECT_EQ(l0.wqkv.rows(), l0.wq.rows() + l0.wk.rows() + l0.wv.rows());
    EXPECT_EQ(static_cast<const uint8_t*>(l0.wv.raw()) + l0.wv.nbytes(),
              static_cast<const uint8_t*>(l0.wqkv.raw()) + l0.wqkv.nbytes());
    EXPECT_EQ(l0.bk.data<float>(), l0.bqkv.data<float>() + l0.bq.numel());
    EXPECT_EQ(l0.w_up.raw(), static_cast<const uint8_t*>(l0.w_gate_up.raw()) + l0.w_gate.nbytes());
  }
  const Qwen2Model separate = Unjoined(joined);
  // 7 tokens: past one micro-kernel call (the 32-row path on AVX-512), then 1 (decode's path).
  for (const std::vector<int32_t>& ids : {std::vector<int32_t>{5, 300, 1023, 42, 7, 99, 1}, std::vector<int32_t>{17}}) {
    ThreadPool pool(2);
    const kernels::ExecContext fast{&pool, kernels::DetectIsa()};
    EXPECT_EQ(test::LastLogits(joined, ids, fast), test::LastLogits(separate, ids, fast)) << c.path;
    EXPECT_EQ(test::LastLogits(joined, ids), test::LastLogits(separate, ids)) << c.path << " (reference)";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Loads, FuseProjectionsTest,
    ::testing::Values(FuseCase{"micro-qwen2/micro-qwen2-q8_0.gguf", "", true},  // repacked at load: joined
                      FuseCase{"micro-qwen2/micro-qwen2-q4_0.gguf", "", true},
                      FuseCase{"micro-qwen2", "q4_k", true},                      // converted at load: joined
                      FuseCase{"micro-qwen2/micro-qwen2-f16.gguf", "", true},    // mapped: copied, file pages let go
                      FuseCase{"micro-qwen2", "", true},                          // bf16 safetensors, mapped
                      FuseCase{"micro-qwen2-gptq-descact", "", false}),          // act-order permutations
    [](const ::testing::TestParamInfo<FuseCase>& i) { return std::to_string(i.index); });

}  // namespace
}  // namespace qb
