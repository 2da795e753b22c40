#include "formats/gguf.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "common/test_paths.h"
#include "formats/gguf_writer.h"
#include "tensor/dequantize.h"
#include "util/half.h"
#include "util/json.h"

namespace qb {
namespace {

using test::DataPath;
using test::ScratchDir;

std::string ToUpper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Raw GGUF bytes, for files the writer would never produce.
class Bytes {
 public:
  template <typename T>
  Bytes& Put(T v) {
    s_.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  Bytes& Str(const std::string& x) {
    Put<uint64_t>(x.size());
    s_ += x;
    return *this;
  }
  Bytes& Header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    s_ += "GGUF";
    return Put(version).Put(n_tensors).Put(n_kv);
  }
  Bytes& PadTo(size_t a) {
    while (s_.size() % a) s_.push_back('\0');
    return *this;
  }
  Bytes& Raw(const std::string& x) {
    s_ += x;
    return *this;
  }
  const std::string& str() const { return s_; }

 private:
  std::string s_;
};

Result<GgufFile> OpenGgufBytes(const std::string& bytes) {
  const std::string path = ScratchDir() + "/t.gguf";
  test::WriteBytes(path, bytes);
  return GgufFile::Open(path);
}

void ExpectError(const std::string& bytes, const std::string& expect, const char* name) {
  auto f = OpenGgufBytes(bytes);
  ASSERT_FALSE(f.ok()) << name;
  EXPECT_NE(f.status().message().find(expect), std::string::npos) << name << ": " << f.status().message();
  EXPECT_NE(f.status().message().find("t.gguf"), std::string::npos) << name << ": " << f.status().message();
}

TEST(GgufTest, EveryMetadataTypeRoundTrips) {
  GgufWriter w(64);
  w.Add("u8", GgufScalar(GgufType::kU8, 200));
  w.Add("i8", GgufScalar(GgufType::kI8, -100));
  w.Add("u16", GgufScalar(GgufType::kU16, 60000));
  w.Add("i16", GgufScalar(GgufType::kI16, -30000));
  w.Add("u32", GgufU32(4000000000u));
  w.Add("i32", GgufI32(-2000000000));
  w.Add("f32", GgufF32(0.5f));
  w.Add("bool", GgufBool(true));
  w.Add("string", GgufString("héllo"));
  w.Add("u64", GgufU64(1ull << 60));
  w.Add("i64", GgufScalar(GgufType::kI64, -1e15));
  w.Add("f64", GgufScalar(GgufType::kF64, 1e-300));
  w.Add("arr_str", GgufStringArray({"a", "", "ccc"}));
  w.Add("arr_i32", GgufI32Array({1, -2, 3}));
  w.Add("arr_nested", GgufArrayOf(GgufType::kArray, {GgufI32Array({4}), GgufI32Array({5, 6})}));
  w.Add("arr_empty", GgufArrayOf(GgufType::kF32, {}));
  w.AddTensor({"x", DType::kF32, {2, 4}, [](uint8_t* d) {
                 for (int i = 0; i < 8; ++i) {
                   float v = static_cast<float>(i);
                   std::memcpy(d + 4 * i, &v, 4);
                 }
               }});
  w.AddTensor({"h", DType::kF16, {3}, [](uint8_t* d) {
                 uint16_t v = F32ToF16(-1.5f);
                 for (int i = 0; i < 3; ++i) std::memcpy(d + 2 * i, &v, 2);
               }});
  w.AddTensor({"q", DType::kQ8_0, {2, 32}, [](uint8_t* d) { std::memset(d, 1, 68); }});
  const std::string path = ScratchDir() + "/all.gguf";
  ASSERT_TRUE(w.Write(path).ok());
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->GetInt("u8"), 200);
  EXPECT_EQ(f->GetInt("i8"), -100);
  EXPECT_EQ(f->GetInt("u16"), 60000);
  EXPECT_EQ(f->GetInt("i16"), -30000);
  EXPECT_EQ(f->GetInt("u32"), 4000000000LL);
  EXPECT_EQ(f->GetInt("i32"), -2000000000);
  EXPECT_EQ(f->GetNumber("f32"), 0.5);
  EXPECT_EQ(f->GetBool("bool"), true);
  EXPECT_EQ(f->GetString("string"), "héllo");
  EXPECT_EQ(f->GetInt("u64"), 1LL << 60);
  EXPECT_EQ(f->GetInt("i64"), -1000000000000000LL);
  EXPECT_EQ(f->GetNumber("f64"), 1e-300);
  EXPECT_EQ(f->Find("u16")->type, GgufType::kU16);
  const GgufArray* s = f->Find("arr_str")->AsArray();
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->items.size(), 3u);
  EXPECT_EQ(*s->items[2].AsString(), "ccc");
  EXPECT_EQ(f->Find("arr_i32")->AsArray()->items[1].AsInt(), -2);
  const GgufArray* nested = f->Find("arr_nested")->AsArray();
  EXPECT_EQ(nested->items[1].AsArray()->items[1].AsInt(), 6);
  EXPECT_EQ(f->Find("arr_empty")->AsArray()->items.size(), 0u);
  EXPECT_FALSE(f->GetString("u8").has_value());
  EXPECT_FALSE(f->GetInt("missing").has_value());

