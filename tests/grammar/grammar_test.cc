// The grammar builder and byte recognizer, and the JSON grammars: documents that nlohmann's
// parser accepts (and that meet the schema) are accepted, others refused; random walks through
// each grammar produce only documents that parse and meet the schema.
#include <gtest/gtest.h>

#include <climits>
#include <fmt/format.h>
#include <random>

#include "grammar/grammar_matcher.h"
#include "grammar/grammar_test_util.h"
#include "grammar/json_grammar.h"

namespace qb {
namespace {

using OJson = nlohmann::ordered_json;

using test::Accepts;

std::shared_ptr<const Grammar> Schema(std::string_view schema) {
  auto g = JsonSchemaGrammar(OJson::parse(schema));
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  return g.ok() ? *g : nullptr;
}

size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<uint8_t>(c) & 0xc0) != 0x80;
  return n;
}

// A random sentence of the grammar: at each step one of the allowed bytes, preferring
// structural ones so that walks end; "" when a walk does not end within `limit` bytes.
std::string RandomSentence(const std::shared_ptr<const Grammar>& g, std::mt19937& rng, size_t limit = 300) {
  GrammarMatcher m(g);
  std::string out;
  const std::string preferred = "\"}],:{[0123456789.-eE+ tfnrula\\";
  GrammarState next;
  while (out.size() < limit) {
    if (m.complete() && (rng() % 3 == 0)) return out;
    std::vector<uint8_t> allowed, liked;
    for (int c = 0; c < 256; ++c) {
      m.Step(m.state(), static_cast<uint8_t>(c), &next);
      if (!next.dead()) {
        allowed.push_back(static_cast<uint8_t>(c));
        if (preferred.find(static_cast<char>(c)) != std::string::npos) liked.push_back(static_cast<uint8_t>(c));
      }
    }
    if (allowed.empty()) return m.complete() ? out : "";
    const auto& from = !liked.empty() && rng() % 8 != 0 ? liked : allowed;
    const char c = static_cast<char>(from[rng() % from.size()]);
    EXPECT_TRUE(m.Advance(std::string(1, c)));
    out += c;
  }
  return "";
}

TEST(GrammarBuilderTest, RefusesLeftRecursionAndUndefinedRules) {
  {
    GrammarBuilder b;
    const uint32_t r = b.NewRule();  // r := r "a" | "a"
    b.Define(r, {{GrammarBuilder::Rule(r), b.Byte('a')}, {b.Byte('a')}});
    auto g = b.Build(r);
    ASSERT_FALSE(g.ok());
    EXPECT_NE(g.status().message().find("left-recursive"), std::string::npos);
  }
  {
    GrammarBuilder b;  // r := n r "a" with n nullable: still left recursion
    const uint32_t r = b.NewRule();
    const GrammarElement n = b.Optional({b.Byte('x')});
    b.Define(r, {{n, GrammarBuilder::Rule(r), b.Byte('a')}, {b.Byte('b')}});
    EXPECT_FALSE(b.Build(r).ok());
  }
  {
    GrammarBuilder b;
    const uint32_t r = b.NewRule();
    const uint32_t undefined = b.NewRule();
    b.Define(r, {{GrammarBuilder::Rule(undefined)}});
    EXPECT_FALSE(b.Build(r).ok());
  }
}

