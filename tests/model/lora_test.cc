// LoRA adapters (model/lora_adapter.h, model/lora_apply.h) against the merged model: the logits
// of the base model with an adapter applied at run time must equal those of a checkpoint whose
// matrices are W + s B A, merged here in double precision from the adapter's files by code
// independent of the one under test. Also: what the loader refuses, and a batch mixing adapters.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <filesystem>
#include <fstream>

#include "common/model_runner.h"
#include "common/test_paths.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "formats/safetensors.h"
#include "formats/safetensors_writer.h"
#include "model/loader.h"
#include "model/lora_adapter.h"
#include "model/random_lora.h"
#include "tensor/dequantize.h"
#include "util/json.h"
#include "util/thread_pool.h"

namespace qb {
namespace {

namespace fs = std::filesystem;
using test::DataPath;
using test::ScratchDir;

const std::vector<int32_t> kPrompt = {17, 300, 5, 911, 42, 42, 7, 1000, 64, 3, 250, 512};

std::vector<float> RowsF32(const SafetensorsFile& f, const SafetensorsEntry& e) {
  const Tensor t = f.Load(e);
  std::vector<float> v(static_cast<size_t>(t.numel()));
  for (int64_t r = 0; r < t.rows(); ++r) DequantizeRow(t.dtype(), t.row(r), v.data() + r * t.cols(), t.cols());
  return v;
}

// Writes `base` with every adapted matrix replaced by W + s B A (f32), as a new checkpoint.
void WriteMerged(const std::string& base, const std::string& adapter, const std::string& out) {
  fs::create_directories(out);
  for (const char* f : {"config.json", "generation_config.json"}) fs::copy_file(fs::path(base) / f, fs::path(out) / f);
  const Json cfg = *ReadJsonFile(adapter + "/adapter_config.json");
  const double alpha = cfg["lora_alpha"].get<double>();
  const bool rslora = cfg.value("use_rslora", false);
  auto base_file = *SafetensorsFile::Open(base + "/model.safetensors");
  auto lora_file = *SafetensorsFile::Open(adapter + "/adapter_model.safetensors");
  SafetensorsWriter w;
  for (const SafetensorsEntry& e : base_file.entries()) {
    std::vector<float> v = RowsF32(base_file, e);
    // "model.layers.0.self_attn.q_proj.weight" -> "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    const std::string stem = e.name.substr(0, e.name.size() - std::string(".weight").size());
    const SafetensorsEntry* a = lora_file.Find("base_model.model." + stem + ".lora_A.weight");
    const SafetensorsEntry* b = lora_file.Find("base_model.model." + stem + ".lora_B.weight");
    if (e.name.ends_with(".weight") && a != nullptr && b != nullptr) {
      const std::vector<float> av = RowsF32(lora_file, *a), bv = RowsF32(lora_file, *b);
      const int64_t r = a->shape[0], in = a->shape[1], out_rows = b->shape[0];
      const double s = rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
      for (int64_t o = 0; o < out_rows; ++o)
        for (int64_t i = 0; i < in; ++i) {
          double d = 0;
          for (int64_t k = 0; k < r; ++k)
            d += static_cast<double>(bv[static_cast<size_t>(o * r + k)]) * av[static_cast<size_t>(k * in + i)];
          v[static_cast<size_t>(o * in + i)] = static_cast<float>(v[static_cast<size_t>(o * in + i)] + s * d);
        }
    }
    w.AddTensor(PendingTensor{e.name, DType::kF32, e.shape, [v = std::move(v)](uint8_t* dst) {
                                std::memcpy(dst, v.data(), v.size() * sizeof(float));
                              }});
  }
  ASSERT_TRUE(w.Write(out + "/model.safetensors").ok());
}

float MaxDiff(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t r = 0; r < a.size() && r < b.size(); ++r)
    for (size_t i = 0; i < a[r].size(); ++i) m = std::max(m, std::abs(a[r][i] - b[r][i]));
  return m;
}

std::shared_ptr<const Qwen2Model> Load(const std::string& path, bool interleave = true) {
  LoadOptions o;
  o.interleave = interleave;
  auto m = LoadModel(path, o);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? m->model : nullptr;
}

LoraAdapters One(const std::string& dir, const ModelConfig& c) {
  auto a = LoadLoraAdapter(dir, c, "a");
  EXPECT_TRUE(a.ok()) << a.status().ToString();
  return {std::make_shared<const LoraAdapter>(std::move(*a))};
}

struct MergeCase {
  const char* name;
  const char* targets;
  int64_t rank;
  bool rslora;
  DType dtype;
};

std::ostream& operator<<(std::ostream& os, const MergeCase& c) { return os << c.name; }

class LoraMergeTest : public ::testing::TestWithParam<MergeCase> {};

TEST_P(LoraMergeTest, LogitsEqualTheMergedModel) {
  const MergeCase& c = GetParam();
  const std::string base = DataPath("micro-qwen2");
  const std::string dir = ScratchDir();
  auto config = LoadModelConfig(base);
  ASSERT_TRUE(config.ok());
  RandomLoraOptions o;
  o.out = dir + "/adapter";
  o.rank = c.rank;
  o.alpha = 32;
  o.rslora = c.rslora;
  o.dtype = c.dtype;
  o.seed = 5;
  o.targets = *ParseLoraTargets(c.targets);
  ASSERT_TRUE(WriteRandomLora(*config, o).ok());
  WriteMerged(base, o.out, dir + "/merged");

  const auto merged = Load(dir + "/merged");
  const auto fused = Load(base);  // q|k|v and gate|up joined at load
  const auto apart = Load(base, /*interleave=*/false);
  ASSERT_TRUE(merged && fused && apart);
  const LoraAdapters lora = One(o.out, *config);
  const auto want = test::AllPositionLogits(*merged, kPrompt);
  const auto plain = test::AllPositionLogits(*fused, kPrompt);
  // The adapter matters (else the comparisons below would prove nothing) ...
  EXPECT_GT(MaxDiff(plain, want), 0.05f);
  // ... and applied at run time it gives the merged model's logits, through either layout.
  EXPECT_LT(MaxDiff(test::AllPositionLogits(*fused, kPrompt, kernels::ExecContext::Reference(), &lora), want), 2e-5f);
  EXPECT_LT(MaxDiff(test::AllPositionLogits(*apart, kPrompt, kernels::ExecContext::Reference(), &lora), want), 2e-5f);
  // The fast kernels on two threads (f32 activations for the BF16 base: within 1e-3 of f32).
  ThreadPool pool(2);
  const kernels::ExecContext fast{&pool, kernels::DetectIsa() == kernels::Isa::kAvx512Bf16 ? kernels::Isa::kAvx512Vnni
                                                                                        : kernels::DetectIsa()};
  EXPECT_LT(MaxDiff(test::AllPositionLogits(*fused, kPrompt, fast, &lora), want), 1e-3f);
}

INSTANTIATE_TEST_SUITE_P(Adapters, LoraMergeTest,
                         ::testing::Values(MergeCase{"AllProjectionsBf16", "all", 8, false, DType::kBF16},
                                           MergeCase{"QvRsloraF32", "q_proj,v_proj", 4, true, DType::kF32},
                                           MergeCase{"MlpOnlyF16", "gate_proj,up_proj,down_proj", 16, false,
                                                     DType::kF16}),
                         [](const auto& p) { return std::string(p.param.name); });

TEST(LoraTest, LoadsWhatWasWritten) {
  const std::string base = DataPath("micro-qwen2");
  auto config = LoadModelConfig(base);
  ASSERT_TRUE(config.ok());
  RandomLoraOptions o;
  o.out = ScratchDir() + "/a";
  o.rank = 4;
  o.alpha = 8;
  o.dtype = DType::kF32;
  o.targets = {LoraTarget::kK, LoraTarget::kDown};
  ASSERT_TRUE(WriteRandomLora(*config, o).ok());
  auto a = LoadLoraAdapter(o.out, *config, "mine");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->name, "mine");
  EXPECT_EQ(a->rank, 4);
  EXPECT_EQ(a->targets, (std::vector<std::string>{"k_proj", "down_proj"}));
  const ModelConfig& c = *config;
  const int64_t per_layer = 4 * (c.hidden_size + c.kv_dim()) + 4 * (c.intermediate_size + c.hidden_size);
  EXPECT_EQ(a->parameters, per_layer * c.num_layers);
  EXPECT_EQ(a->bytes, a->parameters * 4);
  EXPECT_FALSE(a->at(0, LoraTarget::kQ).defined());
  // B is held transposed, times the scale alpha / r = 2.
  auto f = *SafetensorsFile::Open(o.out + "/adapter_model.safetensors");
  const auto* e = f.Find("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight");
  ASSERT_NE(e, nullptr);
  const std::vector<float> raw = RowsF32(f, *e);  // [out, 4]
  const Tensor& bt = a->at(1, LoraTarget::kDown).bt;
  ASSERT_EQ(bt.rows(), 4);
  ASSERT_EQ(bt.cols(), c.hidden_size);
  for (int64_t o2 = 0; o2 < c.hidden_size; o2 += 7)
    for (int64_t k = 0; k < 4; ++k)
      EXPECT_EQ(bt.data<float>()[k * c.hidden_size + o2], 2.0f * raw[static_cast<size_t>(o2 * 4 + k)]);
}

