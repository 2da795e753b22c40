#include "model/loader.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "common/model_runner.h"
#include "common/test_paths.h"
#include "formats/safetensors.h"
#include "formats/safetensors_writer.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"
#include "model/weights.h"
#include "tensor/interleave.h"
#include "util/json.h"

namespace qb {
namespace {

namespace fs = std::filesystem;
using test::DataPath;
using test::ScratchDir;

std::string MakeRandom(const std::string& out, bool gguf, DType dtype, uint64_t shard_bytes = 0,
                       bool tied = false) {
  ModelPreset p = FindPreset("micro").value();
  p.config.tie_word_embeddings = tied;
  RandomCheckpointOptions o;
  o.out = out;
  o.gguf = gguf;
  o.dtype = dtype;
  o.seed = 42;
  o.max_shard_bytes = shard_bytes;
  Status s = WriteRandomCheckpoint(p, o);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

// Rewrites dir/model.safetensors through `edit`, which may drop (return false) or change entries.
void RewriteSafetensors(const std::string& dir, const std::function<bool(PendingTensor&)>& edit) {
  const std::string path = dir + "/model.safetensors";
  auto f = std::make_shared<SafetensorsFile>(SafetensorsFile::Open(path).value());
  SafetensorsWriter w;
  std::vector<std::string> copies;
  for (const auto& e : f->entries()) {
    Tensor t = f->Load(e);
    std::string bytes(static_cast<const char*>(t.raw()), t.nbytes());
    PendingTensor p{e.name, e.dtype, e.shape, [bytes](uint8_t* d) { std::memcpy(d, bytes.data(), bytes.size()); }};
    if (edit(p)) w.AddTensor(p);
  }
  f.reset();
  ASSERT_TRUE(w.Write(path + ".new").ok());
  fs::rename(path + ".new", path);
}

TEST(LoaderTest, MappedEmbeddingBytesCountOnlyAnEmbeddingStillInTheFile) {
  // micro-qwen2: untied, BF16 safetensors. As stored, the embedding is a view of the file;
  // converted by --quant it has memory of its own.
  auto stored = LoadModel(DataPath("micro-qwen2"));
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  const Tensor& e = stored->model->weights().token_embedding;
  EXPECT_FALSE(e.writable());
  EXPECT_EQ(MappedEmbeddingBytes(stored->model->weights()), static_cast<int64_t>(e.nbytes()));
  LoadOptions o;
  o.quant = "q8_0";
  auto converted = LoadModel(DataPath("micro-qwen2"), o);
  ASSERT_TRUE(converted.ok()) << converted.status().ToString();
  EXPECT_TRUE(converted->model->weights().token_embedding.writable());
  EXPECT_EQ(MappedEmbeddingBytes(converted->model->weights()), 0);
}

TEST(LoaderTest, MissingPathNamesIt) {
  auto r = LoadModel("/no/such/model");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/no/such/model"), std::string::npos);
}

TEST(LoaderTest, DirectoryWithoutConfig) {
  auto r = LoadModel(ScratchDir());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("config.json"), std::string::npos) << r.status().message();
}

TEST(LoaderTest, Int4CheckpointsLoadAsQ4Z) {
  auto gptq = LoadModel(DataPath("micro-qwen2-gptq"));
  ASSERT_TRUE(gptq.ok()) << gptq.status().ToString();
  const LayerWeights& l = gptq->model->weights().layers[0];
  EXPECT_EQ(l.wq.dtype(), DType::kQ4Z);
  EXPECT_FALSE(l.wq_perm.defined());  // group 128 in order: no permutation
  // The worked example of the fixture's README: W[0][0..3] of layer 0's q_proj.
  std::vector<float> row(256);
  DequantizeMatrixRow(l.wq.raw(), l.wq.dtype(), 256, 0, row.data());
  EXPECT_EQ(row[0], 0.037628173828125f);
  EXPECT_EQ(row[1], 0.06584930419921875f);
  EXPECT_EQ(row[2], 0.0f);
  auto act = LoadModel(DataPath("micro-qwen2-gptq-descact"));
  ASSERT_TRUE(act.ok()) << act.status().ToString();
  EXPECT_TRUE(act->model->weights().layers[0].wq_perm.defined());
  auto awq = LoadModel(DataPath("micro-qwen2-awq"));
  ASSERT_TRUE(awq.ok()) << awq.status().ToString();
  DequantizeMatrixRow(awq->model->weights().layers[0].wq.raw(), DType::kQ4Z, 256, 0, row.data());
  EXPECT_EQ(row[0], -0.016357421875f);
}

TEST(LoaderTest, UnsupportedQuantizationIsRefusedClearly) {
  const std::string dir = ScratchDir();
  for (const char* f : {"model.safetensors", "generation_config.json"})
    fs::copy_file(DataPath(std::string("micro-qwen2-gptq/") + f), dir + "/" + f);
  Json cfg = ReadJsonFile(DataPath("micro-qwen2-gptq/config.json")).value();
  cfg["quantization_config"]["bits"] = 8;
  test::WriteBytes(dir + "/config.json", cfg.dump());
  auto r = LoadModel(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(r.status().message().find("8-bit gptq is not supported"), std::string::npos) << r.status().message();
  cfg["quantization_config"]["bits"] = 4;
  cfg["quantization_config"]["quant_method"] = "bitsandbytes";
  test::WriteBytes(dir + "/config.json", cfg.dump());
  auto b = LoadModel(dir);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("\"bitsandbytes\" is not supported"), std::string::npos) << b.status().message();
}

TEST(LoaderTest, MissingTensorIsNamed) {
  const std::string dir = MakeRandom(ScratchDir() + "/m", false, DType::kF32);
  RewriteSafetensors(dir, [](PendingTensor& t) { return t.name != "model.layers.1.mlp.up_proj.weight"; });
  auto r = LoadModel(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("missing tensor model.layers.1.mlp.up_proj.weight"), std::string::npos)
      << r.status().message();
}

TEST(LoaderTest, WrongShapeIsNamed) {
  const std::string dir = MakeRandom(ScratchDir() + "/m", false, DType::kF32);
  RewriteSafetensors(dir, [](PendingTensor& t) {
    if (t.name == "model.layers.0.self_attn.k_proj.weight") t.shape = {256, 128};
    return true;
  });
  auto r = LoadModel(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("model.layers.0.self_attn.k_proj.weight has shape [256, 128], expected [128, 256]"),
            std::string::npos)
      << r.status().message();
}

TEST(LoaderTest, WrongDtypeIsNamed) {
  const std::string dir = MakeRandom(ScratchDir() + "/m", false, DType::kF32);
  RewriteSafetensors(dir, [](PendingTensor& t) {
    if (t.name == "model.layers.0.mlp.gate_proj.weight") t.dtype = DType::kI32;
    return true;
  });
  auto r = LoadModel(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("is i32, not a weight type"), std::string::npos) << r.status().message();
}

TEST(LoaderTest, ShardedAndSingleFileGiveTheSameLogits) {
  const std::string root = ScratchDir();
  const std::string single = MakeRandom(root + "/single", false, DType::kBF16);
  const std::string sharded = MakeRandom(root + "/sharded", false, DType::kBF16, 1 << 20);
  EXPECT_TRUE(fs::exists(sharded + "/model.safetensors.index.json"));
  int shards = 0;
  for (const auto& e : fs::directory_iterator(sharded)) shards += e.path().extension() == ".safetensors";
  EXPECT_GE(shards, 3);
  EXPECT_FALSE(fs::exists(sharded + "/model.safetensors"));
  auto a = LoadModel(single);
  auto b = LoadModel(sharded);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status().ToString() << b.status().ToString();
  const std::vector<int32_t> ids = {5, 300, 1023, 42};
  const auto la = test::LastLogits(*a->model, ids), lb = test::LastLogits(*b->model, ids);
  EXPECT_EQ(la, lb);
}

TEST(LoaderTest, GeneratedSafetensorsAndGgufAgree) {
  const std::string root = ScratchDir();
  auto a = LoadModel(MakeRandom(root + "/st", false, DType::kF32));
  auto b = LoadModel(MakeRandom(root + "/m.gguf", true, DType::kF32));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(b->format, CheckpointFormat::kGguf);
  const std::vector<int32_t> ids = {1, 2, 3, 500};
  EXPECT_EQ(test::LastLogits(*a->model, ids), test::LastLogits(*b->model, ids));
  EXPECT_EQ(a->generation.eos_token_ids, (std::vector<int64_t>{1023}));
}

TEST(LoaderTest, TiedEmbeddingsShareTheTable) {
  auto m = LoadModel(MakeRandom(ScratchDir() + "/tied", false, DType::kBF16, 0, true));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE(m->model->config().tie_word_embeddings);
  EXPECT_EQ(m->model->weights().lm_head.raw(), m->model->weights().token_embedding.raw());
  EXPECT_EQ(test::LastLogits(*m->model, {7, 8}).size(), 1024u);
  auto g = LoadModel(MakeRandom(ScratchDir() + "/tied.gguf", true, DType::kF16, 0, true));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_TRUE(g->model->config().tie_word_embeddings);
}

TEST(LoaderTest, ModelConfigAloneIsCheap) {
  auto c = LoadModelConfig(DataPath("micro-qwen2/micro-qwen2-q4_0.gguf"));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->vocab_size, 1024);
  EXPECT_FALSE(LoadModelConfig(DataPath("micro-qwen2/README.md")).ok());  // not GGUF
}

}  // namespace
}  // namespace qb