TEST(GrammarMatcherTest, RecognizesAGrammarByteByByte) {
  // s := "a" s "b" | "" (a^n b^n: needs the stack), then "!"
  GrammarBuilder b;
  const uint32_t s = b.NewRule();
  b.Define(s, {{b.Byte('a'), GrammarBuilder::Rule(s), b.Byte('b')}, {}});
  const uint32_t root = b.NewRule();
  b.Define(root, {{GrammarBuilder::Rule(s), b.Byte('!')}});
  auto g = b.Build(root);
  ASSERT_TRUE(g.ok());
  for (const char* ok : {"!", "ab!", "aaabbb!"}) EXPECT_TRUE(Accepts(*g, ok)) << ok;
  for (const char* bad : {"", "a!", "abb!", "aab!", "ab", "ab!!", "ba!"}) EXPECT_FALSE(Accepts(*g, bad)) << bad;
  GrammarMatcher m(*g);
  EXPECT_TRUE(m.Advance("aa"));
  EXPECT_FALSE(m.Advance("ab!"));  // all or nothing: the state is still after "aa"
  EXPECT_TRUE(m.Advance("bb"));
  EXPECT_FALSE(m.complete());
  EXPECT_TRUE(m.Allows("!"));
  EXPECT_FALSE(m.Allows("b"));
  EXPECT_TRUE(m.Advance("!"));
  EXPECT_TRUE(m.complete());
  EXPECT_FALSE(m.Allows("!"));
}

TEST(GrammarMatcherTest, BoundedRepeat) {
  GrammarBuilder b;
  const GrammarElement x = b.Repeat({b.Byte('x')}, 2, 4);
  const uint32_t root = b.NewRule();
  b.Define(root, {{x, b.Byte('.')}});
  auto g = b.Build(root);
  ASSERT_TRUE(g.ok());
  EXPECT_FALSE(Accepts(*g, "x."));
  EXPECT_TRUE(Accepts(*g, "xx."));
  EXPECT_TRUE(Accepts(*g, "xxxx."));
  EXPECT_FALSE(Accepts(*g, "xxxxx."));
}

TEST(JsonGrammarTest, JsonObjectModeAcceptsObjectsOnly) {
  const auto g = JsonObjectGrammar();
  for (const char* ok : {R"({})", R"({"a": 1})", R"({"a":[1,2.5,-3e+2,true,false,null,{"b":"c"}],"d":{}})",
                         "{\n  \"k\": \"caf\xc3\xa9 \\u00e9 \\n \\\" \xe2\x82\xac \xf0\x9f\x98\x80\"\n}", R"({"":0})"})
    EXPECT_TRUE(Accepts(g, ok)) << ok;
  for (const char* bad : {R"([])", R"("a")", R"(1)", R"({"a":})", R"({"a":1,})", R"({'a':1})", R"({"a":01})",
                          R"({"a":1.})", R"({"a":tru})", "{\"a\":\"\x01\"}", "{\"a\":\"\xc3\"}",
                          "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xc0\xaf\"}", R"({"a":"\x"})", R"( {})",
                          R"({"a":1}x)"})
    EXPECT_FALSE(Accepts(g, bad)) << bad;
}

// Up to 120 random sentences of a JSON grammar (those that end), each with its parse; every one
// must parse, and more than 40 must end.
std::vector<std::pair<std::string, OJson>> RandomDocuments(const std::shared_ptr<const Grammar>& g, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::pair<std::string, OJson>> docs;
  for (int i = 0; i < 120; ++i) {
    const std::string s = RandomSentence(g, rng);
    if (s.empty()) continue;
    docs.emplace_back(s, OJson::parse(s, nullptr, false));
    EXPECT_FALSE(docs.back().second.is_discarded()) << s;
  }
  EXPECT_GT(docs.size(), 40u);
  return docs;
}

TEST(JsonGrammarTest, RandomWalksOfJsonModeParse) {
  for (const auto& [s, j] : RandomDocuments(JsonObjectGrammar(), 1)) EXPECT_TRUE(j.is_object()) << s;
}

