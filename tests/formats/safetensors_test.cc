#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "common/test_paths.h"
#include "formats/safetensors_writer.h"
#include "util/half.h"

namespace qb {
namespace {

using test::DataPath;
using test::ScratchDir;
using test::WriteBytes;

// A safetensors file from a header text and a data section.
std::string MakeFile(const std::string& header, const std::string& data, uint64_t declared_len = UINT64_MAX) {
  const uint64_t len = declared_len == UINT64_MAX ? header.size() : declared_len;
  std::string out(8, '\0');
  std::memcpy(out.data(), &len, 8);
  return out + header + data;
}

Status OpenSafetensorsBytes(const std::string& bytes) {
  const std::string path = ScratchDir() + "/t.safetensors";
  WriteBytes(path, bytes);
  auto f = SafetensorsFile::Open(path);
  return f.ok() ? Status::Ok() : f.status();
}

TEST(SafetensorsTest, ReadsTheMicroFixture) {
  auto f = SafetensorsFile::Open(DataPath("micro-qwen2/model.safetensors"));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->entries().size(), 27u);
  const SafetensorsEntry* e = f->Find("model.layers.1.mlp.down_proj.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->dtype, DType::kBF16);
  EXPECT_EQ(e->shape, (Shape{256, 768}));
  Tensor t = f->Load(*e);
  EXPECT_EQ(t.nbytes(), 256u * 768 * 2);
  EXPECT_EQ(f->Find("lm_head.weight")->shape, (Shape{1024, 256}));
  EXPECT_EQ(f->Find("no.such.tensor"), nullptr);
}

TEST(SafetensorsTest, WriterRoundTrip) {
  const std::string path = ScratchDir() + "/rt.safetensors";
  SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  w.AddTensor({"a", DType::kF32, {2, 3}, [](uint8_t* d) {
                 for (int i = 0; i < 6; ++i) {
                   float v = static_cast<float>(i) * 1.5f;
                   std::memcpy(d + 4 * i, &v, 4);
                 }
               }});
  w.AddTensor({"b", DType::kBF16, {3}, [](uint8_t* d) {
                 for (int i = 0; i < 3; ++i) {
                   uint16_t v = F32ToBF16(static_cast<float>(-i));
                   std::memcpy(d + 2 * i, &v, 2);
                 }
               }});
  w.AddTensor({"c", DType::kI8, {5}, [](uint8_t* d) { std::memset(d, 7, 5); }});
  ASSERT_TRUE(w.Write(path).ok());
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->metadata().at("format"), "pt");
  Tensor a = f->Load(*f->Find("a"));
  EXPECT_EQ(a.shape(), (Shape{2, 3}));
  EXPECT_EQ(a.data<float>()[5], 7.5f);
  Tensor b = f->Load(*f->Find("b"));
  EXPECT_EQ(BF16ToF32(b.data<uint16_t>()[2]), -2.0f);
  Tensor c = f->Load(*f->Find("c"));
  EXPECT_EQ(c.data<int8_t>()[4], 7);
}

struct BadCase {
  const char* name;
  std::string bytes;
  const char* expect;  // a substring of the error message
};

TEST(SafetensorsTest, CorruptFilesGiveClearErrors) {
  const std::string ok_entry = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::vector<BadCase> cases = {
      {"too short", std::string(5, '\0'), "too short"},
      {"header past end", MakeFile("{}", "", 1000), "past the end of the file"},
      {"malformed json", MakeFile(R"({"t": {"dtype": )", ""), "invalid JSON"},
      {"non-utf8 json", MakeFile("{\"t\xff\": 1}", ""), "invalid JSON"},
      {"not an object", MakeFile("[1,2]", ""), "not a JSON object"},
      {"entry not object", MakeFile(R"({"t": 3})", ""), "not an object"},
      {"missing dtype", MakeFile(R"({"t":{"shape":[2],"data_offsets":[0,8]}})", std::string(8, 'x')), "dtype"},
      {"unknown dtype", MakeFile(R"({"t":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", std::string(8, 'x')),
       "F64 is not supported"},
      {"negative shape", MakeFile(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", std::string(8, 'x')),
       "non-negative"},
      {"size mismatch", MakeFile(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, 'x')),
       "needs 12 bytes"},
      {"offsets past data", MakeFile("{" + ok_entry + "}", std::string(4, 'x')), "past the end of the data"},
      {"offsets backwards", MakeFile(R"({"t":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}})", std::string(8, 'x')),
       "backwards"},
      {"overlap", MakeFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                           std::string(12, 'x')),
       "overlap"},
      {"huge shape", MakeFile(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", std::string(8, 'x')),
       "too large"},
  };
  for (const auto& c : cases) {
    Status s = OpenSafetensorsBytes(c.bytes);
    EXPECT_FALSE(s.ok()) << c.name;
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << c.name << ": " << s.message();
    EXPECT_NE(s.message().find("t.safetensors"), std::string::npos) << c.name << ": " << s.message();
  }
}

TEST(SafetensorsTest, TruncatedFixtureIsAnError) {
  const std::string bytes = test::ReadBytes(DataPath("micro-qwen2/model.safetensors"));
  for (size_t keep : {size_t{0}, size_t{4}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    Status s = OpenSafetensorsBytes(bytes.substr(0, keep));
    EXPECT_FALSE(s.ok()) << keep;
  }
}

TEST(SafetensorsTest, ShardedCheckpoint) {
  const std::string dir = ScratchDir();
  for (int shard = 1; shard <= 2; ++shard) {
    SafetensorsWriter w;
    w.AddTensor({fmt::format("w{}", shard), DType::kF32, {1}, [shard](uint8_t* d) {
                   float v = static_cast<float>(shard);
                   std::memcpy(d, &v, 4);
                 }});
    ASSERT_TRUE(w.Write(fmt::format("{}/s{}.safetensors", dir, shard)).ok());
  }
  WriteBytes(dir + "/model.safetensors.index.json",
             R"({"metadata":{},"weight_map":{"w1":"s1.safetensors","w2":"s2.safetensors"}})");
  auto ck = SafetensorsCheckpoint::Open(dir);
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  const SafetensorsFile* file = nullptr;
  const SafetensorsEntry* e = ck->Find("w2", &file);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(file->Load(*e).data<float>()[0], 2.0f);
  EXPECT_EQ(ck->Names().size(), 2u);

  WriteBytes(dir + "/model.safetensors.index.json", R"({"weight_map":{"w1":"s2.safetensors"}})");
  auto wrong = SafetensorsCheckpoint::Open(dir);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("does not"), std::string::npos) << wrong.status().message();

  WriteBytes(dir + "/model.safetensors.index.json", R"({"weight_map":{"w1":"missing.safetensors"}})");
  auto missing = SafetensorsCheckpoint::Open(dir);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("missing.safetensors"), std::string::npos);

  WriteBytes(dir + "/model.safetensors.index.json", R"({"weight_map":{"w1":"../s1.safetensors"}})");
  EXPECT_FALSE(SafetensorsCheckpoint::Open(dir).ok());

  WriteBytes(dir + "/model.safetensors.index.json", R"({"weight_map": 3})");
  EXPECT_FALSE(SafetensorsCheckpoint::Open(dir).ok());
}

TEST(SafetensorsTest, DirectoryWithoutWeights) {
  auto ck = SafetensorsCheckpoint::Open(ScratchDir());
  ASSERT_FALSE(ck.ok());
  EXPECT_EQ(ck.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace qb
