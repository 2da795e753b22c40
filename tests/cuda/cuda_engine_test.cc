// The serving engine on the CUDA backend (what `serve --device cuda` runs): the KV pool sized
// from --gpu-memory-utilization adds up, and greedy continuations of micro-qwen2 through the
// engine (paged pool, continuous batching, CUDA graphs) equal llama.cpp's wherever the
// reference's top-1/top-2 margin is clear of bf16 rounding.
#include <gtest/gtest.h>

#include "common/reference.h"
#include "common/test_paths.h"
#include "cuda/cuda_test_util.h"
#include "engine/engine.h"
#include "kernels/cuda/cuda_api.h"
#include "model/cuda_step_model.h"
#include "model/loader.h"

namespace qb {
namespace {

TEST(CudaEngine, PoolSizedFromGpuMemoryUtilization) {
  QB_REQUIRE_CUDA();
  auto loaded = LoadModel(test::DataPath("micro-qwen2"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const cuda::MemoryInfo mem = cuda::GetMemoryInfo();
  // Leave about 512 MiB for this model: utilization = what is used now + 512 MiB.
  const double used = static_cast<double>(mem.total_bytes - mem.free_bytes);
  CudaStepOptions o;
  o.max_batch_tokens = 256;
  o.max_num_seqs = 8;
  o.max_total_tokens = 1024;
  o.gpu_memory_utilization = (used + 512.0 * (1 << 20)) / static_cast<double>(mem.total_bytes);
  CudaStepInfo info;
  auto step = MakeCudaStepModel(loaded->model->config(), loaded->model->weights(), o, &info);
  ASSERT_TRUE(step.ok()) << step.status().ToString();
  std::printf("[ gpu sizing ] %s; weights %lld, activations %lld, KV %lld bytes (%lld blocks)\n", info.how.c_str(),
              static_cast<long long>(info.weight_bytes), static_cast<long long>(info.activation_bytes),
              static_cast<long long>(info.kv_cache_bytes), static_cast<long long>(info.kv_blocks));
  EXPECT_GT(info.weight_bytes, 0);
  EXPECT_GT(info.activation_bytes, 0);
  // weights + activations + KV fill the 512 MiB, less at most one block.
  const int64_t block = info.kv_cache_bytes / info.kv_blocks;
  const int64_t sum = info.weight_bytes + info.activation_bytes + info.kv_cache_bytes;
  EXPECT_LE(sum, (int64_t{512} << 20) + (4 << 20));
  EXPECT_GE(sum, (int64_t{512} << 20) - block - (4 << 20));
  EXPECT_EQ((*step)->kv_blocks(), info.kv_blocks);

  // Too little memory: a clear refusal.
  o.gpu_memory_utilization = (used + 1.0 * (1 << 20)) / static_cast<double>(mem.total_bytes);
  auto refused = MakeCudaStepModel(loaded->model->config(), loaded->model->weights(), o, nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("does not fit the GPU"), std::string::npos) << refused.status().message();
}

// Greedy continuations of the three micro-qwen2 prompts, all in flight at once, prompts in chunks
// of 64 tokens mixed with decodes. Returns the ids per prompt.
std::vector<std::vector<int32_t>> RunGreedy(const LoadedModel& loaded, const CudaStepOptions& o,
                                            const std::vector<test::Reference>& refs) {
  CudaStepInfo info;
  auto step = MakeCudaStepModel(loaded.model->config(), loaded.model->weights(), o, &info);
  EXPECT_TRUE(step.ok()) << step.status().ToString();
  if (!step.ok()) return {};
  EngineConfig c;
  c.scheduler.block_size = o.block_size;
  c.scheduler.max_batch_tokens = o.max_batch_tokens;
  c.scheduler.max_num_seqs = o.max_num_seqs;
  c.kv_blocks = info.kv_blocks;
  c.max_total_tokens = o.max_total_tokens;
  Engine engine(std::move(*step), nullptr, c, kernels::ExecContext{});
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const test::Reference& ref : refs) {
    GenerationRequest r;
    r.prompt = ref.token_ids;
    r.max_tokens = static_cast<int64_t>(ref.greedy_ids.size());
    r.ignore_eos = true;
    auto s = engine.Submit(r);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (!s.ok()) return {};
    streams.push_back(*s);
  }
  std::vector<std::vector<int32_t>> out;
  for (auto& s : streams) {
    std::vector<int32_t> ids;
    StreamEvent ev;
    while (s->Next(&ev) && ev.kind != StreamEvent::Kind::kFinished) ids.push_back(ev.token);
    out.push_back(ids);
  }
  return out;
}

// Compares ids with the reference up to the first step whose top-1/top-2 margin is below
// `margin`; returns the steps compared.
int CompareGreedy(const std::vector<std::vector<int32_t>>& got, const std::vector<test::Reference>& refs, float margin,
                  const char* what) {
  int compared = 0;
  EXPECT_EQ(got.size(), refs.size());
  for (size_t i = 0; i < got.size() && i < refs.size(); ++i) {
    EXPECT_EQ(got[i].size(), refs[i].greedy_ids.size()) << what << " " << refs[i].name;
    for (size_t k = 0; k < got[i].size() && k < refs[i].greedy_ids.size(); ++k) {
      if (refs[i].greedy_margins[k] < margin) break;
      EXPECT_EQ(got[i][k], refs[i].greedy_ids[k]) << what << " " << refs[i].name << " step " << k;
      ++compared;
    }
  }
  std::printf("[ cuda engine %s ] %d greedy steps compared over %zu prompts (margin >= %g)\n", what, compared,
              refs.size(), margin);
  return compared;
}

TEST(CudaEngine, GreedyContinuationsMatchTheReference) {
  QB_REQUIRE_CUDA();
  auto loaded = LoadModel(test::DataPath("micro-qwen2"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  std::vector<test::Reference> refs;
  for (const std::string& path : test::ReferenceFiles(test::DataPath("micro-qwen2/reference/f32")))
    refs.push_back(test::LoadReference(path));
  ASSERT_FALSE(refs.empty());
  CudaStepOptions o;
  o.max_batch_tokens = 64;
  o.max_num_seqs = 8;
  o.max_total_tokens = 512;
  o.kv_cache_bytes = 64 << 20;
  // f32 all the way (GEMV path, f32 pool): within ~1e-6 of llama.cpp, so every step whose
  // margin is not a near-tie must agree.
  o.kv_dtype = DType::kF32;
  o.linear_path = cuda::LinearPath::kGemv;
  EXPECT_GE(CompareGreedy(RunGreedy(*loaded, o, refs), refs, 1e-3f, "f32"), 40);
  // The serving path (bf16 pool, cuBLAS prefill, bf16-rounded activations; logits within
  // ~0.02 of the reference): agreement wherever the margin exceeds twice that.
  o.kv_dtype = DType::kBF16;
  o.linear_path = cuda::LinearPath::kAuto;
  EXPECT_GE(CompareGreedy(RunGreedy(*loaded, o, refs), refs, 0.04f, "bf16"), 8);
}

}  // namespace
}  // namespace qb