// llama.cpp's GGUF adapters (convert_lora_to_gguf.py's layout: blk.N.attn_q.weight.lora_a with
// ggml dims [in, r], lora_b [r, out], adapter.lora.alpha): the same matrices as a PEFT directory
// give the same logits; Q8_0 ones come within their quantization error.
TEST(LoraTest, GgufAdaptersMatchTheirPeftTwins) {
  const std::string base = DataPath("micro-qwen2");
  auto config = LoadModelConfig(base);
  ASSERT_TRUE(config.ok());
  const auto model = Load(base);
  ASSERT_TRUE(model);
  const std::string dir = ScratchDir();
  for (bool rslora : {false}) {
    RandomLoraOptions o;
    o.rank = 8;
    o.alpha = 16;
    o.rslora = rslora;
    o.dtype = DType::kF16;
    o.seed = 11;
    o.out = dir + (rslora ? "/peft-rs" : "/peft");
    ASSERT_TRUE(WriteRandomLora(*config, o).ok());
    const std::string peft = o.out;
    o.out = dir + (rslora ? "/adapter-rs.gguf" : "/adapter.gguf");
    ASSERT_TRUE(WriteRandomLora(*config, o).ok());
    auto g = GgufFile::Open(o.out);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    EXPECT_EQ(g->GetString("general.type"), "adapter");
    EXPECT_EQ(g->GetString("adapter.type"), "lora");
    const GgufTensorInfo* a = g->FindTensor("blk.1.ffn_down.weight.lora_a");
    const GgufTensorInfo* b = g->FindTensor("blk.1.ffn_down.weight.lora_b");
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->ne, (std::vector<uint64_t>{static_cast<uint64_t>(config->intermediate_size), 8}));
    EXPECT_EQ(b->ne, (std::vector<uint64_t>{8, static_cast<uint64_t>(config->hidden_size)}));
    const LoraAdapters from_peft = One(peft, *config), from_gguf = One(o.out, *config);
    EXPECT_EQ(from_gguf[0]->targets, from_peft[0]->targets);
    const auto want = test::AllPositionLogits(*model, kPrompt, kernels::ExecContext::Reference(), &from_peft);
    EXPECT_LT(MaxDiff(test::AllPositionLogits(*model, kPrompt, kernels::ExecContext::Reference(), &from_gguf), want), 1e-5f)
        << rslora;
  }
  // Q8_0 matrices (rank 32): within the quantization's error of the f32 twin.
  RandomLoraOptions q;
  q.rank = 32;
  q.alpha = 32;
  q.seed = 3;
  q.dtype = DType::kF32;
  q.out = dir + "/f32";
  ASSERT_TRUE(WriteRandomLora(*config, q).ok());
  const LoraAdapters exact = One(q.out, *config);
  q.dtype = DType::kQ8_0;
  q.out = dir + "/q8.gguf";
  ASSERT_TRUE(WriteRandomLora(*config, q).ok());
  const LoraAdapters q8 = One(q.out, *config);
  EXPECT_EQ(q8[0]->at(0, LoraTarget::kQ).a.dtype(), DType::kQ8_0);
  const auto plain = test::AllPositionLogits(*model, kPrompt);
  const auto want = test::AllPositionLogits(*model, kPrompt, kernels::ExecContext::Reference(), &exact);
  const auto got = test::AllPositionLogits(*model, kPrompt, kernels::ExecContext::Reference(), &q8);
  EXPECT_GT(MaxDiff(plain, want), 0.05f);
  EXPECT_LT(MaxDiff(got, want), 0.1f * MaxDiff(plain, want));
  // llama.cpp's GGUF adapters have no rsLoRA.
  q.dtype = DType::kF16;
  q.rslora = true;
  EXPECT_FALSE(WriteRandomLora(*config, q).ok());
  // A model file is not an adapter.
  auto wrong = LoadLoraAdapter(DataPath("micro-qwen2/micro-qwen2-q8_0.gguf"), *config, "x");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("not a LoRA adapter"), std::string::npos) << wrong.status().message();
}

