#include "model/config.h"

#include <gtest/gtest.h>

#include "common/test_paths.h"
#include "formats/gguf.h"

namespace qb {
namespace {

using test::DataPath;

Json Micro() { return ReadJsonFile(DataPath("micro-qwen2/config.json")).value(); }

TEST(HfConfigTest, ParsesTheMicroConfig) {
  auto c = ParseHfConfig(Micro(), "config.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->hidden_size, 256);
  EXPECT_EQ(c->num_layers, 2);
  EXPECT_EQ(c->num_heads, 4);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_EQ(c->head_dim, 64);  // derived: hidden / heads
  EXPECT_EQ(c->intermediate_size, 768);
  EXPECT_EQ(c->vocab_size, 1024);
  EXPECT_EQ(c->max_position_embeddings, 4096);
  EXPECT_EQ(c->rope_theta, 1e6);
  EXPECT_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_FALSE(c->use_sliding_window);
  EXPECT_EQ(c->sliding_window, 4096);
  EXPECT_EQ(c->torch_dtype, "bfloat16");
  EXPECT_EQ(c->bos_token_id, 1023);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{1023}));
  EXPECT_EQ(c->rope_scaling.kind, RopeScaling::Kind::kNone);
  EXPECT_FALSE(c->quantization.has_value());
  EXPECT_EQ(c->ParameterCount(), 2099456);
}

TEST(HfConfigTest, ExplicitHeadDimAndEosList) {
  Json j = Micro();
  j["head_dim"] = 32;
  j["eos_token_id"] = {1022, 1023};
  auto c = ParseHfConfig(j, "config.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->head_dim, 32);
  EXPECT_EQ(c->q_dim(), 128);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{1022, 1023}));
}

TEST(HfConfigTest, Qwen25YarnRopeScaling) {
  Json j = Micro();
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}};
  auto c = ParseHfConfig(j, "config.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->rope_scaling.kind, RopeScaling::Kind::kYarn);
  EXPECT_EQ(c->rope_scaling.factor, 4.0);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 32768);
  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(ParseHfConfig(j, "c")->rope_scaling.kind, RopeScaling::Kind::kNone);
}

TEST(HfConfigTest, QuantizationConfigIsParsed) {
  Json j = ReadJsonFile(DataPath("micro-qwen2-gptq-descact/config.json")).value();
  auto c = ParseHfConfig(j, "config.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(c->quantization.has_value());
  EXPECT_EQ(c->quantization->method, "gptq");
  EXPECT_EQ(c->quantization->bits, 4);
  EXPECT_EQ(c->quantization->group_size, 32);
  EXPECT_TRUE(c->quantization->desc_act);
  EXPECT_FALSE(c->quantization->sym);
  Json a = ReadJsonFile(DataPath("micro-qwen2-awq/config.json")).value();
  auto ca = ParseHfConfig(a, "config.json");
  ASSERT_TRUE(ca.ok());
  EXPECT_EQ(ca->quantization->method, "awq");
  EXPECT_EQ(ca->quantization->group_size, 128);
}

struct BadConfig {
  const char* name;
  std::function<void(Json&)> edit;
  StatusCode code;
  const char* expect;
};

TEST(HfConfigTest, WrongConfigsAreRefusedClearly) {
  const std::vector<BadConfig> cases = {
      {"llama", [](Json& j) { j["model_type"] = "llama"; }, StatusCode::kUnimplemented, "model_type \"llama\""},
      {"missing hidden", [](Json& j) { j.erase("hidden_size"); }, StatusCode::kInvalidArgument, "missing \"hidden_size\""},
      {"string layers", [](Json& j) { j["num_hidden_layers"] = "2"; }, StatusCode::kInvalidArgument, "must be an integer"},
      {"heads", [](Json& j) { j["num_key_value_heads"] = 3; }, StatusCode::kInvalidArgument, "not a multiple"},
      {"zero vocab", [](Json& j) { j["vocab_size"] = 0; }, StatusCode::kInvalidArgument, "vocab_size must be positive"},
      {"linear rope", [](Json& j) { j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}}; },
       StatusCode::kUnimplemented, "\"linear\" is not supported"},
      {"yarn without factor", [](Json& j) { j["rope_scaling"] = {{"type", "yarn"}}; }, StatusCode::kInvalidArgument, "factor"},
      {"sliding window", [](Json& j) { j["use_sliding_window"] = true; }, StatusCode::kUnimplemented, "sliding-window"},
      {"eos outside vocab", [](Json& j) { j["eos_token_id"] = 5000; }, StatusCode::kInvalidArgument, "outside the vocabulary"},
      {"bad eos type", [](Json& j) { j["eos_token_id"] = "x"; }, StatusCode::kInvalidArgument, "eos_token_id"},
      {"quant without method", [](Json& j) { j["quantization_config"] = {{"bits", 4}}; }, StatusCode::kInvalidArgument,
       "quant_method"},
  };
  for (const auto& c : cases) {
    Json j = Micro();
    c.edit(j);
    auto r = ParseHfConfig(j, "config.json");
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.status().code(), c.code) << c.name << ": " << r.status().message();
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << c.name << ": " << r.status().message();
    EXPECT_NE(r.status().message().find("config.json"), std::string::npos) << c.name;
  }
  EXPECT_FALSE(ParseHfConfig(Json::array(), "config.json").ok());
}