TEST(JsonGrammarTest, SchemaWithRequiredAndOptionalProperties) {
  const auto g = Schema(R"({"type": "object", "properties": {
      "name": {"type": "string", "minLength": 1, "maxLength": 3},
      "age": {"type": "integer"},
      "tags": {"type": "array", "items": {"enum": ["a", "b", 3]}, "minItems": 1, "maxItems": 2},
      "ok": {"type": "boolean"}},
    "required": ["name", "ok"]})");
  for (const char* ok : {R"({"name":"x","ok":true})", R"({"name":"abc","age":-12,"ok":false})",
                         R"({"name":"ab","tags":["a"],"ok":true})", R"({"name":"ab","age":0,"tags":["b",3],"ok":true})",
                         "{ \"name\" : \"\xc3\xa9\xc3\xa9\" , \"ok\" : true }"})
    EXPECT_TRUE(Accepts(g, ok)) << ok;
  for (const char* bad : {R"({"ok":true})",                            // name missing
                          R"({"name":"","ok":true})",                  // too short
                          R"({"name":"abcd","ok":true})",              // too long
                          R"({"ok":true,"name":"x"})",                 // out of order
                          R"({"name":"x","ok":true,"z":1})",           // extra key
                          R"({"name":"x","age":1.5,"ok":true})",       // not an integer
                          R"({"name":"x","tags":[],"ok":true})",       // too few items
                          R"({"name":"x","tags":["a","b","a"],"ok":true})",  // too many
                          R"({"name":"x","tags":["c"],"ok":true})",    // not in the enum
                          R"({"name":"x","ok":"true"})"})
    EXPECT_FALSE(Accepts(g, bad)) << bad;
}

TEST(JsonGrammarTest, RandomWalksMeetTheSchema) {
  const auto g = Schema(R"({"type": "object", "properties": {
      "id": {"type": "integer"}, "score": {"type": "number"}, "label": {"enum": ["cat", "dog"]},
      "note": {"type": ["string", "null"], "maxLength": 4},
      "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "maxItems": 3}},
    "required": ["id", "label", "items"],
    "$defs": {"item": {"type": "object", "properties": {"k": {"const": "v"}, "n": {"type": "integer"}},
                       "required": ["k"], "additionalProperties": false}}})");
  for (auto [s, j] : RandomDocuments(g, 7)) {
    ASSERT_TRUE(j.is_object()) << s;
    EXPECT_TRUE(j.contains("id") && j["id"].is_number_integer()) << s;
    EXPECT_TRUE(j["label"] == "cat" || j["label"] == "dog") << s;
    if (j.contains("score")) {
      EXPECT_TRUE(j["score"].is_number()) << s;
    }
    if (j.contains("note")) {
      EXPECT_TRUE(j["note"].is_null() || (j["note"].is_string() && CodePoints(j["note"].get<std::string>()) <= 4)) << s;
    }
    ASSERT_TRUE(j["items"].is_array()) << s;
    EXPECT_LE(j["items"].size(), 3u) << s;
    for (const auto& it : j["items"]) {
      EXPECT_EQ(it["k"], "v") << s;
      for (const auto& [k, v] : it.items()) EXPECT_TRUE(k == "k" || (k == "n" && v.is_number_integer())) << s;
    }
    for (const auto& [k, v] : j.items()) EXPECT_TRUE(k == "id" || k == "score" || k == "label" || k == "note" || k == "items") << s;
  }
}

TEST(JsonGrammarTest, RecursiveSchemaAndAnyOf) {
  const auto g = Schema(R"({"$ref": "#/$defs/node", "$defs": {"node": {"type": "object",
      "properties": {"v": {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 2}]},
                     "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
      "required": ["v"]}}})");
  EXPECT_TRUE(Accepts(g, R"({"v":1,"kids":[{"v":"ab"},{"v":2,"kids":[{"v":3}]}]})"));
  EXPECT_FALSE(Accepts(g, R"({"v":1,"kids":[{"v":"abc"}]})"));
  EXPECT_FALSE(Accepts(g, R"({"v":1,"kids":[{}]})"));
}

