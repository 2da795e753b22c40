// The CUDA model against the reference logits shipped with the fixtures (the same files and
// helpers as tests/model/forward_test.cc): micro-qwen2 (BF16 safetensors), its GPTQ (group 128;
// act-order group 32) and AWQ versions, and tiny-qwen2 when ../shared/testdata has it.
// Three variants per model:
// - "auto": what serving runs (cuBLAS with bf16 activations for the prompt, bf16 KV cache):
//   BF16-level tolerance, 2e-2 relative to the logits' norm;
// - "gemv": every token through the GEMV (f32 activations, exact weights) and an f32 KV cache:
//   only summation order differs from the f32 reference, 2e-4;
// - "gemv_v1": the same with the first version's kernels (unfused ops, GEMV v1), 2e-4;
// - "gemv_mma" (GPTQ/AWQ only): "gemv" with the int4 weights in the tensor-core layout, whose
//   kernel rounds activations to f16, 5e-3. "auto" uses that layout too (the default), "gemv"
//   and "gemv_v1" the CUDA-core one.
// Then a paged batch: three sequences fed in interleaved chunks (chunked prefill, then decode
// steps replayed from CUDA graphs) through shuffled block tables must give the same logits as
// each sequence run alone. With QB_CUDA_LOGITS_DUMP=DIR, logits are written there as JSON for
// the transformers comparison in scripts/cuda-device-check.sh.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <random>

#include "common/reference.h"
#include "common/test_paths.h"
#include "cuda/cuda_test_util.h"
#include "model/loader.h"
#include "model/qwen2_cuda.h"
#include "sampling/sampler.h"
#include "util/json.h"