TEST(GenerationConfigTest, Parses) {
  Json j = Json::parse(R"({"do_sample": true, "temperature": 0.7, "top_p": 0.8, "top_k": 20,
      "repetition_penalty": 1.05, "eos_token_id": [151645, 151643], "bos_token_id": 151643})");
  auto g = ParseGenerationConfig(j, "generation_config.json");
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->do_sample);
  EXPECT_EQ(g->temperature, 0.7);
  EXPECT_EQ(g->top_k, 20);
  EXPECT_EQ(g->repetition_penalty, 1.05);
  EXPECT_EQ(g->eos_token_ids, (std::vector<int64_t>{151645, 151643}));
  EXPECT_FALSE(ParseGenerationConfig(Json::parse(R"({"top_k": "x"})"), "g").ok());
}

TEST(GgufConfigTest, MapsToTheSameConfigAsConfigJson) {
  auto hf = ParseHfConfig(Micro(), "config.json");
  for (const char* f : {"micro-qwen2-f16.gguf", "micro-qwen2-q4_k_m.gguf"}) {
    auto g = GgufFile::Open(DataPath(std::string("micro-qwen2/") + f));
    ASSERT_TRUE(g.ok());
    auto c = ConfigFromGguf(*g);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ(c->hidden_size, hf->hidden_size);
    EXPECT_EQ(c->num_layers, hf->num_layers);
    EXPECT_EQ(c->num_heads, hf->num_heads);
    EXPECT_EQ(c->num_kv_heads, hf->num_kv_heads);
    EXPECT_EQ(c->head_dim, hf->head_dim);
    EXPECT_EQ(c->intermediate_size, hf->intermediate_size);
    EXPECT_EQ(c->vocab_size, hf->vocab_size);
    EXPECT_EQ(c->max_position_embeddings, hf->max_position_embeddings);
    EXPECT_EQ(c->rope_theta, hf->rope_theta);
    EXPECT_NEAR(c->rms_norm_eps, hf->rms_norm_eps, 1e-12);
    EXPECT_EQ(c->tie_word_embeddings, hf->tie_word_embeddings);
    EXPECT_EQ(c->eos_token_ids, hf->eos_token_ids);
    EXPECT_EQ(c->bos_token_id, hf->bos_token_id);
    EXPECT_EQ(GenerationConfigFromGguf(*g).eos_token_ids, (std::vector<int64_t>{1023}));
  }
}

}  // namespace
}  // namespace qb