  ASSERT_EQ(f->tensors().size(), 3u);
  const GgufTensorInfo* x = f->FindTensor("x");
  EXPECT_EQ(x->ne, (std::vector<uint64_t>{4, 2}));
  EXPECT_EQ(x->shape, (Shape{2, 4}));
  auto xt = f->Load(*x);
  ASSERT_TRUE(xt.ok());
  EXPECT_EQ(xt->data<float>()[7], 7.0f);
  auto ht = f->Load(*f->FindTensor("h"));
  EXPECT_EQ(F16ToF32(ht->data<uint16_t>()[2]), -1.5f);
  EXPECT_EQ(f->FindTensor("q")->nbytes, 68u);
  EXPECT_EQ(f->data_offset() % 64, 0u);
}

TEST(GgufTest, ReadsTheMicroFixtures) {
  struct Want {
    const char* file;
    const char* embd_type;
    const char* output_type;
  };
  for (const Want& w : {Want{"micro-qwen2-f16.gguf", "F16", "F16"}, Want{"micro-qwen2-q8_0.gguf", "Q8_0", "Q8_0"},
                        Want{"micro-qwen2-q4_0.gguf", "Q4_0", "Q6_K"},
                        Want{"micro-qwen2-q4_k_m.gguf", "Q4_K", "Q6_K"}}) {
    auto f = GgufFile::Open(DataPath(std::string("micro-qwen2/") + w.file));
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    EXPECT_EQ(f->version(), 3u);
    EXPECT_EQ(f->tensors().size(), 27u);
    EXPECT_EQ(f->GetString("general.architecture"), "qwen2");
    EXPECT_EQ(f->GetInt("qwen2.block_count"), 2);
    EXPECT_EQ(f->GetInt("qwen2.embedding_length"), 256);
    EXPECT_EQ(f->GetInt("tokenizer.ggml.eos_token_id"), 1023);
    EXPECT_EQ(f->Find("tokenizer.ggml.tokens")->AsArray()->items.size(), 1024u);
    EXPECT_EQ(*f->Find("tokenizer.ggml.tokens")->AsArray()->items[1023].AsString(), "<|endoftext|>");
    EXPECT_EQ(f->Find("tokenizer.ggml.merges")->AsArray()->items.size(), 767u);
    EXPECT_EQ(FindGgmlType(f->FindTensor("token_embd.weight")->ggml_type)->name, w.embd_type) << w.file;
    EXPECT_EQ(FindGgmlType(f->FindTensor("output.weight")->ggml_type)->name, w.output_type) << w.file;
    EXPECT_EQ(f->FindTensor("blk.0.attn_q.bias")->ggml_type, 0u);  // F32
    EXPECT_EQ(f->FindTensor("token_embd.weight")->shape, (Shape{1024, 256}));
    for (const auto& t : f->tensors()) EXPECT_TRUE(f->Load(t).ok()) << t.name;
  }
}