TEST(JsonGrammarTest, AdditionalPropertiesAndTuples) {
  const auto map = Schema(R"({"type": "object", "additionalProperties": {"type": "integer"}})");
  EXPECT_TRUE(Accepts(map, R"({"x":1,"y":2})"));
  EXPECT_FALSE(Accepts(map, R"({"x":"1"})"));
  // With properties listed, extra keys are never written (one could repeat a listed key with a
  // value of another type; additionalProperties only permits them).
  const auto with_extra = Schema(R"({"type": "object", "properties": {"a": {"type": "integer"}},
      "additionalProperties": true})");
  EXPECT_TRUE(Accepts(with_extra, R"({"a":1})"));
  EXPECT_TRUE(Accepts(with_extra, R"({})"));
  EXPECT_FALSE(Accepts(with_extra, R"({"a":"old"})"));
  EXPECT_FALSE(Accepts(with_extra, R"({"a":1,"a":"x"})"));
  EXPECT_FALSE(Accepts(with_extra, R"({"b":[1]})"));
  const auto none = Schema(R"({"type": "object", "additionalProperties": false})");
  EXPECT_TRUE(Accepts(none, R"({})"));
  EXPECT_FALSE(Accepts(none, R"({"a":1})"));
  const auto tuple = Schema(R"({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false})");
  EXPECT_TRUE(Accepts(tuple, R"(["a",1])"));
  EXPECT_TRUE(Accepts(tuple, R"(["a"])"));
  EXPECT_FALSE(Accepts(tuple, R"(["a",1,2])"));
  EXPECT_FALSE(Accepts(tuple, R"([1])"));
  const auto any = Schema(R"({})");
  for (const char* ok : {"1", "\"s\"", "[1,{}]", "null"}) EXPECT_TRUE(Accepts(any, ok)) << ok;
}