// GGUF adapters qwenbox must refuse (or, as llama.cpp does, partly skip), each with a message.
TEST(LoraTest, GgufAdapterRefusals) {
  auto config = LoadModelConfig(DataPath("micro-qwen2"));
  ASSERT_TRUE(config.ok());
  const std::string dir = ScratchDir();
  const int64_t h = config->hidden_size, q = config->q_dim();
  auto matrix = [](std::string name, int64_t rows, int64_t cols) {
    return PendingTensor{std::move(name), DType::kF32, {rows, cols},
                         [n = rows * cols](uint8_t* dst) { std::memset(dst, 0, static_cast<size_t>(n) * 4); }};
  };
  struct Case {
    const char* name;
    std::function<void(GgufWriter&)> change;
    const char* error;  // empty: it loads
  };
  const std::vector<Case> cases = {
      {"plain", [](GgufWriter&) {}, ""},
      {"norms", [&](GgufWriter& w) { w.AddTensor(PendingTensor{"blk.0.attn_norm.weight", DType::kF32, {h},
                                                                [h](uint8_t* d) { std::memset(d, 0, static_cast<size_t>(h) * 4); }}); }, ""},
      {"embedding", [&](GgufWriter& w) { w.AddTensor(matrix("token_embd.weight.lora_a", 4, h)); }, "embedding"},
      {"layer", [&](GgufWriter& w) { w.AddTensor(matrix("blk.99999999999999999999.attn_q.weight.lora_a", 4, h)); }, "layer number"},
      {"alora", [](GgufWriter& w) { w.Add("adapter.alora.invocation_tokens", GgufI32Array({1, 2})); }, "aLoRA"},
      {"alpha", [](GgufWriter& w) { w.Add("adapter.lora.alpha", GgufString("16")); }, "adapter.lora.alpha"},
  };
  for (const Case& c : cases) {
    GgufWriter w;
    w.Add("general.architecture", GgufString("qwen2"));
    w.Add("general.type", GgufString("adapter"));
    w.Add("adapter.type", GgufString("lora"));
    if (std::string_view(c.name) != "alpha") w.Add("adapter.lora.alpha", GgufF32(8));
    w.AddTensor(matrix("blk.0.attn_q.weight.lora_a", 4, h));
    w.AddTensor(matrix("blk.0.attn_q.weight.lora_b", q, 4));
    c.change(w);
    const std::string path = dir + "/" + c.name + ".gguf";
    ASSERT_TRUE(w.Write(path).ok()) << c.name;
    auto a = LoadLoraAdapter(path, *config, "x");
    if (*c.error == '\0') {
      ASSERT_TRUE(a.ok()) << c.name << ": " << a.status().ToString();
      EXPECT_EQ(a->targets, std::vector<std::string>{"q_proj"});
      EXPECT_EQ(a->alpha, 8.0);
    } else {
      ASSERT_FALSE(a.ok()) << c.name;
      EXPECT_NE(a.status().message().find(c.error), std::string::npos) << c.name << ": " << a.status().message();
    }
  }
}