// The GGUF types of official Qwen2.5 files beyond the ones qwenbox also writes (Q4_1, Q5_0,
// Q5_1, IQ4_NL, Q2_K, Q3_K, Q5_K), each in two tensors of tests/data/micro-qwen2-mixed: the
// first and last row of every quantized tensor dequantized as llama.cpp's ggml does it.
TEST(GgufTest, DequantizesEveryTypeAsLlamaCppDoes) {
  auto f = GgufFile::Open(DataPath("micro-qwen2-mixed/micro-qwen2-mixed.gguf"));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const std::string samples_path = DataPath("micro-qwen2-mixed/dequant_samples.json");
  auto samples = ParseJson(test::ReadBytes(samples_path), samples_path);
  ASSERT_TRUE(samples.ok()) << samples.status().ToString();
  std::set<std::string> types;
  for (const auto& [name, want] : samples->items()) {
    const GgufTensorInfo* info = f->FindTensor(name);
    ASSERT_NE(info, nullptr) << name;
    std::string type(FindGgmlType(info->ggml_type)->name);
    EXPECT_EQ(type, ToUpper(want["type"].get<std::string>())) << name;
    types.insert(type);
    auto t = f->Load(*info);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    const int64_t cols = want["cols"].get<int64_t>();
    ASSERT_EQ(t->cols(), cols) << name;
    std::vector<float> got(static_cast<size_t>(cols));
    for (const auto& [row, values] : want["rows"].items()) {
      DequantizeRow(t->dtype(), t->row(std::stoll(row)), got.data(), cols);
      const auto expected = values.get<std::vector<float>>();
      ASSERT_EQ(expected.size(), got.size());
      // Equal up to the rounding of one fused multiply-add (ggml may fuse d * q + m).
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], expected[i], 1e-7f + 1e-6f * std::fabs(expected[i])) << name << " row " << row << " col " << i;
    }
  }
  EXPECT_EQ(types, (std::set<std::string>{"Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "Q2_K", "Q3_K", "Q5_K"}));
}

TEST(GgufTest, CorruptFilesGiveClearErrors) {
  ExpectError("GGUX", "not a GGUF file", "bad magic");
  ExpectError("GG", "not a GGUF file", "short magic");
  ExpectError(Bytes().Header(1, 0, 0).str(), "version 1 is not supported", "v1");
  ExpectError(Bytes().Header(4, 0, 0).str(), "version 4 is not supported", "v4");
  ExpectError(Bytes().Header(0x03000000, 0, 0).str(), "big-endian", "big endian");
  ExpectError(Bytes().Raw("GGUF").Put<uint32_t>(3).Put<uint32_t>(0).str(), "while reading the tensor count", "truncated counts");
  ExpectError(Bytes().Header(3, 0, 1000000).str(), "cannot fit", "kv count");
  ExpectError(Bytes().Header(3, 0, 1).Put<uint64_t>(1000).Raw(std::string(40, 'x')).str(), "past the end", "key length");
  ExpectError(Bytes().Header(3, 0, 1).Str("k").Put<uint32_t>(99).Put<uint64_t>(0).str(), "unknown value type 99", "value type");
  ExpectError(Bytes().Header(3, 0, 1).Str("k").Put<uint32_t>(7).Put<uint8_t>(2).Raw(std::string(16, '\0')).str(),
              "neither 0 nor 1", "bool 2");
  ExpectError(Bytes().Header(3, 0, 1).Str("k").Put<uint32_t>(9).Put<uint32_t>(4).Put<uint64_t>(1ull << 40).str(),
              "cannot fit", "array count");
  ExpectError(Bytes().Header(3, 0, 1).Str("k").Put<uint32_t>(9).Put<uint32_t>(77).Put<uint64_t>(1).str(),
              "unknown array element type", "array type");
  ExpectError(Bytes().Header(3, 0, 2).Str("k").Put<uint32_t>(4).Put<uint32_t>(1).Str("k").Put<uint32_t>(4).Put<uint32_t>(1).Raw(std::string(32, '\0')).str(),
              "duplicate metadata key", "duplicate key");
  ExpectError(Bytes().Header(3, 0, 1).Str("general.alignment").Put<uint32_t>(4).Put<uint32_t>(24).Raw(std::string(32, '\0')).str(),
              "power of two", "alignment");

  auto tensor = [](uint32_t n_dims, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    Bytes b;
    b.Str("w").Put(n_dims);
    for (uint64_t d : ne) b.Put(d);
    return b.Put(type).Put(offset).str();
  };
  auto file = [](const std::vector<std::string>& tensors, size_t data_bytes) {
    Bytes b;
    b.Header(3, tensors.size(), 0);
    for (const auto& t : tensors) b.Raw(t);
    b.PadTo(32).Raw(std::string(data_bytes, '\0'));
    return b.str();
  };
  EXPECT_TRUE(OpenGgufBytes(file({tensor(1, {8}, 0, 0)}, 32)).ok());
  ExpectError(file({tensor(5, {1, 1, 1, 1, 1}, 0, 0)}, 32), "5 dimensions", "n_dims");
  ExpectError(file({tensor(1, {0}, 0, 0)}, 32), "dimension 0 of size 0", "zero dim");
  ExpectError(file({tensor(1, {8}, 200, 0)}, 32), "unknown ggml tensor type 200", "type");
  ExpectError(file({tensor(1, {33}, 8, 0)}, 64), "not whole Q8_0 blocks", "partial block");
  ExpectError(file({tensor(1, {8}, 0, 16)}, 64), "not a multiple of the alignment", "misaligned");
  ExpectError(file({tensor(1, {8}, 0, 0)}, 16), "truncated", "data past end");
  ExpectError(file({tensor(1, {8}, 0, 0), tensor(1, {8}, 0, 0)}, 64), "appears twice", "duplicate tensor");
  {
    Bytes b;
    b.Header(3, 2, 0).Str("a").Put<uint32_t>(1).Put<uint64_t>(16).Put<uint32_t>(0).Put<uint64_t>(0);
    b.Str("b").Put<uint32_t>(1).Put<uint64_t>(16).Put<uint32_t>(0).Put<uint64_t>(32);
    b.PadTo(32).Raw(std::string(96, '\0'));
    ExpectError(b.str(), "overlap", "overlap");
  }
}

TEST(GgufTest, TruncatedFixtureIsAnError) {
  const std::string bytes = test::ReadBytes(DataPath("micro-qwen2/micro-qwen2-q4_0.gguf"));
  for (size_t keep : {size_t{3}, size_t{20}, size_t{5000}, size_t{30000}, bytes.size() / 2, bytes.size() - 1}) {
    auto f = OpenGgufBytes(bytes.substr(0, keep));
    EXPECT_FALSE(f.ok()) << keep;
  }
}

TEST(GgufTest, UnsupportedTensorTypeFailsOnLoadOnly) {
  Bytes b;
  b.Header(3, 1, 0).Str("w").Put<uint32_t>(1).Put<uint64_t>(256).Put<uint32_t>(16).Put<uint64_t>(0);  // IQ2_XXS
  b.PadTo(32).Raw(std::string(66, '\0'));
  auto f = OpenGgufBytes(b.str());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  auto t = f->Load(f->tensors()[0]);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(t.status().message().find("IQ2_XXS"), std::string::npos);
}

TEST(GgufTest, Version2IsRead) {
  Bytes b;
  b.Header(2, 0, 1).Str("general.architecture").Put<uint32_t>(8).Str("qwen2");
  auto f = OpenGgufBytes(b.str());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->GetString("general.architecture"), "qwen2");
}

}  // namespace
}  // namespace qb