TEST(JsonGrammarTest, UnsupportedKeywordsAreRefusedWithTheirPlace) {
  for (const char* schema : {R"({"type": "number", "multipleOf": 3})",
                             R"({"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 2}}})",
                             R"({"type": "wat"})", R"({"$ref": "http://example.com/s.json"})",
                             R"({"$ref": "#/$defs/missing"})", R"({"allOf": [{}, {}]})", R"(false)",
                             R"({"type": "string", "maxLength": 1, "minLength": 2})"}) {
    auto g = JsonSchemaGrammar(OJson::parse(schema));
    EXPECT_FALSE(g.ok()) << schema;
  }
  auto g = JsonSchemaGrammar(OJson::parse(R"({"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 2}}})"));
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("#/properties/n"), std::string::npos) << g.status().message();
  EXPECT_NE(g.status().message().find("multipleOf"), std::string::npos) << g.status().message();
  // A schema whose only way to start is itself cannot be generated.
  EXPECT_FALSE(JsonSchemaGrammar(OJson::parse(R"({"$ref": "#"})")).ok());
  // Annotations are fine.
  EXPECT_TRUE(JsonSchemaGrammar(OJson::parse(R"({"title": "T", "description": "d", "type": "string", "format": "date",
                                                 "default": "x", "examples": ["y"]})")).ok());
}

TEST(JsonGrammarTest, ForcedToolCalls) {
  const std::vector<ToolSchema> tools = {
      {"add", OJson::parse(R"({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
                               "additionalProperties": false})")},
      {"now", OJson::parse(R"({"type": "object", "additionalProperties": false})")}};
  auto named = ToolCallGrammar({tools[0]}, true, true);
  ASSERT_TRUE(named.ok());
  EXPECT_TRUE(Accepts(*named, "{\"a\": 1}}\n</tool_call>"));
  EXPECT_FALSE(Accepts(*named, "{\"a\": \"1\"}}\n</tool_call>"));
  EXPECT_FALSE(Accepts(*named, "{\"a\": 1}"));
  auto one = ToolCallGrammar(tools, false, false);
  auto many = ToolCallGrammar(tools, false, true);
  ASSERT_TRUE(one.ok() && many.ok());
  const std::string add = "{\"name\": \"add\", \"arguments\": {\"a\": 2}}\n</tool_call>";
  const std::string now = "{\"name\": \"now\", \"arguments\": {}}\n</tool_call>";
  EXPECT_TRUE(Accepts(*one, add));
  EXPECT_TRUE(Accepts(*one, now));
  EXPECT_FALSE(Accepts(*one, add + "\n<tool_call>\n" + now));
  EXPECT_TRUE(Accepts(*many, add + "\n<tool_call>\n" + now));
  EXPECT_FALSE(Accepts(*many, "{\"name\": \"sub\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(ToolCallGrammar({{"bad", OJson::parse(R"({"type": "string", "pattern": "(x"})")}}, true, true).ok());
  // Beside a document's schema (structured output with tools): the document, or the calls after
  // their opening tag.
  auto doc = Schema(R"({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
                        "additionalProperties": false})");
  auto both = UnionGrammar(*doc, **many, "<tool_call>\n");
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  EXPECT_TRUE(Accepts(*both, "{\"ok\": true}"));
  EXPECT_TRUE(Accepts(*both, "<tool_call>\n" + add));
  EXPECT_TRUE(Accepts(*both, "<tool_call>\n" + add + "\n<tool_call>\n" + now));
  EXPECT_FALSE(Accepts(*both, add));
  EXPECT_FALSE(Accepts(*both, "<tool_call>\n{\"ok\": true}"));
  EXPECT_FALSE(Accepts(*both, "{\"ok\": 1}"));
}

// Integer bounds: every integer in a window around the bounds is accepted exactly when it is
// within them (inclusive and exclusive, negative, across digit counts).
TEST(JsonGrammarTest, IntegerBoundsAcceptExactlyTheRange) {
  struct Case {
    const char* bounds;
    int64_t lo, hi;
  };
  const Case cases[] = {{R"("minimum": 0)", 0, INT64_MAX},
                        {R"("minimum": 5, "maximum": 150)", 5, 150},
                        {R"("exclusiveMinimum": -13, "exclusiveMaximum": 1000)", -12, 999},
                        {R"("minimum": -250, "maximum": -7)", -250, -7},
                        {R"("minimum": 1.5, "maximum": 99.5)", 2, 99},
                        {R"("maximum": 0)", INT64_MIN, 0},
                        {R"("minimum": 7, "maximum": 7)", 7, 7},
                        {R"("minimum": 1999, "maximum": 20301)", 1999, 20301}};
  for (const Case& c : cases) {
    auto g = JsonSchemaGrammar(OJson::parse(std::string(R"({"type": "integer", )") + c.bounds + "}"));
    ASSERT_TRUE(g.ok()) << c.bounds << ": " << g.status().ToString();
    for (int64_t v = -1200; v <= 21000; ++v)
      ASSERT_EQ(Accepts(*g, std::to_string(v)), v >= c.lo && v <= c.hi) << c.bounds << " at " << v;
    EXPECT_FALSE(Accepts(*g, "007")) << c.bounds;
    EXPECT_FALSE(Accepts(*g, "-0")) << c.bounds;
  }
  EXPECT_FALSE(JsonSchemaGrammar(OJson::parse(R"({"type": "integer", "minimum": 5, "maximum": 4})")).ok());
  EXPECT_FALSE(JsonSchemaGrammar(OJson::parse(R"({"type": "number", "maximum": 4})")).ok());
  EXPECT_FALSE(JsonSchemaGrammar(OJson::parse(R"({"minimum": 4})")).ok());
  auto nonneg = JsonSchemaGrammar(OJson::parse(R"({"type": "number", "minimum": 0})"));
  ASSERT_TRUE(nonneg.ok());
  EXPECT_TRUE(Accepts(*nonneg, "0.5"));
  EXPECT_TRUE(Accepts(*nonneg, "12e3"));
  EXPECT_FALSE(Accepts(*nonneg, "-0.5"));
}

// Found in review: each of these once crashed, hung or accepted what the schema forbids.
TEST(JsonGrammarTest, HostileAndContradictorySchemas) {
  // A count past 2^63 is refused, not wrapped to a negative bound.
  for (const char* k : {"minLength", "maxLength"}) {
    OJson schema = {{"type", "string"}};
    schema[k] = 18446744073709551615u;
    EXPECT_FALSE(JsonSchemaGrammar(schema).ok()) << k;
  }
  EXPECT_FALSE(JsonSchemaGrammar(OJson::parse(R"({"type": "array", "minItems": 18446744073709551615})")).ok());
  // A chain of 30 definitions, each two alternatives naming the next: 2^30 paths, one stack.
  OJson defs = OJson::object();
  for (int i = 0; i < 30; ++i) {
    const std::string next = fmt::format("#/$defs/d{}", i + 1);
    defs[fmt::format("d{}", i)] = {{"anyOf", {{{"$ref", next}}, {{"$ref", next}}}}};
  }
  defs["d30"] = {{"type", "integer"}};
  OJson chain = {{"$ref", "#/$defs/d0"}, {"$defs", defs}};
  auto g = JsonSchemaGrammar(chain);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_TRUE(Accepts(*g, "42"));
  // Repeated types nested 20 deep: built once per distinct type, and within the rule budget.
  OJson nested = {{"type", "integer"}};
  for (int i = 0; i < 20; ++i) nested = {{"type", {"object", "object"}}, {"properties", {{"a", nested}}}};
  auto n = JsonSchemaGrammar(nested);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  // Genuinely different alternatives nested 17 deep: refused by the rule budget, not built.
  OJson wide = {{"type", "integer"}};
  for (int i = 0; i < 17; ++i) wide = {{"anyOf", {wide, wide}}};  // 131,072 leaves
  EXPECT_FALSE(JsonSchemaGrammar(wide).ok());
  // Keywords beside $ref / enum / anyOf are refused; `type` beside enum keeps that type's values.
  EXPECT_FALSE(JsonSchemaGrammar(OJson::parse(R"({"type": "object", "properties": {"x": {"type": "integer"}},
      "anyOf": [{"required": ["x"]}]})")).ok());
  auto e = JsonSchemaGrammar(OJson::parse(R"({"type": "string", "enum": ["a", 1], "description": "d"})"));
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(Accepts(*e, "\"a\""));
  EXPECT_FALSE(Accepts(*e, "1"));
  EXPECT_TRUE(JsonSchemaGrammar(OJson::parse(R"({"$ref": "#/$defs/a", "description": "x", "$defs": {"a": {"type": "null"}}})")).ok());
  // Schemas no document can meet.
  EXPECT_FALSE(JsonSchemaGrammar(OJson::parse(R"({"type": "array", "items": false, "minItems": 1})")).ok());
  EXPECT_FALSE(JsonSchemaGrammar(OJson::parse(R"({"type": "object", "required": ["a"], "properties": {"b": {}},
      "additionalProperties": false})")).ok());
  // \u escapes: no lone surrogate; a pair is fine.
  const auto str = Schema(R"({"type": "string"})");
  EXPECT_TRUE(Accepts(str, R"("\u00e9\ud83d\ude00")"));
  EXPECT_FALSE(Accepts(str, R"("\ud800")"));
  EXPECT_FALSE(Accepts(str, R"("\udc00\ud800")"));
  // JSON mode nests at most 32 levels.
  auto nest = [](size_t levels) {
    std::string doc = "{\"a\":";
    doc.append(levels, '[');
    doc.append(levels, ']');
    doc.push_back('}');
    return doc;
  };
  EXPECT_TRUE(Accepts(JsonObjectGrammar(), nest(32)));
  EXPECT_FALSE(Accepts(JsonObjectGrammar(), nest(40)));
}

TEST(JsonGrammarTest, Choices) {
  auto g = ChoiceGrammar({"yes", "no", "maybe not"});
  ASSERT_TRUE(g.ok());
  for (const char* ok : {"yes", "no", "maybe not"}) EXPECT_TRUE(Accepts(*g, ok));
  for (const char* bad : {"ye", "yes ", "maybe", "No"}) EXPECT_FALSE(Accepts(*g, bad));
  EXPECT_FALSE(ChoiceGrammar({}).ok());
  EXPECT_FALSE(ChoiceGrammar({"a", ""}).ok());
}

}  // namespace
}  // namespace qb