TEST(LoraTest, MixedBatchRowsEqualTheirOwnRuns) {
  // Three sequences in one pass (base, adapter 1, adapter 2, interleaved in the batch as
  // continuous batching would put them): each row's logits are those of its sequence alone.
  const std::string base = DataPath("micro-qwen2");
  auto config = LoadModelConfig(base);
  ASSERT_TRUE(config.ok());
  const auto model = Load(base);
  ASSERT_TRUE(model);
  LoraAdapters set;
  const std::string dir = ScratchDir();
  for (uint64_t seed : {1, 2}) {
    RandomLoraOptions o;
    o.out = dir + "/s" + std::to_string(seed);
    o.seed = seed;
    o.alpha = 32;
    ASSERT_TRUE(WriteRandomLora(*config, o).ok());
    set.push_back(std::make_shared<const LoraAdapter>(*LoadLoraAdapter(o.out, *config, o.out)));
  }
  const std::vector<std::vector<int32_t>> seqs = {{5, 6, 7, 8, 9}, {100, 200, 300}, {9, 8, 7, 6}};
  const std::vector<int32_t> adapter_of = {0, 1, 2};
  // One KV pool of 3 blocks of 8 tokens: sequence i in block i.
  KvStorage kv(config->num_layers, config->kv_dim(), KvLayout{3, 8, DType::kF32});
  std::vector<std::vector<int32_t>> tables = {{0}, {1}, {2}};
  ForwardBatch b;
  b.lora = &set;
  size_t longest = 0;
  for (const auto& s : seqs) longest = std::max(longest, s.size());
  for (size_t p = 0; p < longest; ++p)
    for (size_t i = 0; i < seqs.size(); ++i) {
      if (p >= seqs[i].size()) continue;
      b.tokens.push_back(seqs[i][p]);
      b.positions.push_back(static_cast<int32_t>(p));
      b.slots.push_back(static_cast<int32_t>(i * 8 + p));
      b.tables.emplace_back(tables[i]);
      b.adapters.push_back(adapter_of[i]);
      if (p + 1 == seqs[i].size()) b.logit_rows.push_back(static_cast<int32_t>(b.tokens.size() - 1));
    }
  ThreadPool pool(2);
  const kernels::ExecContext ctx{&pool, kernels::DetectIsa()};
  auto logits = model->Forward(b, kv, ctx);
  ASSERT_TRUE(logits.ok()) << logits.status().ToString();
  // logit_rows are in order of the sequences' last tokens: 1 (3 tokens), 2 (4), 0 (5).
  const std::vector<size_t> row_of = {2, 0, 1};
  for (size_t i = 0; i < seqs.size(); ++i) {
    const auto alone = test::AllPositionLogits(*model, seqs[i], ctx, adapter_of[i] ? &set : nullptr, adapter_of[i]);
    const float* got = logits->data<float>() + static_cast<int64_t>(row_of[i]) * logits->cols();
    float diff = 0;
    for (int64_t v = 0; v < logits->cols(); ++v) diff = std::max(diff, std::abs(got[v] - alone.back()[static_cast<size_t>(v)]));
    EXPECT_LT(diff, 1e-4f) << "sequence " << i;
  }
  // An adapter number beyond the set is refused, not read out of bounds.
  b.adapters[0] = 3;
  EXPECT_FALSE(model->Forward(b, kv, ctx).ok());
}

