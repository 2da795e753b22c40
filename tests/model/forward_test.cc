// The Qwen2 forward pass against llama.cpp's reference logits for micro-qwen2, for every
// weight file (see tests/data/micro-qwen2/reference/README.md for what each reference is).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "common/model_runner.h"
#include "common/reference.h"
#include "common/test_paths.h"
#include "model/kv_cache.h"
#include "model/loader.h"
#include "sampling/sampler.h"
#include "util/thread_pool.h"

namespace qb {
namespace {

using test::DataPath;

struct Case {
  const char* name;
  const char* model;      // relative to tests/data/micro-qwen2 ("" = the safetensors dir)
  const char* reference;  // reference/<dir> ("" = the model directory's own reference/)
  float tolerance;        // max |logit difference|
  bool exact_greedy;      // greedy continuation must match where the reference margin allows
  bool fast = false;      // the fast kernels (2 threads, best ISA) instead of the reference ones
  const char* dir = "micro-qwen2";  // the fixture folder under tests/data
  size_t min_greedy = 16;           // greedy steps whose reference margin must allow comparing them
  bool bf16_acts = false;  // fast: the AVX512_BF16 path (BF16 weights meet bf16 activations; skipped
                           // without it); otherwise the fast paths stop short of it (f32 activations)
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }

std::vector<int32_t> Top(const std::vector<float>& v, size_t k) {
  std::vector<int32_t> ids(v.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(),
                    [&](int32_t a, int32_t b) { return v[static_cast<size_t>(a)] > v[static_cast<size_t>(b)]; });
  ids.resize(k);
  std::sort(ids.begin(), ids.end());
  return ids;
}

class MicroReferenceTest : public ::testing::TestWithParam<Case> {};

TEST_P(MicroReferenceTest, LogitsMatchLlamaCpp) {
  const Case& c = GetParam();
  const bool own = std::string(c.reference).empty();  // GPTQ/AWQ fixtures: <dir>/reference
  const std::string path = own ? DataPath(c.model) : DataPath(std::string(c.dir) + "/" + c.model);
  auto loaded = LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const Qwen2Model& model = *loaded->model;
  if (c.bf16_acts && kernels::DetectIsa() < kernels::Isa::kAvx512Bf16)
    GTEST_SKIP() << "this CPU has no AVX512_BF16 (best path: " << kernels::IsaName(kernels::DetectIsa()) << ")";
  ThreadPool pool(2);
  const kernels::ExecContext fast_ctx{&pool, c.bf16_acts ? kernels::Isa::kAvx512Bf16
                                                         : std::min(kernels::DetectIsa(), kernels::Isa::kAvx512Vnni)};
  const kernels::ExecContext& ctx = c.fast ? fast_ctx : kernels::ExecContext::Reference();
  float worst = 0.f;
  const std::string ref_dir = own ? path + "/reference" : DataPath(std::string(c.dir) + "/reference/" + c.reference);
  for (const std::string& ref_path : test::ReferenceFiles(ref_dir)) {
    const test::Reference ref = test::LoadReference(ref_path);
    const std::vector<float> got = test::LastLogits(model, ref.token_ids, ctx);
    ASSERT_EQ(got.size(), ref.last_logits.size());
    const float diff = test::MaxAbsDiff(got.data(), ref.last_logits.data(), got.size());
    worst = std::max(worst, diff);
    EXPECT_LE(diff, c.tolerance) << ref.name;
    if (c.exact_greedy) {
      EXPECT_EQ(Argmax(got), Argmax(ref.last_logits)) << ref.name;
      EXPECT_EQ(Top(got, 20), Top(ref.last_logits, 20)) << ref.name;
      // Compare greedy ids up to the first step whose top1-top2 margin is within 10x tolerance.
      size_t comparable = 0;
      while (comparable < ref.greedy_ids.size() && ref.greedy_margins[comparable] > 10 * c.tolerance) ++comparable;
      const auto greedy = test::Greedy(model, ref.token_ids, static_cast<int>(comparable), ctx);
      EXPECT_EQ(greedy, std::vector<int32_t>(ref.greedy_ids.begin(), ref.greedy_ids.begin() + static_cast<std::ptrdiff_t>(comparable)))
          << ref.name;
      if (!own) {
        EXPECT_GE(comparable, c.min_greedy) << ref.name << ": margins too small to compare the continuation";
      }
    }
  }
  RecordProperty("max_abs_logit_diff", std::to_string(worst));
  std::printf("[ %s ] max |logit diff| over 3 prompts: %.3g\n", c.name, static_cast<double>(worst));
}

INSTANTIATE_TEST_SUITE_P(
    AllWeightFiles, MicroReferenceTest,
    ::testing::Values(Case{"bf16_safetensors_vs_f32", "", "f32", 1e-4f, true},
                      Case{"f16_gguf_vs_f32", "micro-qwen2-f16.gguf", "f32", 1e-4f, true},
                      Case{"q8_0_vs_dequant_f32", "micro-qwen2-q8_0.gguf", "q8_0_dequant_f32", 1e-4f, true},
                      Case{"q4_0_vs_dequant_f32", "micro-qwen2-q4_0.gguf", "q4_0_dequant_f32", 1e-4f, true},
                      Case{"q4_k_m_vs_dequant_f32", "micro-qwen2-q4_k_m.gguf", "q4_k_m_dequant_f32", 1e-4f, true},
                      Case{"q8_0_vs_llamacpp_q8_0", "micro-qwen2-q8_0.gguf", "q8_0", 0.25f, false},
                      Case{"q4_0_vs_llamacpp_q4_0", "micro-qwen2-q4_0.gguf", "q4_0", 0.25f, false},
                      Case{"q4_k_m_vs_llamacpp_q4_k_m", "micro-qwen2-q4_k_m.gguf", "q4_k_m", 0.25f, false},
                      // The fast kernels: float weights keep f32 activations (tight); quantized
                      // weights meet 8-bit activations, as in llama.cpp (0.25).
                      Case{"fast_bf16_safetensors_vs_f32", "", "f32", 1e-4f, true, true},
                      // BF16 weights on bf16 activations (AVX512_BF16, as llama.cpp's BF16 path):
                      // each activation rounded by up to 2^-8 relative (measured 0.016); the same
                      // argmax and top 20, greedy steps compared where margins allow (none need).
                      Case{"fast_bf16_acts_safetensors_vs_f32", "", "f32", 0.03f, true, true, "micro-qwen2", 0, true},
                      Case{"fast_f16_gguf_vs_f32", "micro-qwen2-f16.gguf", "f32", 1e-4f, true, true},
                      Case{"fast_q8_0_vs_llamacpp_q8_0", "micro-qwen2-q8_0.gguf", "q8_0", 0.25f, false, true},
                      Case{"fast_q4_0_vs_llamacpp_q4_0", "micro-qwen2-q4_0.gguf", "q4_0", 0.25f, false, true},
                      Case{"fast_q4_k_m_vs_llamacpp_q4_k_m", "micro-qwen2-q4_k_m.gguf", "q4_k_m", 0.25f, false, true},
                      Case{"fast_q8_0_vs_dequant_f32", "micro-qwen2-q8_0.gguf", "q8_0_dequant_f32", 0.25f, false, true},
                      Case{"fast_q4_0_vs_dequant_f32", "micro-qwen2-q4_0.gguf", "q4_0_dequant_f32", 0.25f, false, true},
                      Case{"fast_q4_k_m_vs_dequant_f32", "micro-qwen2-q4_k_m.gguf", "q4_k_m_dequant_f32", 0.25f, false, true},
                      // GPTQ (group 128 sym; act-order asym group 32) and AWQ (GEMM, group 128),
                      // repacked at load; references from the exactly dequantized weights.
                      Case{"gptq_vs_dequant_f32", "micro-qwen2-gptq", "", 1e-4f, true},
                      Case{"gptq_descact_vs_dequant_f32", "micro-qwen2-gptq-descact", "", 1e-4f, true},
                      Case{"awq_vs_dequant_f32", "micro-qwen2-awq", "", 1e-4f, true},
                      Case{"fast_gptq_vs_dequant_f32", "micro-qwen2-gptq", "", 0.25f, false, true},
                      Case{"fast_gptq_descact_vs_dequant_f32", "micro-qwen2-gptq-descact", "", 0.25f, false, true},
                      Case{"fast_awq_vs_dequant_f32", "micro-qwen2-awq", "", 0.25f, false, true},
                      // Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q5_K in one file (the GGUF types of
                      // official Qwen2.5 releases that qwenbox reads but never writes); the
                      // tightest reference's last greedy step has a margin of 7.9e-4.
                      Case{"mixed_vs_dequant_f32", "micro-qwen2-mixed.gguf", "mixed_dequant_f32", 1e-4f, true, false,
                           "micro-qwen2-mixed", 15},
                      Case{"mixed_vs_llamacpp_mixed", "micro-qwen2-mixed.gguf", "mixed", 0.25f, false, false,
                           "micro-qwen2-mixed"},
                      Case{"fast_mixed_vs_llamacpp_mixed", "micro-qwen2-mixed.gguf", "mixed", 0.25f, false, true,
                           "micro-qwen2-mixed"},
                      Case{"fast_mixed_vs_dequant_f32", "micro-qwen2-mixed.gguf", "mixed_dequant_f32", 0.25f, false, true,
                           "micro-qwen2-mixed"}),
    [](const auto& p) { return std::string(p.param.name); });

TEST(ForwardTest, BothFormatsOfTheSameWeightsGiveTheSameLogits) {
  // model.safetensors (BF16) and micro-qwen2-f16.gguf hold identical numbers.
  auto st = LoadModel(DataPath("micro-qwen2"));
  auto gg = LoadModel(DataPath("micro-qwen2/micro-qwen2-f16.gguf"));
  ASSERT_TRUE(st.ok() && gg.ok());
  const test::Reference ref = test::LoadReference(DataPath("micro-qwen2/reference/f32/en_sentence.json"));
  const auto a = test::AllPositionLogits(*st->model, ref.token_ids);
  const auto b = test::AllPositionLogits(*gg->model, ref.token_ids);
  ASSERT_EQ(a.size(), ref.token_ids.size());
  ASSERT_EQ(a.size(), b.size());
  for (size_t p = 0; p < a.size(); ++p) EXPECT_EQ(test::MaxAbsDiff(a[p].data(), b[p].data(), a[p].size()), 0.f) << p;
}

// The accuracy cost of each KV cache type on micro-qwen2 (BF16 weights, f32 reference): the
// incremental decode of each prompt (prompt, then the reference's greedy tokens one at a time)
// against the same positions with an f32 cache.
TEST(ForwardTest, KvCacheTypesStayNearTheF32Cache) {
  auto loaded = LoadModel(DataPath("micro-qwen2"));
  ASSERT_TRUE(loaded.ok());
  const Qwen2Model& model = *loaded->model;
  // f32 activations (BF16 weights' bf16-activation path would add its own rounding to the KV's).
  const kernels::ExecContext ctx{nullptr, std::min(kernels::DetectIsa(), kernels::Isa::kAvx512Vnni)};
  struct KvCase {
    DType type;
    float bound;
  };
  for (const KvCase& kv : {KvCase{DType::kF16, 5e-3f}, KvCase{DType::kBF16, 5e-2f}, KvCase{DType::kQ8_0, 5e-2f}}) {
    float worst = 0.f;
    for (const std::string& ref_path : test::ReferenceFiles(DataPath("micro-qwen2/reference/f32"))) {
      const test::Reference ref = test::LoadReference(ref_path);
      std::vector<int32_t> ids = ref.token_ids;
      ids.insert(ids.end(), ref.greedy_ids.begin(), ref.greedy_ids.end());
      ContiguousKvCache exact(model.config(), static_cast<int64_t>(ids.size()));
      ContiguousKvCache cache(model.config(), static_cast<int64_t>(ids.size()), kv.type);
      auto a = model.Forward(ids, 0, exact, true, ctx);
      auto b = model.Forward(ids, 0, cache, true, ctx);
      ASSERT_TRUE(a.ok() && b.ok());
      worst = std::max(worst, test::MaxAbsDiff(a->data<float>(), b->data<float>(), static_cast<size_t>(a->numel())));
    }
    std::printf("[ kv %s ] max |logit diff| vs an f32 cache, every position of 3 prompts + 16 tokens: %.3g\n",
                std::string(Name(kv.type)).c_str(), static_cast<double>(worst));
    EXPECT_GT(worst, 0.f) << Name(kv.type);
    EXPECT_LE(worst, kv.bound) << Name(kv.type);
  }
}

TEST(ForwardTest, IncrementalDecodingMatchesTheFullPrompt) {
  auto loaded = LoadModel(DataPath("micro-qwen2"));
  ASSERT_TRUE(loaded.ok());
  const Qwen2Model& model = *loaded->model;
  const test::Reference ref = test::LoadReference(DataPath("micro-qwen2/reference/f32/code_python.json"));
  const auto full = test::AllPositionLogits(model, ref.token_ids, kernels::ExecContext::Default());
  // Same prompt fed in chunks of 1, 7 and the rest through the KV cache (same kernels).
  ContiguousKvCache cache(model.config(), static_cast<int64_t>(ref.token_ids.size()));
  std::vector<int64_t> cuts = {0, 1, 8, static_cast<int64_t>(ref.token_ids.size())};
  for (size_t c = 0; c + 1 < cuts.size(); ++c) {
    std::vector<int32_t> chunk(ref.token_ids.begin() + cuts[c], ref.token_ids.begin() + cuts[c + 1]);
    auto logits = model.Forward(chunk, cuts[c], cache, true);
    ASSERT_TRUE(logits.ok());
    for (int64_t r = 0; r < logits->rows(); ++r)
      EXPECT_LE(test::MaxAbsDiff(logits->data<float>() + r * logits->cols(), full[static_cast<size_t>(cuts[c] + r)].data(),
                                 static_cast<size_t>(logits->cols())),
                1e-5f)
          << "position " << cuts[c] + r;
  }
  // The last row of the all-positions output (reference kernels) is the last-position output.
  const auto full_ref = test::AllPositionLogits(model, ref.token_ids);
  EXPECT_LE(test::MaxAbsDiff(full_ref.back().data(), ref.last_logits.data(), full_ref.back().size()), 1e-4f);
}

TEST(ForwardTest, BadTokensAndPositionsAreErrors) {
  auto loaded = LoadModel(DataPath("micro-qwen2"));
  ASSERT_TRUE(loaded.ok());
  const Qwen2Model& model = *loaded->model;
  ContiguousKvCache cache(model.config(), 4);
  auto r = model.Forward(std::vector<int32_t>{1, 1024}, 0, cache, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("1024 is outside the vocabulary"), std::string::npos);
  EXPECT_FALSE(model.Forward(std::vector<int32_t>{-1}, 0, cache, false).ok());
  EXPECT_FALSE(model.Forward(std::vector<int32_t>{1, 2, 3}, 2, cache, false).ok());  // past the cache
  EXPECT_FALSE(model.Forward(std::vector<int32_t>{}, 0, cache, false).ok());
}

// A prompt computed in two passes at any split gives the logits of one pass bit for bit (chunked
// prefill and prefix-cache hits rely on it).
TEST(ForwardChunksTest, PrefillSplitAnywhereIsBitExact) {
  auto m = LoadModel(DataPath("micro-qwen2"));
  ASSERT_TRUE(m.ok());
  const auto& model = *m->model;
  ThreadPool pool(2);
  const kernels::ExecContext ctx{&pool, kernels::DetectIsa()};
  std::mt19937 rng(5);
  std::vector<int32_t> p(36);
  for (auto& t : p) t = std::uniform_int_distribution<int32_t>(0, 1022)(rng);
  ContiguousKvCache whole(model.config(), 64);
  auto a = model.Forward(p, 0, whole, false, ctx);
  for (int split : {1, 4, 16, 20, 32, 35}) {
    ContiguousKvCache c(model.config(), 64);
    std::vector<int32_t> p1(p.begin(), p.begin() + split), p2(p.begin() + split, p.end());
    ASSERT_TRUE(model.Forward(p1, 0, c, false, ctx).ok());
    auto b = model.Forward(p2, split, c, false, ctx);
    float diff = 0;
    for (int64_t v = 0; v < a->cols(); ++v) diff = std::max(diff, std::abs(a->data<float>()[v] - b->data<float>()[v]));
    EXPECT_EQ(diff, 0.0f) << "split " << split;
  }
}

}  // namespace
}  // namespace qb
