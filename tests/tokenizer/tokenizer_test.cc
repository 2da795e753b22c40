// The tokenizer against Hugging Face's own output (vectors.jsonl, chat_template_vectors.jsonl),
// llama.cpp's Qwen2 cases, and properties over random text.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "common/test_paths.h"
#include "formats/gguf_writer.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer_files.h"
#include "tokenizer/unicode.h"
#include "util/json.h"

namespace qb {
namespace {

using test::DataPath;

std::vector<Json> ReadJsonl(const std::string& path) {
  std::vector<Json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(Json::parse(line));
  return out;
}

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t = LoadTokenizer(DataPath("tokenizer/qwen2.5"));
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    tok_ = *t;
  }
  static void TearDownTestSuite() { tok_.reset(); }
  static std::shared_ptr<const Tokenizer> tok_;
};
std::shared_ptr<const Tokenizer> TokenizerTest::tok_;

void ExpectVectors(const Tokenizer& tok, const std::string& source) {
  int n = 0;
  for (const Json& c : ReadJsonl(DataPath("tokenizer/qwen2.5/vectors.jsonl"))) {
    const std::string text = c["text"].get<std::string>();
    const auto want = c["ids"].get<std::vector<int32_t>>();
    ASSERT_EQ(tok.Encode(text), want) << source << ": " << c["name"];
    auto decoded = tok.Decode(want);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, c.value("decoded", text)) << source << ": " << c["name"];
    ++n;
  }
  EXPECT_EQ(n, 132);
}

TEST_F(TokenizerTest, HuggingFaceVectorsFromTokenizerJson) { ExpectVectors(*tok_, "tokenizer.json"); }

TEST(TokenizerSourcesTest, HuggingFaceVectorsFromVocabAndMerges) {
  const std::string dir = test::ScratchDir();
  for (const char* f : {"vocab.json", "merges.txt", "tokenizer_config.json"})
    std::filesystem::copy_file(DataPath(std::string("tokenizer/qwen2.5/") + f), dir + "/" + f);
  auto t = LoadTokenizer(dir);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ExpectVectors(**t, "vocab.json + merges.txt");
  EXPECT_EQ((*t)->AddedTokenId("<|im_end|>"), 151645);
}

TEST(TokenizerSourcesTest, HuggingFaceVectorsFromGgufMetadata) {
  auto files = Qwen25TokenizerFiles(151936);
  ASSERT_TRUE(files.ok());
  auto md = TokenizerGgufMetadata(*files, 151936, {151643, 151645, 151643});
  ASSERT_TRUE(md.ok());
  GgufWriter w;
  w.Add("general.architecture", GgufString("qwen2"));
  for (auto& [k, v] : *md) w.Add(k, v);
  const std::string path = test::ScratchDir() + "/tok.gguf";
  ASSERT_TRUE(w.Write(path).ok());
  auto t = LoadTokenizer(path);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ExpectVectors(**t, "gguf");
  EXPECT_TRUE((*t)->IsSpecial(151645));
  EXPECT_FALSE((*t)->IsSpecial(151657));  // <tool_call>
  EXPECT_FALSE((*t)->chat_template().empty());
}

TEST_F(TokenizerTest, LlamaCppQwen2Cases) {
  const std::string inp = test::ReadBytes(DataPath("tokenizer/ggml-vocab-qwen2.gguf.inp"));
  std::ifstream out(DataPath("tokenizer/ggml-vocab-qwen2.gguf.out"));
  const std::string sep = "\n__ggml_vocab_test__\n";
  size_t pos = 0;
  int n = 0;
  std::string line;
  while (pos < inp.size()) {
    const size_t end = inp.find(sep, pos);
    ASSERT_NE(end, std::string::npos);
    const std::string text = inp.substr(pos, end - pos);
    pos = end + sep.size();
    ASSERT_TRUE(std::getline(out, line));
    std::vector<int32_t> want;
    std::istringstream ss(line);
    for (int32_t id; ss >> id;) want.push_back(id);
    EXPECT_EQ(tok_->Encode(text, /*parse_special=*/false), want) << "case " << n << ": [" << text << "]";
    ++n;
  }
  EXPECT_EQ(n, 46);
}

TEST(TokenizerSourcesTest, MicroSubsetVectors) {
  auto t = LoadTokenizer(DataPath("micro-qwen2"));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  int n = 0;
  for (const Json& c : ReadJsonl(DataPath("micro-qwen2/tokenizer_vectors.jsonl"))) {
    EXPECT_EQ((*t)->Encode(c["text"].get<std::string>()), c["ids"].get<std::vector<int32_t>>()) << c["name"];
    ++n;
  }
  EXPECT_EQ(n, 121);
  EXPECT_EQ((*t)->vocab_size(), 1024);
}

TEST_F(TokenizerTest, AddedTokens) {
  EXPECT_EQ(tok_->Encode("<|im_start|>user\nhi<|im_end|>"), (std::vector<int32_t>{151644, 872, 198, 6023, 151645}));
  // Without parse_special the markers are plain text.
  EXPECT_GT(tok_->Encode("<|im_end|>", false).size(), 1u);
  EXPECT_EQ(tok_->Encode("<|im_end|"), tok_->Encode("<|im_end|", false));  // unterminated: plain text
  EXPECT_EQ(*tok_->Decode({151644, 872, 151645}, /*skip_special=*/true), "user");
  EXPECT_FALSE(tok_->Decode({999999}).ok());
  EXPECT_EQ(tok_->vocab_size(), 151665);
}