// Writes an adapter, then lets `edit` break it; the load must fail with `want` in the message.
void ExpectRefused(const std::function<void(const std::string& dir)>& edit, const std::string& want,
                   const std::string& preset_model = "") {
  const std::string base = DataPath("micro-qwen2");
  auto config = LoadModelConfig(base);
  ASSERT_TRUE(config.ok());
  RandomLoraOptions o;
  o.out = ScratchDir() + "/bad" + std::to_string(std::hash<std::string>{}(want));
  o.rank = 2;
  o.targets = {LoraTarget::kQ};
  auto write_config = *config;
  if (!preset_model.empty()) write_config.hidden_size *= 2;  // an adapter for another model
  ASSERT_TRUE(WriteRandomLora(write_config, o).ok());
  if (edit) edit(o.out);
  auto a = LoadLoraAdapter(o.out, *config, "x");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find(want), std::string::npos) << a.status().message();
}

void EditConfig(const std::string& dir, const std::function<void(Json&)>& edit) {
  Json j = *ReadJsonFile(dir + "/adapter_config.json");
  edit(j);
  std::ofstream(dir + "/adapter_config.json") << j.dump();
}

TEST(LoraTest, RefusesWhatItCannotApply) {
  ExpectRefused([](const std::string& d) { EditConfig(d, [](Json& j) { j["use_dora"] = true; }); }, "DoRA");
  ExpectRefused([](const std::string& d) { EditConfig(d, [](Json& j) { j["fan_in_fan_out"] = true; }); },
                "fan_in_fan_out");
  ExpectRefused([](const std::string& d) { EditConfig(d, [](Json& j) { j["bias"] = "lora_only"; }); }, "biases");
  ExpectRefused(
      [](const std::string& d) { EditConfig(d, [](Json& j) { j["modules_to_save"] = Json::array({"lm_head"}); }); },
      "modules_to_save");
  ExpectRefused([](const std::string& d) { EditConfig(d, [](Json& j) { j["alpha_pattern"] = {{"q_proj", 4}}; }); },
                "alpha_pattern");
  ExpectRefused([](const std::string& d) { EditConfig(d, [](Json& j) { j["peft_type"] = "IA3"; }); }, "IA3");
  ExpectRefused([](const std::string& d) { EditConfig(d, [](Json& j) { j.erase("r"); }); }, "\"r\"");
  ExpectRefused(nullptr, "is the adapter for another model?", "wider");
  ExpectRefused(
      [](const std::string& d) {
        fs::rename(d + "/adapter_model.safetensors", d + "/adapter_model.bin");
      },
      "safe_serialization");
  ExpectRefused([](const std::string& d) { fs::remove(d + "/adapter_config.json"); }, "adapter_config.json");
  // Tensors: only lora_B of a module, a layer the model lacks, lm_head, a truncated file.
  const auto rewrite = [](const std::string& d, const std::function<void(SafetensorsWriter&, const SafetensorsFile&)>& f) {
    const std::string path = d + "/adapter_model.safetensors";
    const std::string bytes = test::ReadBytes(path);
    test::WriteBytes(d + "/old.safetensors", bytes);
    auto old = *SafetensorsFile::Open(d + "/old.safetensors");
    SafetensorsWriter w;
    f(w, old);
    ASSERT_TRUE(w.Write(path).ok());
  };
  const auto copy = [](SafetensorsWriter& w, const SafetensorsFile& f, const SafetensorsEntry& e, std::string name) {
    const std::vector<float> v = RowsF32(f, e);
    w.AddTensor(PendingTensor{std::move(name), DType::kF32, e.shape, [v](uint8_t* dst) {
                                std::memcpy(dst, v.data(), v.size() * sizeof(float));
                              }});
  };
  ExpectRefused(
      [&](const std::string& d) {
        rewrite(d, [&](SafetensorsWriter& w, const SafetensorsFile& f) {
          for (const auto& e : f.entries())
            if (e.name.find("lora_A") == std::string::npos) copy(w, f, e, e.name);
        });
      },
      "has lora_B but not lora_A");
  ExpectRefused(
      [&](const std::string& d) {
        rewrite(d, [&](SafetensorsWriter& w, const SafetensorsFile& f) {
          for (const auto& e : f.entries()) {
            std::string n = e.name;
            if (const auto at = n.find("layers.0."); at != std::string::npos) n.replace(at, 9, "layers.7.");
            copy(w, f, e, n);
          }
        });
      },
      "the model has 2 layers");
  ExpectRefused(
      [&](const std::string& d) {
        rewrite(d, [&](SafetensorsWriter& w, const SafetensorsFile& f) {
          copy(w, f, f.entries()[0], "base_model.model.lm_head.lora_A.weight");
        });
      },
      "lm_head");
  ExpectRefused(
      [&](const std::string& d) {
        rewrite(d, [&](SafetensorsWriter& w, const SafetensorsFile& f) {
          for (const auto& e : f.entries()) {
            copy(w, f, e, e.name);
            std::string twin = e.name;
            twin.insert(twin.size() - std::string(".weight").size(), ".default");
            copy(w, f, e, twin);
          }
        });
      },
      "are the same matrix");
  ExpectRefused(
      [](const std::string& d) {
        const std::string path = d + "/adapter_model.safetensors";
        const std::string bytes = test::ReadBytes(path);
        test::WriteBytes(path, bytes.substr(0, bytes.size() - 10));
      },
      "adapter_model.safetensors");
}

}  // namespace
}  // namespace qb
