// Tensor parallelism (model/tensor_parallel.h): a model split over ranks against llama.cpp's
// micro-qwen2 references (the same tolerances as the whole model's, forward_test.cc), against
// the whole model on shapes that split unevenly, and the splits it refuses.
#include <gtest/gtest.h>

#include <numeric>

#include "common/reference.h"
#include "common/test_paths.h"
#include "model/loader.h"
#include "model/presets.h"
#include "model/quantize.h"
#include "model/random_checkpoint.h"
#include "model/step_model.h"
#include "model/tensor_parallel.h"
#include "sampling/sampler.h"
#include "util/numa.h"

namespace qb {
namespace {

using test::DataPath;

std::vector<float> LastRow(const Tensor& logits) {
  const float* p = logits.data<float>() + (logits.rows() - 1) * logits.cols();
  return {p, p + logits.cols()};
}

// The prompt in one step, then `n` greedy steps, through a step model of one block.
struct SequenceRun {
  std::vector<float> last_logits;
  std::vector<int32_t> greedy;
};

SequenceRun RunSequence(const LoadedModel& loaded, const kernels::ExecContext& ctx, const std::vector<int32_t>& ids, int n) {
  SequenceRun run;
  auto step = MakeCpuStepModel(loaded, KvLayout{1, static_cast<int64_t>(ids.size()) + n, DType::kF32}, ctx);
  std::vector<int32_t> tokens = ids;
  int64_t pos = 0;
  for (int i = 0; i <= n; ++i) {
    auto logits = step->Step(SequenceBatch(tokens, pos, false));
    EXPECT_TRUE(logits.ok()) << logits.status().ToString();
    if (!logits.ok()) break;
    if (i == 0) run.last_logits = LastRow(*logits);
    if (i == n) break;
    pos += static_cast<int64_t>(tokens.size());
    tokens = {Argmax(LastRow(*logits))};
    run.greedy.push_back(tokens[0]);
  }
  return run;
}

struct TpCase {
  const char* name;
  const char* model;      // under tests/data
  const char* reference;  // under tests/data
  float tolerance;
  bool fast;  // fast kernels (2 threads: one per rank) instead of the reference ones
};

std::ostream& operator<<(std::ostream& os, const TpCase& c) { return os << c.name; }

class TensorParallelReferenceTest : public ::testing::TestWithParam<TpCase> {};

TEST_P(TensorParallelReferenceTest, TwoRanksMatchLlamaCpp) {
  const TpCase& c = GetParam();
  LoadOptions lo;
  lo.tensor_parallel = 2;
  auto loaded = LoadModel(DataPath(c.model), lo);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  ASSERT_EQ(loaded->shards.size(), 2u);
  EXPECT_EQ(loaded->shards[0]->config().num_kv_heads, 1);
  ThreadPool pool(2);
  const kernels::ExecContext fast{&pool, std::min(kernels::DetectIsa(), kernels::Isa::kAvx512Vnni)};
  const kernels::ExecContext& ctx = c.fast ? fast : kernels::ExecContext::Reference();
  float worst = 0.f;
  for (const std::string& path : test::ReferenceFiles(DataPath(c.reference))) {
    const test::Reference ref = test::LoadReference(path);
    // Greedy steps while the reference's top1-top2 margin leaves no doubt.
    int comparable = 0;
    while (comparable < static_cast<int>(ref.greedy_ids.size()) &&
           ref.greedy_margins[static_cast<size_t>(comparable)] > 10 * c.tolerance)
      ++comparable;
    const SequenceRun run = RunSequence(*loaded, ctx, ref.token_ids, comparable);
    ASSERT_EQ(run.last_logits.size(), ref.last_logits.size());
    const float diff = test::MaxAbsDiff(run.last_logits.data(), ref.last_logits.data(), run.last_logits.size());
    worst = std::max(worst, diff);
    EXPECT_LE(diff, c.tolerance) << ref.name;
    EXPECT_EQ(run.greedy, std::vector<int32_t>(ref.greedy_ids.begin(), ref.greedy_ids.begin() + comparable))
        << ref.name;
  }
  std::printf("[ %s ] 2 ranks: max |logit diff| over the prompts: %.3g\n", c.name, static_cast<double>(worst));
}

INSTANTIATE_TEST_SUITE_P(
    MicroQwen2, TensorParallelReferenceTest,
    ::testing::Values(TpCase{"bf16_safetensors_vs_f32", "micro-qwen2", "micro-qwen2/reference/f32", 1e-4f, false},
                      TpCase{"f16_gguf_vs_f32", "micro-qwen2/micro-qwen2-f16.gguf", "micro-qwen2/reference/f32", 1e-4f,
                             false},
                      TpCase{"q8_0_vs_dequant_f32", "micro-qwen2/micro-qwen2-q8_0.gguf",
                             "micro-qwen2/reference/q8_0_dequant_f32", 1e-4f, false},
                      TpCase{"q4_0_vs_dequant_f32", "micro-qwen2/micro-qwen2-q4_0.gguf",
                             "micro-qwen2/reference/q4_0_dequant_f32", 1e-4f, false},
                      TpCase{"gptq_vs_dequant_f32", "micro-qwen2-gptq", "micro-qwen2-gptq/reference", 1e-4f, false},
                      TpCase{"awq_vs_dequant_f32", "micro-qwen2-awq", "micro-qwen2-awq/reference", 1e-4f, false},
                      // The fast kernels: a thread per rank, the repacked layouts of each rank's slices.
                      TpCase{"fast_bf16_safetensors_vs_f32", "micro-qwen2", "micro-qwen2/reference/f32", 1e-4f, true},
                      TpCase{"fast_q8_0_vs_llamacpp_q8_0", "micro-qwen2/micro-qwen2-q8_0.gguf",
                             "micro-qwen2/reference/q8_0", 0.25f, true}),
    [](const ::testing::TestParamInfo<TpCase>& p) { return std::string(p.param.name); });

// A shape whose intermediate width and vocabulary do not split evenly over 3 ranks.
ModelPreset UnevenPreset(bool tied) {
  ModelPreset p;
  p.name = "uneven";
  ModelConfig& c = p.config;
  c.hidden_size = 64;
  c.num_layers = 2;
  c.num_heads = 6;
  c.num_kv_heads = 3;
  c.head_dim = 16;
  c.intermediate_size = 40;  // 5 units of 8 rows: 8, 16, 16
  c.vocab_size = 100;        // 12 units of 8 rows, the last rank takes the 4 left over
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = tied;
  p.qwen25_vocabulary = false;
  return p;
}

class UnevenSplitTest : public ::testing::TestWithParam<bool> {};  // tied embeddings or not

TEST_P(UnevenSplitTest, ComputesWhatTheWholeModelDoes) {
  const bool tied = GetParam();
  const ModelPreset preset = UnevenPreset(tied);
  const Qwen2Weights whole = RandomWeightsInMemory(preset, DType::kF32, 7);
  auto shards = ShardWeights(preset.config, whole, 3);
  ASSERT_TRUE(shards.ok()) << shards.status().ToString();
  ASSERT_EQ(shards->size(), 3u);
  std::vector<int64_t> inter, vocab, vocab_begin;
  LoadedModel split, one;
  one.model = std::make_shared<const Qwen2Model>(preset.config, whole);
  split.model = std::make_shared<const Qwen2Model>(preset.config, Qwen2Weights{});
  for (TensorParallelShard& s : *shards) {
    inter.push_back(s.config.intermediate_size);
    vocab.push_back(s.weights.lm_head.dim(0));
    vocab_begin.push_back(s.weights.vocab_begin);
    EXPECT_EQ(s.weights.token_embedding.dim(0), s.weights.lm_head.dim(0));
    EXPECT_EQ(s.weights.lm_head.raw() == s.weights.token_embedding.raw(), tied);
    EXPECT_EQ(s.config.num_heads, 2);
    EXPECT_EQ(s.config.num_kv_heads, 1);
    // Row slices are views of the whole model's memory; column slices are new.
    EXPECT_EQ(s.weights.token_embedding.raw(), whole.token_embedding.row(s.weights.vocab_begin));
    EXPECT_NE(s.weights.layers[0].w_down.raw(), whole.layers[0].w_down.raw());
    split.shards.push_back(std::make_shared<const Qwen2Model>(s.config, s.weights));
  }
  EXPECT_EQ(inter, (std::vector<int64_t>{8, 16, 16}));
  EXPECT_EQ(vocab, (std::vector<int64_t>{32, 32, 36}));
  EXPECT_EQ(vocab_begin, (std::vector<int64_t>{0, 32, 64}));
  // Nothing held twice: the ranks' weights add up to the whole model's.
  EXPECT_EQ(split.Summary().parameters, one.Summary().parameters);
  EXPECT_EQ(split.Summary().bytes, one.Summary().bytes);

  // Two sequences in one paged batch: a prompt of 5 and, after it, a decode step of each.
  ThreadPool pool(3);
  const kernels::ExecContext ctx{&pool, kernels::Isa::kReference};
  const KvLayout layout{4, 8, DType::kF32};
  auto a = MakeCpuStepModel(one, layout, ctx);
  auto b = MakeCpuStepModel(split, layout, ctx);
  // The same ranks placed on a NUMA node (all on this machine's first; on a multi-socket host
  // each would have its own): pinned threads, memory moved, the same results.
  // Each rank is held to one CPU; the caller (rank 0's thread) gets its own CPUs back after a step.
  const std::vector<NumaNode> nodes = DetectNumaNodes();
  const std::vector<int> caller_cpus = CurrentThreadCpus();
  std::unique_ptr<StepModel> placed;
  if (!nodes.empty())
    placed = MakeCpuTensorParallelStepModel(split.shards, preset.config, layout, kernels::Isa::kReference, 1,
                                            std::vector<NumaNode>(3, NumaNode{nodes[0].id, {nodes[0].cpus.back()}}));
  EXPECT_EQ(b->kv_pool_bytes(), a->kv_pool_bytes());
  EXPECT_NE(b->device().find("3 ranks"), std::string::npos) << b->device();
  const int32_t table0[] = {0}, table1[] = {2, 3};
  ForwardBatch prompt;
  for (int32_t i = 0; i < 5; ++i) {
    prompt.tokens.push_back(10 + 7 * i);
    prompt.positions.push_back(i);
    prompt.slots.push_back(i);
    prompt.tables.emplace_back(table0);
  }
  for (int32_t i = 0; i < 9; ++i) {  // the second sequence spans two blocks
    prompt.tokens.push_back(90 - 3 * i);
    prompt.positions.push_back(i);
    prompt.slots.push_back(i < 8 ? 16 + i : 24 + i - 8);
    prompt.tables.emplace_back(table1);
  }
  prompt.logit_rows = {4, 13, 0};
  ForwardBatch decode;
  decode.tokens = {3, 99};
  decode.positions = {5, 9};
  decode.slots = {5, 25};
  decode.tables = {std::span<const int32_t>(table0), std::span<const int32_t>(table1)};
  decode.logit_rows = {0, 1};
  for (const ForwardBatch* batch : {&prompt, &decode}) {
    auto want = a->Step(*batch);
    auto got = b->Step(*batch);
    ASSERT_TRUE(want.ok() && got.ok());
    ASSERT_EQ(got->shape(), want->shape());
    EXPECT_LE(test::MaxAbsDiff(got->data<float>(), want->data<float>(), static_cast<size_t>(got->numel())), 1e-4f);
    if (!placed) continue;
    EXPECT_NE(placed->device().find("on NUMA nodes"), std::string::npos) << placed->device();
    auto on_node = placed->Step(*batch);
    ASSERT_TRUE(on_node.ok());
    EXPECT_EQ(CurrentThreadCpus(), caller_cpus);
    EXPECT_EQ(test::MaxAbsDiff(on_node->data<float>(), got->data<float>(), static_cast<size_t>(got->numel())), 0.f);
  }
  // A bad token is an error on every rank, and the ranks still step together afterwards.
  ForwardBatch bad = decode;
  bad.tokens[1] = 100;
  EXPECT_FALSE(b->Step(bad).ok());
  decode.positions = {6, 10};
  decode.slots = {6, 26};
  auto want = a->Step(decode);
  auto got = b->Step(decode);
  ASSERT_TRUE(want.ok() && got.ok());
  EXPECT_LE(test::MaxAbsDiff(got->data<float>(), want->data<float>(), static_cast<size_t>(got->numel())), 1e-4f);
}

INSTANTIATE_TEST_SUITE_P(TiedOrNot, UnevenSplitTest, ::testing::Bool());

// A mixed-type file: down_proj in Q8_0 (blocks of 32) in one layer and Q6_K (256) in the other.
// The intermediate width (768) is cut on a boundary of both: 256 + 512, not 384 + 384.
TEST(TensorParallelTest, MixedDownTypesAreCutOnEveryLayersBlocks) {
  ModelPreset preset = UnevenPreset(false);
  preset.config.num_heads = 4;
  preset.config.num_kv_heads = 2;
  preset.config.intermediate_size = 768;
  Qwen2Weights whole = RandomWeightsInMemory(preset, DType::kF32, 3);
  whole.layers[0].w_down = ConvertTensor(whole.layers[0].w_down, DType::kQ8_0);
  whole.layers[1].w_down = ConvertTensor(whole.layers[1].w_down, DType::kQ6_K);
  auto shards = ShardWeights(preset.config, whole, 2);
  ASSERT_TRUE(shards.ok()) << shards.status().ToString();
  EXPECT_EQ((*shards)[0].config.intermediate_size, 256);
  EXPECT_EQ((*shards)[1].config.intermediate_size, 512);
  LoadedModel one, split;
  one.model = std::make_shared<const Qwen2Model>(preset.config, whole);
  split.model = std::make_shared<const Qwen2Model>(preset.config, Qwen2Weights{});
  for (TensorParallelShard& s : *shards) split.shards.push_back(std::make_shared<const Qwen2Model>(s.config, s.weights));
  const kernels::ExecContext& ctx = kernels::ExecContext::Reference();
  const std::vector<int32_t> ids = {5, 17, 42, 99};
  auto a = MakeCpuStepModel(one, KvLayout{1, 4, DType::kF32}, ctx)->Step(SequenceBatch(ids, 0, true));
  auto b = MakeCpuStepModel(split, KvLayout{1, 4, DType::kF32}, ctx)->Step(SequenceBatch(ids, 0, true));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LE(test::MaxAbsDiff(b->data<float>(), a->data<float>(), static_cast<size_t>(a->numel())), 1e-4f);
}

TEST(TensorParallelTest, SplitsThatCannotBeMadeAreClearErrors) {
  auto message = [](const std::string& model, int world) {
    LoadOptions lo;
    lo.tensor_parallel = world;
    auto loaded = LoadModel(DataPath(model), lo);
    return loaded.ok() ? std::string("loaded") : loaded.status().ToString();
  };
  EXPECT_NE(message("micro-qwen2", 4).find("2 KV heads do not split evenly"), std::string::npos);
  EXPECT_NE(message("micro-qwen2", 0).find("at least 1"), std::string::npos);
  // Q4_K's blocks of 256 inputs cross o_proj's cut at 128 inputs (2 heads of 64).
  const std::string q4k = message("micro-qwen2/micro-qwen2-q4_k_m.gguf", 2);
  EXPECT_NE(q4k.find("o_proj is q4_k"), std::string::npos) << q4k;
  EXPECT_NE(message("micro-qwen2-gptq-descact", 2).find("act-order"), std::string::npos);
  {  // With --quant the split is checked for the converted types, before converting.
    LoadOptions lo;
    lo.tensor_parallel = 2;
    lo.quant = "q4_k";
    bool converted = false;
    lo.progress = [&converted](const std::string& stage, double) { converted |= stage.find("converting") == 0; };
    auto loaded = LoadModel(DataPath("micro-qwen2"), lo);
    ASSERT_FALSE(loaded.ok());
    EXPECT_NE(loaded.status().message().find("o_proj is q4_k"), std::string::npos) << loaded.status().ToString();
    EXPECT_FALSE(converted);
    lo.quant = "q8_0";
    EXPECT_TRUE(LoadModel(DataPath("micro-qwen2"), lo).ok());
    EXPECT_TRUE(converted);
  }
  // A whole model loaded split keeps no weights of its own: running it is an error, not a crash.
  LoadOptions lo;
  lo.tensor_parallel = 2;
  auto loaded = LoadModel(DataPath("micro-qwen2"), lo);
  ASSERT_TRUE(loaded.ok());
  ContiguousKvCache cache(loaded->model->config(), 4);
  EXPECT_FALSE(loaded->model->Forward(std::vector<int32_t>{1, 2}, 0, cache, false, kernels::ExecContext::Reference()).ok());
}

}  // namespace
}  // namespace qb
