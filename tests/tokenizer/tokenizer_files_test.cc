#include "tokenizer/tokenizer_files.h"

#include <gtest/gtest.h>

#include "common/test_paths.h"
#include "util/json.h"

namespace qb {
namespace {

TEST(TokenizerFilesTest, FullVocabularyIsTheEmbeddedRealTokenizer) {
  auto f = Qwen25TokenizerFiles(151936);
  ASSERT_TRUE(f.ok());
  Json tok = ParseJson(f->tokenizer_json, "t").value();
  EXPECT_EQ(tok["model"]["vocab"].size(), 151643u);
  EXPECT_EQ(tok["model"]["merges"].size(), 151387u);
  EXPECT_EQ(tok["added_tokens"].size(), 22u);
  Json cfg = ParseJson(f->tokenizer_config_json, "c").value();
  EXPECT_EQ(cfg["eos_token"], "<|im_end|>");
  EXPECT_TRUE(cfg.contains("chat_template"));
}

// The subset recipe reproduces the micro-qwen2 fixture's tokenizer (made independently).
TEST(TokenizerFilesTest, SubsetMatchesTheMicroFixture) {
  auto f = Qwen25TokenizerFiles(1024);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  Json got = ParseJson(f->tokenizer_json, "t").value();
  Json want = ReadJsonFile(test::DataPath("micro-qwen2/tokenizer.json")).value();
  EXPECT_EQ(got["model"]["vocab"], want["model"]["vocab"]);
  EXPECT_EQ(got["model"]["merges"], want["model"]["merges"]);
  EXPECT_EQ(got["added_tokens"], want["added_tokens"]);
  EXPECT_EQ(got["pre_tokenizer"], want["pre_tokenizer"]);
  EXPECT_EQ(got["normalizer"], want["normalizer"]);
  Json cfg = ParseJson(f->tokenizer_config_json, "c").value();
  Json want_cfg = ReadJsonFile(test::DataPath("micro-qwen2/tokenizer_config.json")).value();
  EXPECT_EQ(cfg, want_cfg);
  EXPECT_FALSE(Qwen25TokenizerFiles(100).ok());
}

TEST(TokenizerFilesTest, GgufMetadataAsLlamaCppWritesIt) {
  auto f = Qwen25TokenizerFiles(1024);
  ASSERT_TRUE(f.ok());
  auto md = TokenizerGgufMetadata(*f, 1024, {1023, 1023, 1023});
  ASSERT_TRUE(md.ok());
  std::map<std::string, GgufValue> m(md->begin(), md->end());
  EXPECT_EQ(*m["tokenizer.ggml.model"].AsString(), "gpt2");
  EXPECT_EQ(*m["tokenizer.ggml.pre"].AsString(), "qwen2");
  const GgufArray* tokens = m["tokenizer.ggml.tokens"].AsArray();
  ASSERT_EQ(tokens->items.size(), 1024u);
  EXPECT_EQ(*tokens->items[0].AsString(), "!");
  EXPECT_EQ(*tokens->items[1023].AsString(), "<|endoftext|>");
  const GgufArray* types = m["tokenizer.ggml.token_type"].AsArray();
  EXPECT_EQ(types->items[5].AsInt(), 1);
  EXPECT_EQ(types->items[1023].AsInt(), 3);
  EXPECT_EQ(m["tokenizer.ggml.merges"].AsArray()->items.size(), 767u);
  EXPECT_EQ(*m["tokenizer.ggml.merges"].AsArray()->items[0].AsString(), "Ġ Ġ");

  auto full = Qwen25TokenizerFiles(151936);
  auto fm = TokenizerGgufMetadata(*full, 151936, {151643, 151645, 151643});
  ASSERT_TRUE(fm.ok());
  std::map<std::string, GgufValue> mm(fm->begin(), fm->end());
  const GgufArray* ft = mm["tokenizer.ggml.tokens"].AsArray();
  EXPECT_EQ(*ft->items[151644].AsString(), "<|im_start|>");
  EXPECT_EQ(*ft->items[151935].AsString(), "[PAD151935]");
  const GgufArray* tt = mm["tokenizer.ggml.token_type"].AsArray();
  EXPECT_EQ(tt->items[151657].AsInt(), 4);  // <tool_call>: added, not special
  EXPECT_EQ(tt->items[151935].AsInt(), 5);
  EXPECT_TRUE(mm.count("tokenizer.chat_template"));
}

}  // namespace
}  // namespace qb
