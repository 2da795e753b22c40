#include "util/json.h"

#include <gtest/gtest.h>

#include "util/mapped_file.h"

namespace qb {
namespace {

TEST(JsonTest, ParsesAndReportsErrorsWithTheSource) {
  auto ok = ParseJson(R"({"a": 1})", "x.json");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)["a"], 1);
  auto bad = ParseJson(R"({"a": )", "config.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("config.json"), std::string::npos);
}

TEST(JsonTest, RejectsInvalidUtf8) {
  auto r = ParseJson("{\"a\": \"\xff\xfe\"}", "h");
  EXPECT_FALSE(r.ok());
}

TEST(JsonTest, TypedFields) {
  Json j = Json::parse(R"({"i": 3, "f": 2.5, "w": 4.0, "b": true, "s": "x", "n": null})");
  EXPECT_EQ(*JsonInt(j, "i", "t").value(), 3);
  EXPECT_EQ(*JsonInt(j, "w", "t").value(), 4);  // 4.0 is an integer value
  EXPECT_FALSE(JsonInt(j, "f", "t").ok());
  EXPECT_FALSE(JsonInt(j, "missing", "t")->has_value());
  EXPECT_FALSE(JsonInt(j, "n", "t")->has_value());
  EXPECT_EQ(*JsonNumber(j, "f", "t").value(), 2.5);
  EXPECT_EQ(*JsonBool(j, "b", "t").value(), true);
  EXPECT_EQ(*JsonString(j, "s", "t").value(), "x");
  auto wrong = JsonString(j, "i", "config.json");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().message(), "config.json: \"i\" must be a string, got number");
}

TEST(MappedFileTest, MissingFileIsNotFound) {
  auto r = MappedFile::Open("/nonexistent/qwenbox/file");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/qwenbox/file"), std::string::npos);
}

TEST(MappedFileTest, DirectoryIsRejected) {
  auto r = MappedFile::Open("/tmp");
  EXPECT_FALSE(r.ok());
}

}  // namespace
}  // namespace qb