// Random valid UTF-8 from code points that stress the tokenizer: ASCII, Latin-1, combining
// marks, Hangul jamo (compose under NFC), CJK, emoji (4 bytes), odd white space, look-alikes of
// special tokens. Added tokens are matched before NFC (as Hugging Face does), so a combining
// mark right after one would not compose with its '>' (U+0338 after '>' is U+226F under NFC of
// the whole text): the generator never puts a combining mark right after a piece.
std::string RandomText(std::mt19937& rng) {
  static const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x20, 0x7e}, {0x09, 0x0d}, {0xa0, 0xff}, {0x300, 0x36f}, {0x1100, 0x1112}, {0x1161, 0x1175},
      {0x4e00, 0x4e80}, {0x1f600, 0x1f64f}, {0x2000, 0x200b}, {0x85, 0x85}, {0xfeff, 0xfeff}, {0x3000, 0x3000}};
  static const std::vector<std::string> pieces = {"<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_", "|>",
                                                  "<tool_call>", "'s", "'LL", "\r\n", "  "};
  std::string s;
  const int n = std::uniform_int_distribution<int>(0, 40)(rng);
  bool after_piece = false;
  for (int i = 0; i < n; ++i) {
    if (std::uniform_int_distribution<int>(0, 9)(rng) == 0) {
      s += pieces[std::uniform_int_distribution<size_t>(0, pieces.size() - 1)(rng)];
      after_piece = true;
      continue;
    }
    const auto& r = ranges[std::uniform_int_distribution<size_t>(0, ranges.size() - 1)(rng)];
    if (after_piece && r.first == 0x300) continue;
    after_piece = false;
    unicode::AppendUtf8(s, std::uniform_int_distribution<char32_t>(r.first, r.second)(rng));
  }
  return s;
}

TEST_F(TokenizerTest, DecodeOfEncodeIsNfc) {
  std::mt19937 rng(20261126);
  for (int i = 0; i < 2000; ++i) {
    const std::string text = RandomText(rng);
    const auto ids = tok_->Encode(text);
    ASSERT_EQ(*tok_->Decode(ids), unicode::Nfc(text)) << "case " << i;
  }
}

TEST_F(TokenizerTest, StreamingPiecesConcatenateToTheFullDecode) {
  std::mt19937 rng(7);
  for (int i = 0; i < 500; ++i) {
    std::vector<int32_t> ids;
    const int n = std::uniform_int_distribution<int>(1, 30)(rng);
    for (int k = 0; k < n; ++k) {
      // Mostly single-byte tokens (ids 0..255), so multi-byte characters split across tokens.
      const int kind = std::uniform_int_distribution<int>(0, 3)(rng);
      ids.push_back(kind < 2 ? std::uniform_int_distribution<int32_t>(0, 255)(rng)
                    : kind == 2 ? std::uniform_int_distribution<int32_t>(0, 151642)(rng)
                                : std::uniform_int_distribution<int32_t>(151643, 151664)(rng));
    }
    StreamDecoder stream(*tok_);
    std::string streamed;
    for (int32_t id : ids) {
      auto piece = stream.Push(id);
      ASSERT_TRUE(piece.ok());
      // Every piece is valid UTF-8 on its own.
      ASSERT_EQ(unicode::Lossy(*piece), *piece);
      streamed += *piece;
    }
    streamed += stream.Finish();
    ASSERT_EQ(streamed, *tok_->Decode(ids)) << "case " << i;
  }
}

TEST_F(TokenizerTest, StreamingHoldsSplitCharacters) {
  // "你" is E4 BD A0; its bytes as byte-level tokens.
  const auto ids = tok_->Encode("你", false);
  std::vector<int32_t> bytes;
  for (unsigned char c : std::string("你")) bytes.push_back(tok_->Encode(std::string(1, static_cast<char>(c)), false)[0]);
  (void)ids;
  StreamDecoder s(*tok_);
  EXPECT_EQ(*s.Push(bytes[0]), "");
  EXPECT_EQ(*s.Push(bytes[1]), "");
  EXPECT_EQ(*s.Push(bytes[2]), "你");
  EXPECT_EQ(*s.Push(bytes[0]), "");
  EXPECT_EQ(s.Finish(), "\xef\xbf\xbd");  // a dangling lead byte ends as U+FFFD, as Decode gives
}

TEST(TokenizerLoadTest, Errors) {
  auto missing = LoadTokenizer("/no/such/dir");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  const std::string dir = test::ScratchDir();
  auto empty = LoadTokenizer(dir);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("no tokenizer.json"), std::string::npos);
  test::WriteBytes(dir + "/tokenizer.json", "{\"model\": ");
  auto bad = LoadTokenizer(dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("tokenizer.json"), std::string::npos);
  std::string other = test::ReadBytes(DataPath("micro-qwen2/tokenizer.json"));
  const std::string regex = R"(\\s+(?!\\S)|\\s+")";
  other.replace(other.find(regex), regex.size(), R"(\\s+")");
  test::WriteBytes(dir + "/tokenizer.json", other);
  auto wrong = LoadTokenizer(dir);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(wrong.status().message().find("not Qwen2's"), std::string::npos) << wrong.status().message();
  GgufWriter w;
  w.Add("tokenizer.ggml.model", GgufString("llama"));
  ASSERT_TRUE(w.Write(dir + "/llama.gguf").ok());
  auto llama = LoadTokenizer(dir + "/llama.gguf");
  ASSERT_FALSE(llama.ok());
  EXPECT_NE(llama.status().message().find("\"llama\" is not supported"), std::string::npos);
}

}  // namespace
}  // namespace qb