namespace qb {
namespace {

CudaModelOptions TestOptions() {
  CudaModelOptions o;
  o.max_tokens = 128;
  o.max_logit_rows = 128;
  o.max_seqs = 8;
  o.max_blocks_per_seq = 64;
  o.num_blocks = 256;
  o.block_size = 4;
  return o;
}

// One sequence alone: blocks 0.. in order; logits of every position or of the last.
std::vector<std::vector<float>> RunAlone(CudaQwen2Model& m, const std::vector<int32_t>& ids, bool all_rows) {
  const int64_t bs = m.options().block_size;
  std::vector<int32_t> table(static_cast<size_t>((static_cast<int64_t>(ids.size()) + bs - 1) / bs));
  std::iota(table.begin(), table.end(), 0);
  ForwardBatch b;
  b.tokens = ids;
  for (size_t i = 0; i < ids.size(); ++i) {
    b.positions.push_back(static_cast<int32_t>(i));
    b.slots.push_back(static_cast<int32_t>(i));
    b.tables.emplace_back(table);
    if (all_rows || i + 1 == ids.size()) b.logit_rows.push_back(static_cast<int32_t>(i));
  }
  auto logits = m.Forward(b);
  EXPECT_TRUE(logits.ok()) << logits.status().ToString();
  std::vector<std::vector<float>> rows;
  if (!logits.ok()) return rows;
  for (int64_t r = 0; r < logits->rows(); ++r)
    rows.emplace_back(logits->data<float>() + r * logits->cols(), logits->data<float>() + (r + 1) * logits->cols());
  return rows;
}

void Dump(const std::string& tag, const test::Reference& ref, const std::vector<float>& logits) {
  const char* dir = std::getenv("QB_CUDA_LOGITS_DUMP");
  if (dir == nullptr || *dir == '\0') return;
  Json j;
  j["tag"] = tag;
  j["reference"] = ref.name;
  j["token_ids"] = ref.token_ids;
  j["logits"] = logits;
  std::ofstream(std::string(dir) + "/" + tag + "_" + ref.name + ".json") << j.dump();
}

struct ModelCase {
  const char* name;
  const char* dir;      // under tests/data, or "shared:" + dir under ../shared/testdata
  const char* ref_dir;  // relative to the model directory
  double auto_tol, gemv_tol;
};

std::ostream& operator<<(std::ostream& os, const ModelCase& c) { return os << c.name; }

class CudaModelTest : public ::testing::TestWithParam<ModelCase> {};

TEST_P(CudaModelTest, LogitsMatchTheReference) {
  QB_REQUIRE_CUDA();
  const ModelCase& c = GetParam();
  std::string dir = c.dir;
  if (dir.rfind("shared:", 0) == 0) {
    dir = test::SharedPath(dir.substr(7));
    if (dir.empty()) GTEST_SKIP() << c.dir << " is not present";
  } else {
    dir = test::DataPath(dir);
  }
  LoadOptions lo;
  lo.interleave = false;  // the CPU-only repacking is of no use to the GPU
  auto loaded = LoadModel(dir, lo);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const Qwen2Model& cpu = *loaded->model;
  // "gemv_v1": the "gemv" variant with the first version's kernels (unfused ops, GEMV v1).
  const bool int4 = cpu.weights().layers[0].wq.dtype() == DType::kQ4Z;
  for (const std::string variant : {"auto", "gemv", "gemv_v1", "gemv_mma"}) {
    const bool gemv = variant != "auto", v1 = variant == "gemv_v1", mma = variant == "gemv_mma";
    if (mma && !int4) continue;
    CudaModelOptions o = TestOptions();
    o.int4_tensor_cores = variant == "auto" || mma;
    if (gemv) {
      o.linear_path = cuda::LinearPath::kGemv;
      o.kv_dtype = DType::kF32;
    }
    o.fused_ops = !v1;
    cuda::SetGemvVersion(v1 ? 1 : 2);
    auto model = CudaQwen2Model::Create(cpu.config(), cpu.weights(), o);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    const double tol = mma ? 5e-3 : gemv ? c.gemv_tol : c.auto_tol;
    double worst = 0;
    float worst_abs = 0;
    int argmax_same = 0, refs = 0;
    for (const std::string& path : test::ReferenceFiles(dir + "/" + c.ref_dir)) {
      const test::Reference ref = test::LoadReference(path);
      const auto rows = RunAlone(**model, ref.token_ids, false);
      ASSERT_EQ(rows.size(), 1u);
      const std::vector<float>& got = rows[0];
      ASSERT_EQ(got.size(), ref.last_logits.size());
      const double err = test::RelError(got, ref.last_logits);
      EXPECT_LE(err, tol) << ref.name << " " << variant;
      worst = std::max(worst, err);
      worst_abs = std::max(worst_abs, test::MaxAbsDiff(got.data(), ref.last_logits.data(), got.size()));
      argmax_same += Argmax(got) == Argmax(ref.last_logits);
      ++refs;
      if (!v1) Dump(std::string(c.name) + "_" + variant, ref, got);
    }
    ASSERT_GT(refs, 0);
    std::printf("[ %s %s ] over %d prompts: relative error %.3g (tolerance %.1g), max |diff| %.3g, argmax equal %d/%d\n",
                c.name, variant.c_str(), refs, worst, tol, static_cast<double>(worst_abs), argmax_same, refs);
    RecordProperty(variant + "_relative_error", std::to_string(worst));
  }
  cuda::SetGemvVersion(2);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, CudaModelTest,
    ::testing::Values(ModelCase{"micro_bf16", "micro-qwen2", "reference/f32", 2e-2, 2e-4},
                      ModelCase{"micro_gptq", "micro-qwen2-gptq", "reference", 2e-2, 2e-4},
                      ModelCase{"micro_gptq_descact", "micro-qwen2-gptq-descact", "reference", 2e-2, 2e-4},
                      ModelCase{"micro_awq", "micro-qwen2-awq", "reference", 2e-2, 2e-4},
                      // f32 weights become bf16 on the GPU: BF16-level in both variants.
                      ModelCase{"tiny_qwen2", "shared:tiny-qwen2", "reference", 3e-2, 3e-2}),
    [](const auto& p) { return std::string(p.param.name); });

TEST(CudaModelPagedTest, InterleavedSequencesMatchEachAlone) {
  QB_REQUIRE_CUDA();
  auto loaded = LoadModel(test::DataPath("micro-qwen2-gptq-descact"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const Qwen2Model& cpu = *loaded->model;
  CudaModelOptions o = TestOptions();
  o.linear_path = cuda::LinearPath::kGemv;  // per-token results independent of the batch
  auto alone = CudaQwen2Model::Create(cpu.config(), cpu.weights(), o);
  o.use_graphs = true;
  auto paged = CudaQwen2Model::Create(cpu.config(), cpu.weights(), o);
  ASSERT_TRUE(alone.ok() && paged.ok());

  // Three prompts, each followed by three decode tokens.
  std::vector<std::vector<int32_t>> seqs;
  for (const std::string& path : test::ReferenceFiles(test::DataPath("micro-qwen2-gptq-descact/reference"))) {
    seqs.push_back(test::LoadReference(path).token_ids);
    for (int32_t id : {5, 900, 77}) seqs.back().push_back(id);
  }
  ASSERT_EQ(seqs.size(), 3u);
  std::vector<std::vector<std::vector<float>>> expected;
  for (const auto& s : seqs) expected.push_back(RunAlone(**alone, s, true));

  const int64_t bs = o.block_size;
  std::vector<int32_t> free_blocks(static_cast<size_t>(o.num_blocks));
  std::iota(free_blocks.begin(), free_blocks.end(), 0);
  std::shuffle(free_blocks.begin(), free_blocks.end(), std::mt19937(31));
  std::vector<std::vector<int32_t>> tables;
  size_t next = 0;
  for (const auto& s : seqs) {
    tables.emplace_back();
    for (size_t b = 0; b < (s.size() + static_cast<size_t>(bs) - 1) / static_cast<size_t>(bs); ++b)
      tables.back().push_back(free_blocks[next++]);
  }
  std::vector<size_t> done(seqs.size(), 0);
  const size_t chunks[4] = {1, 7, 2, 13};
  double worst = 0;
  int steps = 0;
  for (int step = 0; step < 200; ++step) {
    ForwardBatch b;
    std::vector<std::pair<size_t, size_t>> who;  // (sequence, position) of each token
    for (size_t s = 0; s < seqs.size(); ++s) {
      const size_t left = seqs[s].size() - done[s];
      if (left == 0) continue;
      // Prompt chunks of varying size; the last three tokens one per step (decode).
      const size_t take = left <= 3 ? 1 : std::min(left - 3, chunks[(static_cast<size_t>(step) + s) % 4]);
      for (size_t i = 0; i < take; ++i) {
        const size_t p = done[s] + i;
        b.tokens.push_back(seqs[s][p]);
        b.positions.push_back(static_cast<int32_t>(p));
        b.slots.push_back(tables[s][p / static_cast<size_t>(bs)] * static_cast<int32_t>(bs) +
                          static_cast<int32_t>(p % static_cast<size_t>(bs)));
        b.tables.emplace_back(tables[s]);
        b.logit_rows.push_back(static_cast<int32_t>(b.tokens.size() - 1));
        who.emplace_back(s, p);
      }
      done[s] += take;
    }
    if (b.tokens.empty()) break;
    auto logits = (*paged)->Forward(b);
    ASSERT_TRUE(logits.ok()) << logits.status().ToString();
    ++steps;
    for (size_t r = 0; r < who.size(); ++r) {
      const auto& e = expected[who[r].first][who[r].second];
      const double err = test::RelError(logits->data<float>() + r * e.size(), e.data(), e.size());
      worst = std::max(worst, err);
      // Split-key attention merges partial softmaxes in an order that depends on how many
      // (token, head) pairs a step has, so the sequences agree to f32 rounding, not bitwise.
      EXPECT_LE(err, 1e-5) << "step " << step << " sequence " << who[r].first << " position " << who[r].second;
    }
  }
  std::printf("[ paged batch ] %d steps, worst relative difference to the sequences alone: %.3g\n", steps, worst);
}

}  // namespace
}  // namespace qb
