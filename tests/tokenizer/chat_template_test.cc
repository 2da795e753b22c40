#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/test_paths.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tool_calls.h"

namespace qb {
namespace {

using test::DataPath;

TEST(ChatTemplateTest, HuggingFaceRenderingsAndIds) {
  auto tok = LoadTokenizer(DataPath("tokenizer/qwen2.5"));
  ASSERT_TRUE(tok.ok());
  auto kind = RecognizeChatTemplate((*tok)->chat_template());
  ASSERT_TRUE(kind.ok()) << kind.status().ToString();
  std::ifstream in(DataPath("tokenizer/qwen2.5/chat_template_vectors.jsonl"));
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    const OrderedJson c = OrderedJson::parse(line);
    const OrderedJson tools = c.contains("tools") ? c["tools"] : OrderedJson();
    auto r = RenderChat(*kind, c["messages"], tools, c["add_generation_prompt"].get<bool>());
    ASSERT_TRUE(r.ok()) << c["name"] << ": " << r.status().ToString();
    EXPECT_EQ(*r, c["rendered"].get<std::string>()) << c["name"];
    EXPECT_EQ((*tok)->Encode(*r), c["ids"].get<std::vector<int32_t>>()) << c["name"];
    ++n;
  }
  EXPECT_EQ(n, 11);
}

TEST(ChatTemplateTest, OtherTemplatesAreRefused) {
  EXPECT_EQ(RecognizeChatTemplate("").status().code(), StatusCode::kNotFound);
  auto other = RecognizeChatTemplate("{% for m in messages %}{{ m.content }}{% endfor %}");
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(other.status().message().find("not Qwen2.5's"), std::string::npos);
}

TEST(ChatTemplateTest, BadMessagesAreErrors) {
  const auto k = ChatTemplateKind::kQwen25;
  EXPECT_FALSE(RenderChat(k, OrderedJson::array(), OrderedJson(), true).ok());
  EXPECT_FALSE(RenderChat(k, OrderedJson::object(), OrderedJson(), true).ok());
  EXPECT_FALSE(RenderChat(k, OrderedJson::parse(R"([{"role": "user"}])"), OrderedJson(), true).ok());
  EXPECT_FALSE(RenderChat(k, OrderedJson::parse(R"([{"role": "user", "content": 3}])"), OrderedJson(), true).ok());
  EXPECT_FALSE(RenderChat(k, OrderedJson::parse(R"([{"role": "user", "content": "x"}])"), OrderedJson::object(), true).ok());
  auto ok = RenderChat(k, OrderedJson::parse(R"([{"role": "user", "content": "x"}])"), OrderedJson::array(), false);
  ASSERT_TRUE(ok.ok());  // an empty tools list is no tools
  EXPECT_EQ(*ok, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                 "<|im_start|>user\nx<|im_end|>\n");
}

TEST(ChatTemplateTest, PythonJsonDumps) {
  const OrderedJson v = OrderedJson::parse(
      R"({"b": 1, "a": [1.5, 2.0, -3, 1e-07, 1e16, true, null], "s": "é\"\n\u0001/", "e": {}, "l": []})");
  EXPECT_EQ(PythonJsonDumps(v),
            "{\"b\": 1, \"a\": [1.5, 2.0, -3, 1e-07, 1e+16, true, null], \"s\": \"é\\\"\\n\\u0001/\", \"e\": {}, \"l\": []}");
}

TEST(ToolCallsTest, ParsesQwenToolCalls) {
  auto one = ParseToolCalls("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>");
  ASSERT_EQ(one.tool_calls.size(), 1u);
  EXPECT_EQ(one.tool_calls[0].name, "get_weather");
  EXPECT_EQ(one.tool_calls[0].arguments["city"], "Rome");
  EXPECT_EQ(one.content, "");
  auto two = ParseToolCalls(
      "Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", "
      "\"arguments\": {\"x\": 1}}\n</tool_call>");
  ASSERT_EQ(two.tool_calls.size(), 2u);
  EXPECT_EQ(two.tool_calls[1].arguments["x"], 1);
  EXPECT_EQ(two.content, "Let me check.");
  auto bad = ParseToolCalls("<tool_call>\n{not json}\n</tool_call>");
  EXPECT_TRUE(bad.tool_calls.empty());
  EXPECT_EQ(bad.content, "<tool_call>\n{not json}\n</tool_call>");
  auto open = ParseToolCalls("text <tool_call>\n{\"name\": \"a\"");
  EXPECT_TRUE(open.tool_calls.empty());
  EXPECT_EQ(open.content, "text <tool_call>\n{\"name\": \"a\"");
}

}  // namespace
}  // namespace qb
