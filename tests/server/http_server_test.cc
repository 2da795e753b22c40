// The HTTP server end to end over loopback, on the demo model (random tiny weights, the real
// Qwen2.5 tokenizer and chat template): both APIs, streaming and not, every error path,
// disconnects, draining, metrics.
#include "server/http_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <regex>
#include <thread>

#include "assets/assets.h"
#include "common/model_runner.h"
#include "common/run_command.h"
#include "common/test_paths.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"
#include "util/thread_pool.h"

namespace qb {
namespace {

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto preset = FindPreset("tiny");
    ASSERT_TRUE(preset.ok());
    model_ = std::make_shared<const Qwen2Model>(preset->config, RandomWeightsInMemory(*preset, DType::kBF16, 0));
    auto tok = LoadTokenizerFromText(assets::Qwen25TokenizerJson(), assets::Qwen25TokenizerConfigJson(), "built-in");
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    tok_ = *tok;
    pool_ = std::make_unique<ThreadPool>(2);
  }
  static void TearDownTestSuite() {
    model_.reset();
    tok_.reset();
    pool_.reset();
  }

  void Start(ServerConfig sc = {}, int64_t max_queue = 0, int64_t max_num_seqs = 16, SpeculativeConfig sp = {}) {
    EngineConfig ec;
    ec.speculative = sp;
    ec.kv_blocks = 256;
    ec.max_total_tokens = 1024;
    ec.max_queue = max_queue;
    ec.scheduler.max_num_seqs = max_num_seqs;
    ec.eos_token_ids = {151645, 151643};
    engine_ = std::make_unique<Engine>(model_, tok_, ec, kernels::ExecContext{pool_.get(), kernels::DetectIsa()});
    sc.host = "127.0.0.1";
    sc.port = 0;
    sc.heartbeat_s = 0.05;
    server_ = std::make_unique<HttpServer>(sc);
    ASSERT_TRUE(server_->Start().ok());
    ServedModel m;
    m.engine = engine_.get();
    m.tokenizer = tok_;
    m.chat_template = ChatTemplateKind::kQwen25;
    m.defaults.temperature = 0;
    m.defaults.max_total_tokens = 1024;
    m.compute_threads = 2;
    server_->SetModel(m);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(30);
  }
  void TearDown() override {
    client_.reset();
    if (server_) server_->Stop();
    engine_.reset();
    server_.reset();
  }

  // A raw client: connects, sends a POST of `body` and returns the socket (-1 on failure), for
  // tests that hang up or hold the connection.
  int SendRaw(const std::string& path, const std::string& body) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return -1;
    const std::string req = "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body;
    if (::send(fd, req.data(), req.size(), 0) != static_cast<ssize_t>(req.size())) return -1;
    return fd;
  }

  // Sends `request` as it is and returns what the server writes until a response with a
  // Content-Length is complete or the server closes the connection; "<no answer>" is appended
  // after 10 s of silence.
  std::string Exchange(const std::string& request) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string out;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
      char buf[4096];
      for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n == 0) break;
        if (n < 0) {
          out += "<no answer>";
          break;
        }
        out.append(buf, static_cast<size_t>(n));
        const size_t end = out.find("\r\n\r\n"), length = out.find("Content-Length: ");
        if (end != std::string::npos && length != std::string::npos && length < end &&
            out.size() >= end + 4 + std::stoul(out.substr(length + 16)))
          break;
      }
    }
    ::close(fd);
    return out;
  }

  httplib::Result Post(const std::string& path, const std::string& body, httplib::Headers h = {}) {
    return client_->Post(path.c_str(), h, body, "application/json");
  }
  OrderedJson PostJson(const std::string& path, const std::string& body, int want_status = 200) {
    auto r = Post(path, body);
    EXPECT_TRUE(r) << path;
    if (!r) return {};
    EXPECT_EQ(r->status, want_status) << path << " " << body << " -> " << r->body;
    return OrderedJson::parse(r->body, nullptr, false);
  }
  // Data lines of an SSE body (without "data:" and the [DONE] marker).
  static std::vector<OrderedJson> Events(const std::string& body, bool* done) {
    std::vector<OrderedJson> out;
    *done = false;
    size_t pos = 0;
    while ((pos = body.find("data:", pos)) != std::string::npos) {
      size_t end = body.find("\n\n", pos);
      std::string data = body.substr(pos + 5, end - pos - 5);
      if (!data.empty() && data[0] == ' ') data.erase(0, 1);
      if (data == "[DONE]") *done = true;
      else out.push_back(OrderedJson::parse(data, nullptr, false));
      pos = end;
    }
    return out;
  }

  static std::shared_ptr<const Qwen2Model> model_;
  static std::shared_ptr<const Tokenizer> tok_;
  static std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<httplib::Client> client_;
};
std::shared_ptr<const Qwen2Model> ServerTest::model_;
std::shared_ptr<const Tokenizer> ServerTest::tok_;
std::unique_ptr<ThreadPool> ServerTest::pool_;

const char kChat[] = R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}], "max_tokens": 12, "temperature": 0})";

TEST_F(ServerTest, HealthReadyModelsInfo) {
  Start();
  auto h = client_->Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(client_->Get("/ready")->status, 200);
  const OrderedJson models = OrderedJson::parse(client_->Get("/v1/models")->body);
  EXPECT_EQ(models["data"][0]["id"], "qwenbox");
  auto one = client_->Get("/v1/models/qwenbox");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->status, 200);
  EXPECT_EQ(OrderedJson::parse(one->body), models["data"][0]);
  EXPECT_EQ(client_->Get("/v1/models/nope")->status, 404);
  const OrderedJson info = OrderedJson::parse(client_->Get("/info")->body);
  EXPECT_EQ(info["max_total_tokens"], 1024);
  EXPECT_FALSE(client_->Get("/v1/models")->get_header_value("X-Request-Id").empty());
}

TEST_F(ServerTest, ChatStreamingAndNot) {
  Start();
  const OrderedJson a = PostJson("/v1/chat/completions", kChat);
  EXPECT_EQ(a["object"], "chat.completion");
  EXPECT_EQ(a["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(a["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(a["usage"]["completion_tokens"], 12);
  const std::string content = a["choices"][0]["message"]["content"].get<std::string>();
  // The same request streamed: the deltas add up to the same text (greedy).
  OrderedJson body = OrderedJson::parse(kChat);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  auto r = Post("/v1/chat/completions", body.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  bool done = false;
  const auto events = Events(r->body, &done);
  EXPECT_TRUE(done);
  std::string streamed;
  std::string finish;
  OrderedJson usage;
  for (const auto& e : events) {
    if (e.contains("usage")) usage = e["usage"];
    if (e["choices"].empty()) continue;
    const auto& ch = e["choices"][0];
    if (ch["delta"].contains("content")) streamed += ch["delta"]["content"].get<std::string>();
    if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
  }
  EXPECT_EQ(streamed, content);
  EXPECT_EQ(finish, "length");
  EXPECT_EQ(usage["completion_tokens"], 12);
  EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
}

// tool_choice "required" and a named function start the reply with the call (the micro model's
// random weights rarely finish it, so the reply is either the parsed call or text that begins
// with the forced prefix).
// A forced call (a named function, or "required") is written in Qwen2.5's format with
// arguments that follow the function's parameters schema, even by the random demo model.
TEST_F(ServerTest, ForcedToolChoice) {
  Start();
  const std::string tools =
      R"("tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
                      "properties": {"city": {"type": "string", "maxLength": 8}, "days": {"type": "integer"}},
                      "required": ["city", "days"], "additionalProperties": false}}},
                   {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object",
                      "properties": {"utc": {"type": "boolean"}}, "required": ["utc"], "additionalProperties": false}}}])";
  const std::string named = R"({"messages": [{"role": "user", "content": "Weather?"}], "max_tokens": 100, )" + tools +
                            R"(, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})";
  const OrderedJson a = PostJson("/v1/chat/completions", named);
  EXPECT_EQ(a["choices"][0]["finish_reason"], "tool_calls") << a.dump();
  const OrderedJson& msg = a["choices"][0]["message"];
  ASSERT_TRUE(msg.contains("tool_calls") && msg["tool_calls"].size() == 1) << msg.dump();
  EXPECT_EQ(msg["tool_calls"][0]["function"]["name"], "get_weather");
  const OrderedJson args = OrderedJson::parse(msg["tool_calls"][0]["function"]["arguments"].get<std::string>());
  EXPECT_TRUE(args["city"].is_string() && args["days"].is_number_integer() && args.size() == 2) << args.dump();
  // Call ids are unique across requests (clients match tool results to calls by id).
  const OrderedJson again = PostJson("/v1/chat/completions", named);
  ASSERT_TRUE(again["choices"][0]["message"].contains("tool_calls")) << again.dump();
  const std::string id_a = msg["tool_calls"][0]["id"].get<std::string>();
  EXPECT_TRUE(id_a.starts_with("call_")) << id_a;
  EXPECT_NE(id_a, again["choices"][0]["message"]["tool_calls"][0]["id"].get<std::string>());
  for (bool parallel : {false, true}) {
    const OrderedJson b = PostJson("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 150, )" +
                                                               tools + R"(, "tool_choice": "required", "parallel_tool_calls": )" +
                                                               (parallel ? "true" : "false") + "}");
    const OrderedJson& mb = b["choices"][0]["message"];
    ASSERT_TRUE(mb.contains("tool_calls") && !mb["tool_calls"].empty()) << mb.dump();
    if (!parallel) {
      EXPECT_EQ(mb["tool_calls"].size(), 1u) << mb.dump();
    }
    for (const auto& call : mb["tool_calls"]) {
      const std::string name = call["function"]["name"].get<std::string>();
      EXPECT_TRUE(name == "get_weather" || name == "get_time") << name;
      EXPECT_TRUE(OrderedJson::parse(call["function"]["arguments"].get<std::string>()).is_object()) << mb.dump();
    }
  }
  // Parameters the grammar cannot enforce leave the forced call unconstrained (no 400).
  PostJson("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 4,
      "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                 "properties": {"n": {"type": "integer", "multipleOf": 2}}}}}], "tool_choice": "required"})");
  auto unknown = Post("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], )" + tools +
                                                  R"(, "tool_choice": {"type": "function", "function": {"name": "nope"}}})");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 400);
  EXPECT_NE(unknown->body.find("not among the tools"), std::string::npos) << unknown->body;
}

TEST_F(ServerTest, CompletionsTgiTokenize) {
  Start();
  const OrderedJson c = PostJson("/v1/completions", R"({"prompt": "Hello", "max_tokens": 4, "logprobs": 2, "n": 2, "temperature": 0})");
  ASSERT_EQ(c["choices"].size(), 2u);
  EXPECT_EQ(c["choices"][0]["text"], c["choices"][1]["text"]);  // greedy: n copies agree
  EXPECT_EQ(c["choices"][0]["logprobs"]["tokens"].size(), 4u);
  EXPECT_EQ(c["choices"][0]["logprobs"]["top_logprobs"][0].size(), 2u);
  EXPECT_EQ(c["usage"]["completion_tokens"], 8);
  const OrderedJson g = PostJson("/generate", R"({"inputs": "Hello", "parameters": {"max_new_tokens": 5, "details": true}})");
  EXPECT_EQ(g["details"]["generated_tokens"], 5);
  EXPECT_EQ(g["details"]["tokens"].size(), 5u);
  EXPECT_EQ(g["details"]["finish_reason"], "length");
  auto s = Post("/generate_stream", R"({"inputs": "Hello", "parameters": {"max_new_tokens": 5}})");
  ASSERT_TRUE(s);
  bool done = false;
  const auto events = Events(s->body, &done);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["generated_text"], g["generated_text"]);
  // As TGI: one event per token, the last token's event carrying the details.
  ASSERT_EQ(events.size(), 5u) << s->body;
  std::string streamed;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i]["token"]["id"], g["details"]["tokens"][i]["id"]) << i;
    streamed += events[i]["token"]["text"].get<std::string>();
  }
  EXPECT_EQ(streamed, g["generated_text"]);
  EXPECT_EQ(events.back()["details"]["generated_tokens"], 5);
  EXPECT_EQ(PostJson("/generate", R"({"inputs": "Hello", "stream": null, "parameters": {"max_new_tokens": 5}})")["generated_text"],
            g["generated_text"]);  // null is absent
  const OrderedJson t = PostJson("/tokenize", R"({"inputs": "Hello world"})");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0]["id"], 9707);
  EXPECT_EQ(t[1]["start"], 5);
  const OrderedJson d = PostJson("/detokenize", R"({"tokens": [9707, 1879]})");
  EXPECT_EQ(d["prompt"], "Hello world");
}

// logit_bias as OpenAI's (a map of token ids to biases) and vLLM's min_tokens, on both APIs.
TEST_F(ServerTest, LogitBiasAndMinTokens) {
  Start();
  const OrderedJson forced = PostJson("/v1/completions", R"({"prompt": "Hi", "max_tokens": 3, "temperature": 0.9,
                                                            "logit_bias": {"9707": 100}})");
  EXPECT_EQ(forced["choices"][0]["text"], "HelloHelloHello");
  // The end id forced, but not before 3 tokens: 3 tokens and the end (which has no text).
  const OrderedJson late = PostJson("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}],
      "max_tokens": 8, "min_tokens": 3, "logit_bias": {"151645": 100}})");
  EXPECT_EQ(late["usage"]["completion_tokens"], 4);
  EXPECT_EQ(late["choices"][0]["finish_reason"], "stop");
  const OrderedJson at_once = PostJson("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}],
      "max_tokens": 8, "logit_bias": {"151645": 100}})");
  EXPECT_EQ(at_once["usage"]["completion_tokens"], 1);
  EXPECT_EQ(at_once["choices"][0]["message"]["content"], "");
}

// Scoring a text through the API (lm-evaluation-harness sends echo, logprobs 1 and max_tokens 1;
// OpenAI's max_tokens 0 only scores): each prompt token's logprob is the model's, the same that generation reports
// for that token; vLLM's prompt_logprobs and TGI's decoder_input_details give the same numbers.
TEST_F(ServerTest, EchoAndPromptLogprobsScoreThePrompt) {
  Start();
  const std::string prompt = "The capital of France is Paris, and";
  const std::vector<int32_t> ids = tok_->Encode(prompt);
  ASSERT_GT(ids.size(), 5u);
  const OrderedJson e = PostJson("/v1/completions", R"({"prompt": ")" + prompt + R"(", "max_tokens": 0, "echo": true, "logprobs": 2})");
  const OrderedJson& ch = e["choices"][0];
  EXPECT_EQ(ch["text"], prompt);
  EXPECT_EQ(ch["finish_reason"], "length");
  EXPECT_EQ(e["usage"]["completion_tokens"], 0);
  EXPECT_EQ(e["usage"]["prompt_tokens"], ids.size());
  const OrderedJson& lp = ch["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), ids.size());
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  EXPECT_EQ(lp["text_offset"][1], lp["tokens"][0].get<std::string>().size());
  const auto want = test::AllPositionLogits(*model_, ids, kernels::ExecContext{pool_.get(), kernels::DetectIsa()});
  for (size_t i = 1; i < ids.size(); ++i) {
    const TokenLogprobs ref = LogprobsOf(want[i - 1], ids[i], 2, true);
    EXPECT_NEAR(lp["token_logprobs"][i].get<double>(), ref.logprob, 2e-2) << i;
    EXPECT_EQ(lp["top_logprobs"][i].size(), 2u) << i;
  }
  // Generation's logprobs of two greedy tokens = their scores once they are part of the prompt.
  const OrderedJson g = PostJson("/v1/completions", R"({"prompt": ")" + prompt + R"(", "max_tokens": 2, "logprobs": 0, "temperature": 0})");
  std::vector<int32_t> longer = ids;
  OrderedJson body = {{"prompt", OrderedJson::array()}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 0}};
  for (int32_t t : ids) body["prompt"].push_back(t);
  for (const auto& t : g["choices"][0]["logprobs"]["tokens"]) {
    const std::vector<int32_t> one = tok_->Encode(t.get<std::string>());
    ASSERT_EQ(one.size(), 1u);
    body["prompt"].push_back(one[0]);
  }
  body["prompt"] = OrderedJson::array({body["prompt"]});  // as lm-evaluation-harness: a batch of one
  const OrderedJson s = PostJson("/v1/completions", body.dump());
  const OrderedJson& slp = s["choices"][0]["logprobs"]["token_logprobs"];
  ASSERT_EQ(slp.size(), ids.size() + 2);
  for (size_t k = 0; k < 2; ++k)
    EXPECT_NEAR(slp[ids.size() + k].get<double>(), g["choices"][0]["logprobs"]["token_logprobs"][k].get<double>(), 1e-3) << k;
  EXPECT_EQ(s["choices"][0]["text"], prompt + g["choices"][0]["text"].get<std::string>());
  // lm-evaluation-harness's own request: a batch of token-id lists, max_tokens 1, and it reads
  // token_logprobs[ctxlen:-1] (the generated token is last); n = 2 shares the prompt's scores.
  OrderedJson harness = {{"prompt", OrderedJson::array({ids, ids})}, {"max_tokens", 1}, {"echo", true}, {"logprobs", 1},
                         {"temperature", 0}, {"n", 2}, {"prompt_logprobs", 3}};
  const OrderedJson h = PostJson("/v1/completions", harness.dump());
  ASSERT_EQ(h["choices"].size(), 4u);
  for (size_t c = 0; c < 4; ++c) {
    const OrderedJson& hl = h["choices"][c]["logprobs"];
    ASSERT_EQ(hl["token_logprobs"].size(), ids.size() + 1) << c;
    for (size_t i = 1; i < ids.size(); ++i) {
      EXPECT_NEAR(hl["token_logprobs"][i].get<double>(), lp["token_logprobs"][i].get<double>(), 1e-5) << c << " " << i;
      EXPECT_EQ(hl["top_logprobs"][i].size(), 1u);  // logprobs 1, though prompt_logprobs asked 3
    }
    EXPECT_EQ(h["choices"][c]["prompt_logprobs"].size(), ids.size());
    EXPECT_LE(h["choices"][c]["prompt_logprobs"][1].size(), 4u);  // the token and at most 3 others
  }
  // echo with tokens after the prompt: the prompt, then what a plain request makes.
  const OrderedJson more = PostJson("/v1/completions", R"({"prompt": ")" + prompt + R"(", "max_tokens": 2, "echo": true, "temperature": 0})");
  EXPECT_EQ(more["choices"][0]["text"], prompt + g["choices"][0]["text"].get<std::string>());
  EXPECT_EQ(more["usage"]["completion_tokens"], 2);
  // vLLM's prompt_logprobs (completions: per choice; chat: beside the choices) and TGI's prefill.
  const OrderedJson v = PostJson("/v1/completions", R"({"prompt": ")" + prompt + R"(", "max_tokens": 1, "prompt_logprobs": 1})");
  const OrderedJson& pl = v["choices"][0]["prompt_logprobs"];
  ASSERT_EQ(pl.size(), ids.size());
  EXPECT_TRUE(pl[0].is_null());
  for (size_t i = 1; i < ids.size(); ++i) {
    const OrderedJson& mine = pl[i][std::to_string(ids[i])];
    EXPECT_NEAR(mine["logprob"].get<double>(), lp["token_logprobs"][i].get<double>(), 1e-5) << i;
    EXPECT_GE(mine["rank"].get<int>(), 1);
    EXPECT_GE(pl[i].size(), 1u);
    EXPECT_LE(pl[i].size(), 2u);
  }
  const OrderedJson c = PostJson("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1, "prompt_logprobs": 0})");
  EXPECT_TRUE(c["prompt_logprobs"][0].is_null());
  EXPECT_EQ(c["prompt_logprobs"].size(), c["usage"]["prompt_tokens"]);
  const OrderedJson t = PostJson("/generate", R"({"inputs": ")" + prompt + R"(", "parameters": {"max_new_tokens": 1, "details": true, "decoder_input_details": true}})");
  const OrderedJson& prefill = t["details"]["prefill"];
  ASSERT_EQ(prefill.size(), ids.size());
  EXPECT_TRUE(prefill[0]["logprob"].is_null());
  for (size_t i = 1; i < ids.size(); ++i)
    EXPECT_NEAR(prefill[i]["logprob"].get<double>(), lp["token_logprobs"][i].get<double>(), 1e-5) << i;
  // Streamed: the prompt (and its logprobs) in a first chunk of its own.
  auto st = Post("/v1/completions", R"({"prompt": ")" + prompt + R"(", "max_tokens": 2, "echo": true, "logprobs": 1, "stream": true, "temperature": 0})");
  ASSERT_TRUE(st);
  bool done = false;
  const auto events = Events(st->body, &done);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[0]["choices"][0]["text"], prompt);
  EXPECT_EQ(events[0]["choices"][0]["logprobs"]["tokens"].size(), ids.size());
  std::string streamed;
  for (const auto& ev : events) streamed += ev["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(streamed, more["choices"][0]["text"]);
  auto st0 = Post("/v1/completions", R"({"prompt": ")" + prompt + R"(", "max_tokens": 0, "echo": true, "stream": true})");
  ASSERT_TRUE(st0);
  std::string only;
  for (const auto& ev : Events(st0->body, &done)) only += ev["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(only, prompt);
}

// A batch of prompts (OpenAI's array form; lm-evaluation-harness sends one): n choices per
// prompt in order, each what the prompt alone gives; usage counts each prompt once.
TEST_F(ServerTest, CompletionsTakeABatchOfPrompts) {
  Start();
  auto single = [&](const std::string& prompt) {
    return PostJson("/v1/completions", R"({"prompt": ")" + prompt + R"(", "max_tokens": 3, "temperature": 0})")["choices"][0]["text"];
  };
  const OrderedJson b = PostJson("/v1/completions", R"({"prompt": ["Hello", "The sky is"], "max_tokens": 3, "temperature": 0, "n": 2})");
  ASSERT_EQ(b["choices"].size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(b["choices"][i]["index"], i);
  EXPECT_EQ(b["choices"][0]["text"], single("Hello"));
  EXPECT_EQ(b["choices"][1]["text"], single("Hello"));
  EXPECT_EQ(b["choices"][2]["text"], single("The sky is"));
  EXPECT_EQ(b["choices"][3]["text"], single("The sky is"));
  EXPECT_EQ(b["usage"]["prompt_tokens"], tok_->Encode("Hello").size() + tok_->Encode("The sky is").size());
  EXPECT_EQ(b["usage"]["completion_tokens"], 12);
  // Token-id prompts, scored: each choice echoes its own prompt.
  const auto a = tok_->Encode("one two three"), c = tok_->Encode("four five");
  OrderedJson body = {{"prompt", {a, c}}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 1}};
  const OrderedJson e = PostJson("/v1/completions", body.dump());
  ASSERT_EQ(e["choices"].size(), 2u);
  EXPECT_EQ(e["choices"][0]["text"], "one two three");
  EXPECT_EQ(e["choices"][1]["text"], "four five");
  EXPECT_EQ(e["choices"][1]["logprobs"]["tokens"].size(), c.size());
  // Streamed: chunks of both choices, each adding up to its text.
  auto st = Post("/v1/completions", R"({"prompt": ["Hello", "The sky is"], "max_tokens": 3, "temperature": 0, "stream": true})");
  ASSERT_TRUE(st);
  bool done = false;
  std::string texts[2];
  for (const auto& ev : Events(st->body, &done)) {
    const size_t i = ev["choices"][0]["index"].get<size_t>();
    ASSERT_LT(i, 2u);
    texts[i] += ev["choices"][0]["text"].get<std::string>();
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(texts[0], single("Hello"));
  EXPECT_EQ(texts[1], single("The sky is"));
  OrderedJson many = {{"prompt", std::vector<std::string>(257, "x")}, {"max_tokens", 1}};
  const OrderedJson too_many = PostJson("/v1/completions", many.dump(), 400);
  EXPECT_NE(too_many["error"]["message"].get<std::string>().find("at most 256"), std::string::npos);
}

// vLLM's continue_final_message: the reply goes on from the last assistant message, exactly as
// a completion of the rendered conversation cut before that message's end of turn.
TEST_F(ServerTest, ContinueFinalMessage) {
  Start();
  const OrderedJson chat = PostJson("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Write"},
      {"role": "assistant", "content": "Once upon"}], "continue_final_message": true, "add_generation_prompt": false,
      "max_tokens": 5, "temperature": 0})");
  const std::string rendered =
      "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
      "<|im_start|>user\nWrite<|im_end|>\n<|im_start|>assistant\nOnce upon";
  OrderedJson body = {{"prompt", rendered}, {"max_tokens", 5}, {"temperature", 0}};
  const OrderedJson completion = PostJson("/v1/completions", body.dump());
  EXPECT_EQ(chat["choices"][0]["message"]["content"], completion["choices"][0]["text"]);
  EXPECT_EQ(chat["usage"]["prompt_tokens"], tok_->Encode(rendered).size());
  // Without a generation prompt, the conversation just ends where its last message does.
  const OrderedJson plain = PostJson("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Write"}],
      "add_generation_prompt": false, "max_tokens": 1})");
  EXPECT_EQ(plain["usage"]["prompt_tokens"], tok_->Encode(rendered.substr(0, rendered.find("<|im_start|>assistant"))).size());
  PostJson("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Write"}], "continue_final_message": true})", 400);
  PostJson("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "Write"}, {"role": "assistant", "content": "",
      "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]}], "continue_final_message": true})", 400);
  PostJson("/v1/chat/completions", R"({"messages": [{"role": "assistant", "content": "x"}], "continue_final_message": true,
      "add_generation_prompt": true})", 400);
}

// OpenAI's Responses API: the same generation as the chat request it stands for (instructions as
// the system message), a Response object, and typed stream events in order that add up to it;
// function tools in both directions; text.format for structured output; clear 400s.
TEST_F(ServerTest, ResponsesApi) {
  Start();
  const OrderedJson chat = PostJson("/v1/chat/completions", R"({"messages": [{"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Hello!"}], "max_tokens": 6, "temperature": 0})");
  const OrderedJson r = PostJson("/v1/responses", R"({"model": "qwenbox", "instructions": "Be brief.", "input": "Hello!",
      "max_output_tokens": 6, "temperature": 0})");
  EXPECT_EQ(r["object"], "response");
  EXPECT_TRUE(r["id"].get<std::string>().starts_with("resp_"));
  EXPECT_EQ(r["status"], "incomplete");
  EXPECT_EQ(r["incomplete_details"]["reason"], "max_output_tokens");
  EXPECT_EQ(r["instructions"], "Be brief.");
  ASSERT_EQ(r["output"].size(), 1u);
  EXPECT_EQ(r["output"][0]["type"], "message");
  EXPECT_EQ(r["output"][0]["content"][0]["type"], "output_text");
  EXPECT_EQ(r["output"][0]["content"][0]["text"], chat["choices"][0]["message"]["content"]);
  EXPECT_EQ(r["usage"]["input_tokens"], chat["usage"]["prompt_tokens"]);
  EXPECT_EQ(r["usage"]["output_tokens"], 6);
  // Message items with text parts, and a developer message, work as the chat roles do.
  const OrderedJson parts = PostJson("/v1/responses", R"({"input": [{"role": "developer", "content": "Be brief."},
      {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hel"}, {"type": "input_text", "text": "lo!"}]}],
      "max_output_tokens": 6, "temperature": 0})");
  EXPECT_EQ(parts["output"][0]["content"][0]["text"], r["output"][0]["content"][0]["text"]);
  // Streamed: numbered events, in the API's order, whose deltas add up to the final text.
  auto st = Post("/v1/responses", R"({"instructions": "Be brief.", "input": "Hello!", "max_output_tokens": 6,
      "temperature": 0, "stream": true})");
  ASSERT_TRUE(st);
  bool done = false;
  const auto events = Events(st->body, &done);
  ASSERT_GE(events.size(), 9u) << st->body;
  std::vector<std::string> types;
  std::string deltas;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i]["sequence_number"], i);
    types.push_back(events[i]["type"].get<std::string>());
    if (types.back() == "response.output_text.delta") deltas += events[i]["delta"].get<std::string>();
  }
  EXPECT_EQ(types[0], "response.created");
  EXPECT_EQ(types[1], "response.in_progress");
  EXPECT_EQ(types[2], "response.output_item.added");
  EXPECT_EQ(types[3], "response.content_part.added");
  EXPECT_EQ(types[types.size() - 4], "response.output_text.done");
  EXPECT_EQ(types[types.size() - 3], "response.content_part.done");
  EXPECT_EQ(types[types.size() - 2], "response.output_item.done");
  EXPECT_EQ(types.back(), "response.incomplete");
  EXPECT_EQ(deltas, r["output"][0]["content"][0]["text"]);
  EXPECT_EQ(events.back()["response"]["output"][0]["content"][0]["text"], deltas);
  EXPECT_NE(st->body.find("event: response.output_text.delta\n"), std::string::npos);
  EXPECT_EQ(st->body.find("[DONE]"), std::string::npos);
  // A forced function call, then its output sent back as input items.
  const std::string tools = R"("tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object",
      "properties": {"city": {"type": "string", "maxLength": 8}}, "required": ["city"], "additionalProperties": false}}])";
  const OrderedJson call = PostJson("/v1/responses", R"({"input": "Weather in Paris?", "max_output_tokens": 60, )" + tools +
                                                         R"(, "tool_choice": {"type": "function", "name": "get_weather"}})");
  ASSERT_EQ(call["output"].size(), 1u) << call.dump();
  const OrderedJson& fc = call["output"][0];
  EXPECT_EQ(fc["type"], "function_call");
  EXPECT_EQ(fc["name"], "get_weather");
  EXPECT_TRUE(fc["call_id"].get<std::string>().starts_with("call_"));
  EXPECT_TRUE(OrderedJson::parse(fc["arguments"].get<std::string>())["city"].is_string()) << fc.dump();
  OrderedJson follow = {{"input", OrderedJson::array({{{"role", "user"}, {"content", "Weather in Paris?"}},
                                                      {{"type", "function_call"}, {"call_id", fc["call_id"]}, {"name", "get_weather"},
                                                       {"arguments", fc["arguments"]}},
                                                      {{"type", "function_call_output"}, {"call_id", fc["call_id"]}, {"output", "sunny"}}})},
                        {"max_output_tokens", 3}};
  follow["tools"] = OrderedJson::parse("{" + tools + "}")["tools"];
  const OrderedJson answer = PostJson("/v1/responses", follow.dump());
  EXPECT_EQ(answer["usage"]["output_tokens"], 3);
  auto fst = Post("/v1/responses", R"({"input": "Weather?", "max_output_tokens": 60, "stream": true, )" + tools +
                                       R"(, "tool_choice": "required"})");
  ASSERT_TRUE(fst);
  const auto fevents = Events(fst->body, &done);
  ASSERT_FALSE(fevents.empty());
  bool args_done = false;
  for (const auto& e : fevents) args_done |= e["type"] == "response.function_call_arguments.done";
  EXPECT_TRUE(args_done) << fst->body;
  EXPECT_EQ(fevents.back()["type"], "response.completed");
  // Every item streamed is the final response's item at that index.
  for (const auto* evs : {&events, &fevents})
    for (const auto& e : *evs)
      if (e["type"] == "response.output_item.done") {
        const OrderedJson& final_output = evs->back()["response"]["output"];
        ASSERT_LT(e["output_index"].get<size_t>(), final_output.size());
        EXPECT_EQ(final_output[e["output_index"].get<size_t>()], e["item"]);
      }
  // History as agents send it back: the assistant's text, then its call, then the call's output.
  OrderedJson replay = follow;
  const OrderedJson said = OrderedJson::object({{"type", "message"}, {"role", "assistant"}, {"content", "Let me look."}});
  replay["input"].insert(replay["input"].begin() + 1, said);
  EXPECT_EQ(PostJson("/v1/responses", replay.dump())["usage"]["output_tokens"], 3);
  // Structured output through text.format.
  const OrderedJson js = PostJson("/v1/responses", R"({"input": "x", "max_output_tokens": 60, "text": {"format": {"type":
      "json_schema", "name": "pick", "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
      "additionalProperties": false}, "strict": true}}})");
  EXPECT_EQ(js["status"], "completed") << js.dump();
  EXPECT_TRUE(OrderedJson::parse(js["output"][0]["content"][0]["text"].get<std::string>())["ok"].is_boolean()) << js.dump();
  for (const char* bad : {R"({"input": "x", "previous_response_id": "resp_1"})", R"({"input": "x", "bogus": 1})",
                          R"({"input": "x", "tools": [{"type": "web_search"}]})",
                          R"({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]})",
                          R"({"input": [], "max_output_tokens": 2})", R"({"max_output_tokens": 2})",
                          R"({"input": "x", "max_output_tokens": 0})", R"({"input": [{"type": 1, "role": "user", "content": "x"}]})",
                          R"({"input": [{"role": "user", "content": [{"type": 5, "text": "x"}]}]})",
                          R"({"input": "x", "text": {"format": {"type": "json_schema", "name": 3, "schema": {}}}})",
                          R"({"input": "x", "text": {"format": {"type": 7}}})", R"({"input": "x", "tools": [{"type": 1}]})",
                          R"({"input": "x", "tool_choice": {"type": 2, "name": "f"}})"}) {
    const OrderedJson e = PostJson("/v1/responses", bad, 400);
    EXPECT_TRUE(e["error"]["message"].is_string()) << bad;
  }
}

// Structured output beside tools (tool_choice auto, as an agent with an output type asks): the
// reply is either calls that follow the tools' schemas or the document, on both APIs.
TEST_F(ServerTest, StructuredOutputBesideTools) {
  Start();
  const std::string schema = R"({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
                                 "additionalProperties": false})";
  const std::string tool = R"({"type": "function", "function": {"name": "lookup", "parameters": {"type": "object",
      "properties": {"q": {"type": "string", "maxLength": 6}}, "required": ["q"], "additionalProperties": false}}})";
  auto valid = [&](const OrderedJson& msg, const std::string& finish) {
    if (finish == "tool_calls") {
      ASSERT_FALSE(msg["tool_calls"].empty()) << msg.dump();
      for (const auto& call : msg["tool_calls"]) {
        EXPECT_EQ(call["function"]["name"], "lookup");
        EXPECT_TRUE(OrderedJson::parse(call["function"]["arguments"].get<std::string>())["q"].is_string()) << msg.dump();
      }
    } else if (finish == "stop") {
      EXPECT_TRUE(OrderedJson::parse(msg["content"].get<std::string>())["ok"].is_boolean()) << msg.dump();
    } else {  // (white space between a random model's JSON tokens can run to the limit)
      EXPECT_EQ(finish, "length") << msg.dump();
    }
  };
  for (const char* seed : {"1", "2", "3", "4"}) {
    const OrderedJson r = PostJson("/v1/chat/completions",
                                   std::string(R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 80, "temperature": 1, "seed": )") +
                                       seed + R"(, "tools": [)" + tool + R"(], "response_format": {"type": "json_schema",
                                       "json_schema": {"name": "out", "schema": )" + schema + "}}}");
    valid(r["choices"][0]["message"], r["choices"][0]["finish_reason"].get<std::string>());
  }
  const OrderedJson resp = PostJson("/v1/responses", R"({"input": "x", "max_output_tokens": 80, "tools": [{"type": "function",
      "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string", "maxLength": 6}},
      "required": ["q"], "additionalProperties": false}}], "text": {"format": {"type": "json_schema", "name": "out",
      "schema": )" + schema + "}}}");
  const OrderedJson& item = resp["output"][0];
  if (resp["status"] != "completed") {
    EXPECT_EQ(resp["status"], "incomplete") << resp.dump();
  } else if (item["type"] == "function_call") {
    EXPECT_TRUE(OrderedJson::parse(item["arguments"].get<std::string>())["q"].is_string());
  } else {
    EXPECT_TRUE(OrderedJson::parse(item["content"][0]["text"].get<std::string>())["ok"].is_boolean()) << resp.dump();
  }
}

TEST_F(ServerTest, BadRequestsGetClearErrors) {
  Start();
  struct Case {
    const char* path;
    std::string body;
    int status;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"/v1/chat/completions", "{not json", 400, "not valid JSON"},
      {"/v1/chat/completions", "\"\xff\xfe\"", 400, "not valid JSON"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "foo": 1})", 400, "Unrecognized request argument supplied: foo"},
      {"/v1/chat/completions", R"({"messages": "hi"})", 400, "'messages'"},
      {"/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "x"}]})", 400, "role"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"})", 400, "'temperature' must be a number"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "temperature": 5})", 400, "between 0 and 2"},
      {"/v1/chat/completions", R"({"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]})", 404, "does not exist"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})", 400, "max_tokens"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "n": 99})", 400, "'n'"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", 400, "only text parts"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"})", 400, "tool_choice"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": 5}}]})",
       400, "function name"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": 7, "function": {"name": "f"}}]})",
       400, "each tool"},
      {"/v1/completions", R"({"prompt": ")" + std::string(3000, 'a') + " " + std::string(3000, 'b') + R"("})", 400, "--max"},
      {"/v1/completions", R"({"prompt": [1, 2, 99999999]})", 400, "vocabulary"},
      {"/v1/completions", R"({"max_tokens": 3})", 400, "'prompt' is required"},
      {"/generate", R"({"inputs": "x", "parameters": {"max_new_tokens": -1}})", 400, "max_new_tokens"},
      {"/generate", R"({"inputs": "x", "parameters": {"bogus": 1}})", 400, "unknown parameter"},
      {"/generate", R"({"inputs": "x", "stream": "yes"})", 400, "'stream' must be true or false"},
      {"/generate", R"({"inputs": "x", "parameters": {"seed": -1}})", 400, "'seed'"},
      {"/generate", R"({"inputs": "x", "parameters": {"stop": ["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]}})",
       400, "at most 16"},
      {"/v1/completions", R"({"prompt": "x", "stop_token_ids": [1099511627776]})", 400, "stop_token_ids"},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": 18446744073709551615})", 400, "18446744073709551615"},
      {"/v1/completions", R"({"prompt": "x", "guided_regex": "a{1000000}"})", 400, "repeat counts"},
      {"/detokenize", R"({"tokens": [4294967296]})", 400, "token ids"},
      {"/v1/completions", R"({"prompt": "x", "logit_bias": {"abc": 1}})", 400, "'logit_bias' keys must be token ids"},
      {"/v1/completions", R"({"prompt": "x", "logit_bias": {"5": 101}})", 400, "between -100 and 100"},
      {"/v1/completions", R"({"prompt": "x", "logit_bias": [1]})", 400, "'logit_bias' must be an object"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "logit_bias": {"999999": 1}})", 400,
       "outside the vocabulary"},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": 2, "min_tokens": 3})", 400, "min_tokens"},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": 0})", 400, "0 only with echo"},
      {"/v1/completions", R"({"prompt": []})", 400, "'prompt' must be"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": [{"type": 1, "text": "x"}]}]})", 400, "only text parts"},
      {"/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": 1}})", 400, "tool_choice"},
      {"/v1/completions", R"({"prompt": ["a", 1]})", 400, "'prompt' must be"},
      {"/v1/completions", R"({"prompt": "x", "prompt_logprobs": 1, "stream": true})", 400, "not supported with stream"},
      {"/generate_stream", R"({"inputs": "x", "parameters": {"decoder_input_details": true}})", 400, "decoder_input_details"},
      {"/nowhere", "{}", 404, "no route"},
      {"/health", "{}", 405, "this route takes GET"},
  };
  for (const auto& c : cases) {
    auto r = Post(c.path, c.body);
    ASSERT_TRUE(r) << c.path;
    EXPECT_EQ(r->status, c.status) << c.body.substr(0, 80) << " -> " << r->body;
    EXPECT_NE(r->body.find(c.expect), std::string::npos) << c.body.substr(0, 80) << " -> " << r->body;
    const OrderedJson j = OrderedJson::parse(r->body, nullptr, false);
    EXPECT_TRUE(j.contains("error")) << r->body;
  }
  // Too large a body: 413.
  ServerConfig sc;
  TearDown();
  sc.max_body_bytes = 1000;
  Start(sc);
  auto big = Post("/v1/completions", std::string(5000, ' '));
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
}

// Structured output on every API: the random-weight demo model writes documents of the schema
// (or one of the choices) and stops there; bad schemas are 400s that say what is wrong.
TEST_F(ServerTest, StructuredOutputOnEveryApi) {
  Start();
  const std::string schema = R"({"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
      "sunny": {"type": "boolean"}, "temp": {"type": "integer"}}, "required": ["city", "sunny", "temp"],
      "additionalProperties": false})";
  auto check = [](const std::string& text) {
    const OrderedJson j = OrderedJson::parse(text, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << text;
    EXPECT_TRUE(j["city"].is_string()) << text;
    EXPECT_TRUE(j["sunny"].is_boolean()) << text;
    EXPECT_TRUE(j["temp"].is_number_integer()) << text;
    EXPECT_EQ(j.size(), 3u) << text;
  };
  const std::string messages = R"("messages": [{"role": "user", "content": "Weather in Paris as JSON."}])";
  const OrderedJson chat = PostJson("/v1/chat/completions", "{" + messages +
      R"(, "max_tokens": 200, "response_format": {"type": "json_schema", "json_schema": {"name": "w", "strict": true, "schema": )" +
      schema + "}}}");
  EXPECT_EQ(chat["choices"][0]["finish_reason"], "stop");
  check(chat["choices"][0]["message"]["content"].get<std::string>());
  // Streaming, sampled, two choices: the deltas of each add up to a document.
  auto r = Post("/v1/chat/completions", "{" + messages + R"(, "max_tokens": 200, "stream": true, "n": 2,
      "temperature": 1, "seed": 5, "guided_json": )" + schema + "}");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  bool done = false;
  std::string texts[2];
  for (const auto& ev : Events(r->body, &done))
    for (const auto& c : ev["choices"])
      if (c["delta"].contains("content") && c["delta"]["content"].is_string())
        texts[c["index"].get<int>()] += c["delta"]["content"].get<std::string>();
  EXPECT_TRUE(done);
  check(texts[0]);
  check(texts[1]);
  const OrderedJson choice = PostJson("/v1/completions", R"({"prompt": "Is it sunny?", "max_tokens": 10,
      "guided_choice": ["yes", "no", "cannot tell"]})");
  const std::string answer = choice["choices"][0]["text"].get<std::string>();
  EXPECT_TRUE(answer == "yes" || answer == "no" || answer == "cannot tell") << answer;
  EXPECT_EQ(choice["choices"][0]["finish_reason"], "stop");
  const OrderedJson tgi = PostJson("/generate", R"({"inputs": "Weather:", "parameters": {"max_new_tokens": 200,
      "grammar": {"type": "json", "value": )" + schema + "}}}");
  check(tgi["generated_text"].get<std::string>());
  const OrderedJson re = PostJson("/v1/completions", R"({"prompt": "Phone:", "max_tokens": 20, "guided_regex": "\\+33 [1-9]( \\d\\d){4}"})");
  EXPECT_TRUE(std::regex_match(re["choices"][0]["text"].get<std::string>(), std::regex("\\+33 [1-9]( \\d\\d){4}"))) << re.dump();
  const OrderedJson tgi_re = PostJson("/generate", R"({"inputs": "Date:", "parameters": {"max_new_tokens": 20,
      "grammar": {"type": "regex", "value": "20[0-9]{2}-[01][0-9]"}}})");
  EXPECT_TRUE(std::regex_match(tgi_re["generated_text"].get<std::string>(), std::regex("20[0-9]{2}-[01][0-9]"))) << tgi_re.dump();
  const OrderedJson obj = PostJson("/v1/chat/completions", "{" + messages +
      R"(, "max_tokens": 6, "response_format": {"type": "json_object"}})");
  EXPECT_EQ(obj["choices"][0]["message"]["content"].get<std::string>()[0], '{');

  struct Case {
    const char* path;
    std::string body;
    const char* expect;
  };
  const std::vector<Case> bad = {
      {"/v1/chat/completions", "{" + messages + R"(, "response_format": {"type": "xml"}})", "'response_format' type 'xml'"},
      {"/v1/chat/completions", "{" + messages + R"(, "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "number", "multipleOf": 2}}}})", "'multipleOf' is not supported"},
      {"/v1/chat/completions", "{" + messages + R"(, "guided_json": {"type": "object", "properties": {"a": {"$ref": "#/nope"}}}})", "#/properties/a"},
      {"/v1/chat/completions", "{" + messages + R"(, "guided_json": "{not json"})", "not JSON"},
      {"/v1/chat/completions", "{" + messages + R"(, "guided_choice": "yes"})", "array of strings"},
      {"/v1/chat/completions", "{" + messages + R"(, "guided_choice": ["a"], "response_format": {"type": "json_object"}})", "one of"},
      {"/v1/chat/completions", "{" + messages + R"(, "response_format": {"type": "json_object"}, "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"n": {"type": "number", "multipleOf": 2}}}}}]})", "needs grammars for both"},
      {"/v1/completions", R"({"prompt": "x", "guided_choice": []})", "empty"},
      {"/generate", R"({"inputs": "x", "parameters": {"grammar": {"type": "regex", "value": "(a"}}})", "missing ')'"},
      {"/v1/completions", R"x({"prompt": "x", "guided_regex": "a(?=b)"})x", "lookaround"},
      {"/generate", R"({"inputs": "x", "parameters": {"grammar": {"type": "json", "value": {"type": "number", "minimum": 1}}}})", "other than"},
  };
  for (const auto& c : bad) {
    auto b = Post(c.path, c.body);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->status, 400) << c.body << " -> " << b->body;
    EXPECT_NE(b->body.find(c.expect), std::string::npos) << c.body << " -> " << b->body;
  }
}

// CORS: only the allowed origins get the headers; a browser's preflight is answered without the
// API key (browsers never send it there); without --allowed-origins no CORS header at all.
TEST_F(ServerTest, CorsForAllowedOriginsOnly) {
  ServerConfig sc;
  sc.api_key = "sekret";
  sc.allowed_origins = {"https://ui.example"};
  Start(sc);
  const httplib::Headers preflight = {{"Origin", "https://ui.example"},
                                      {"Access-Control-Request-Method", "POST"},
                                      {"Access-Control-Request-Headers", "authorization, content-type"}};
  auto pre = client_->Options("/v1/chat/completions", preflight);
  ASSERT_TRUE(pre);
  EXPECT_EQ(pre->status, 204);
  EXPECT_EQ(pre->get_header_value("Access-Control-Allow-Origin"), "https://ui.example");
  EXPECT_NE(pre->get_header_value("Access-Control-Allow-Methods").find("POST"), std::string::npos);
  EXPECT_EQ(pre->get_header_value("Access-Control-Allow-Headers"), "authorization, content-type");
  auto post = Post("/v1/completions", R"({"prompt": "x", "max_tokens": 1})",
                   {{"Origin", "https://ui.example"}, {"Authorization", "Bearer sekret"}});
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 200);
  EXPECT_EQ(post->get_header_value("Access-Control-Allow-Origin"), "https://ui.example");
  auto denied = Post("/v1/completions", R"({"prompt": "x", "max_tokens": 1})", {{"Origin", "https://ui.example"}});
  EXPECT_EQ(denied->status, 401);  // the key is still needed, and the browser may read why
  EXPECT_EQ(denied->get_header_value("Access-Control-Allow-Origin"), "https://ui.example");
  auto other = client_->Options("/v1/chat/completions", {{"Origin", "https://evil.example"}, {"Access-Control-Request-Method", "POST"}});
  ASSERT_TRUE(other);
  EXPECT_FALSE(other->has_header("Access-Control-Allow-Origin"));
  EXPECT_NE(other->status, 204);
}

TEST_F(ServerTest, NoCorsHeadersByDefault) {
  Start();
  auto r = Post("/v1/completions", R"({"prompt": "x", "max_tokens": 1})", {{"Origin", "https://ui.example"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_FALSE(r->has_header("Access-Control-Allow-Origin"));
}

TEST_F(ServerTest, ApiKey) {
  ServerConfig sc;
  sc.api_key = "sekret";
  Start(sc);
  EXPECT_EQ(Post("/v1/completions", R"({"prompt": "x", "max_tokens": 1})")->status, 401);
  EXPECT_EQ(Post("/v1/completions", R"({"prompt": "x", "max_tokens": 1})", {{"Authorization", "Bearer wrong"}})->status, 401);
  EXPECT_EQ(Post("/v1/completions", R"({"prompt": "x", "max_tokens": 1})", {{"Authorization", "Bearer sekret"}})->status, 200);
  EXPECT_EQ(Post("/v1/completions", R"({"prompt": "x", "max_tokens": 1})", {{"Authorization", "bearer sekret"}})->status, 200);
  EXPECT_EQ(Post("/v1/completions", R"({"prompt": "x", "max_tokens": 1})", {{"Authorization", "Bearer SEKRET"}})->status, 401);
  EXPECT_EQ(client_->Get("/health")->status, 200);  // probes need no key
  EXPECT_EQ(client_->Get("/metrics")->status, 200);
}

TEST_F(ServerTest, FullQueueIs429AndDrainingIs503) {
  Start({}, /*max_queue=*/2, /*max_num_seqs=*/2);
  // Fill the engine with long streams, then the queue.
  std::vector<std::thread> threads;
  std::atomic<int> ok{0}, limited{0};
  for (int i = 0; i < 24; ++i)
    threads.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", server_->port());
      c.set_read_timeout(60);
      auto r = c.Post("/v1/completions", fmt::format(R"({{"prompt": "x{}", "max_tokens": 200, "temperature": 0}})", i),
                      "application/json");
      if (r && r->status == 200) ++ok;
      if (r && r->status == 429) {
        ++limited;
        EXPECT_EQ(r->get_header_value("Retry-After"), "1");
      }
      if (!r || (r->status != 200 && r->status != 429))
        ADD_FAILURE() << (r ? std::to_string(r->status) + " " + r->body : "no answer: " + httplib::to_string(r.error()));
    });
  for (auto& t : threads) t.join();
  EXPECT_GT(limited.load(), 0);
  EXPECT_EQ(ok.load() + limited.load(), 24);
  server_->BeginDrain();
  auto r = Post("/v1/completions", R"({"prompt": "x"})");
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(client_->Get("/ready")->status, 503);
  EXPECT_EQ(client_->Get("/health")->status, 200);
}

TEST_F(ServerTest, DisconnectCancelsTheRequest) {
  ServerConfig sc;
  sc.heartbeat_s = 0.1;  // how often a non-streamed answer checks on its client
  Start(sc);
  // A raw client: send a request, read the first bytes (streaming) or wait a moment, hang up;
  // streamed or not, the request must be cancelled and its KV blocks freed.
  for (const bool stream : {true, false}) {
    const int64_t generated_before = engine_->Stats().generated_tokens;
    const std::string body = fmt::format(R"({{"prompt": "x", "max_tokens": 900, "stream": {}, "ignore_eos": true}})",
                                         stream ? "true" : "false");
    const int fd = SendRaw("/v1/completions", body);
    ASSERT_GE(fd, 0);
    char buf[512];
    ASSERT_GT(::recv(fd, buf, sizeof buf, 0), 0);  // (a non-streamed answer's first heartbeat)
    for (int i = 0; i < 100 && engine_->Stats().running == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ::close(fd);
    for (int i = 0; i < 300 && (engine_->Stats().kv_blocks_used > 0 || engine_->Stats().running > 0); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(engine_->Stats().kv_blocks_used, 0) << (stream ? "streamed" : "not streamed");
    EXPECT_LT(engine_->Stats().generated_tokens - generated_before, 900) << (stream ? "streamed" : "not streamed");
  }
}

// With --probe-port the probes have a listener and threads of their own: they answer while
// every connection of the API port is taken (here both of its 2 threads hold streams).
TEST_F(ServerTest, ProbePortAnswersWhileEveryConnectionIsBusy) {
  ServerConfig sc;
  sc.http_threads = 2;
  sc.probe_port = 0;
  Start(sc);
  ASSERT_GT(server_->probe_port(), 0);
  std::vector<int> fds;
  for (int i = 0; i < 2; ++i) {
    const std::string body = R"({"prompt": "x", "max_tokens": 900, "stream": true, "ignore_eos": true})";
    const int fd = SendRaw("/v1/completions", body);
    ASSERT_GE(fd, 0);
    char buf[256];
    ASSERT_GT(::recv(fd, buf, sizeof buf, 0), 0);  // its thread is streaming
    fds.push_back(fd);
  }
  httplib::Client busy("127.0.0.1", server_->port());
  busy.set_connection_timeout(1);
  busy.set_read_timeout(1);
  EXPECT_FALSE(busy.Get("/health"));  // the API port has no thread to answer
  httplib::Client probe("127.0.0.1", server_->probe_port());
  probe.set_read_timeout(5);
  auto health = probe.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto ready = probe.Get("/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  auto metrics = probe.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("qwenbox_requests_running 2"), std::string::npos) << metrics->body.substr(0, 2000);
  EXPECT_EQ(probe.Post("/v1/completions", R"({"prompt": "x"})", "application/json")->status, 404);  // probes only
  for (int fd : fds) ::close(fd);
}

TEST_F(ServerTest, BodiesWithoutALengthAndHttp10Clients) {
  Start();
  const std::string body = R"({"prompt": "The same prompt", "max_tokens": 6, "temperature": 0, "ignore_eos": true})";
  const std::string want = PostJson("/v1/completions", body)["choices"][0]["text"];
  // No Content-Length and not chunked: 411 at once (not after the read timeout).
  const std::string no_length =
      Exchange("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n" + body);
  EXPECT_EQ(no_length.rfind("HTTP/1.1 411", 0), 0u) << no_length;
  EXPECT_NE(no_length.find("no Content-Length"), std::string::npos) << no_length;

  // HTTP/1.0 has no chunked encoding: a body with a Content-Length (not streamed, or the client
  // keeps the connection: ApacheBench -k sends "Connection: Keep-Alive"), or one that runs to
  // the end of the connection (a stream to a client that closes).
  for (const bool stream : {false, true}) {
    for (const std::string connection : {"", "Connection: Keep-Alive\r\n"}) {
      OrderedJson b = OrderedJson::parse(body);
      b["stream"] = stream;
      const std::string r = Exchange("POST /v1/completions HTTP/1.0\r\n" + connection +
                                     "Content-Type: application/json\r\nContent-Length: " + std::to_string(b.dump().size()) +
                                     "\r\n\r\n" + b.dump());
      const size_t split = r.find("\r\n\r\n");
      ASSERT_NE(split, std::string::npos) << r;
      const std::string headers = r.substr(0, split), content = r.substr(split + 4);
      EXPECT_NE(headers.find(" 200 OK"), std::string::npos) << headers;
      EXPECT_EQ(headers.find("chunked"), std::string::npos) << headers;
      EXPECT_EQ(headers.find("Content-Length") != std::string::npos, !stream || !connection.empty()) << headers;
      EXPECT_EQ(content.find("<no answer>"), std::string::npos) << "stream " << stream << " " << connection;
      if (!stream) {
        const OrderedJson j = OrderedJson::parse(content, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << content;
        EXPECT_EQ(j["choices"][0]["text"], want);
      } else {
        bool done = false;
        std::string text;
        for (const auto& e : Events(content, &done))
          if (!e["choices"].empty()) text += e["choices"][0]["text"].get<std::string>();
        EXPECT_TRUE(done) << content;
        EXPECT_EQ(text, want);
      }
    }
  }
  // "chunked" in any case is a length.
  const std::string chunk = R"({"prompt": "x", "max_tokens": 1})";
  char size[16];
  std::snprintf(size, sizeof size, "%zx", chunk.size());
  const std::string chunked = Exchange("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                       "Transfer-Encoding: Chunked\r\nConnection: close\r\n\r\n" + std::string(size) + "\r\n" + chunk +
                                       "\r\n0\r\n\r\n");
  // (The status line: "411" may occur in the body, e.g. in its "created" time.)
  EXPECT_EQ(chunked.rfind("HTTP/1.1 200", 0), 0u) << chunked;
}

TEST_F(ServerTest, HostileRequestsDoNotDisturbGoodStreams) {
  Start();
  const std::string good = R"({"prompt": "The same prompt", "max_tokens": 24, "temperature": 0, "ignore_eos": true})";
  const std::string want = PostJson("/v1/completions", good)["choices"][0]["text"];
  std::mt19937 rng(11);
  std::vector<std::string> bad = {"", "{", "[]", "null", "\"x\"", "{\"prompt\": 3}", "{\"prompt\": null}",
                                  "{\"prompt\": \"x\", \"max_tokens\": -5}", "{\"prompt\": \"x\", \"stop\": 7}",
                                  "{\"prompt\": \"x\", \"stream\": \"yes\"}", "{\"prompt\": \"x\", \"n\": 0}",
                                  "{\"prompt\": \"x\", \"seed\": \"s\"}", "{\"prompt\": \"x\", \"logprobs\": 50}",
                                  "{\"prompt\": [\"a\", [1, \"b\"]]}", "{\"prompt\": \"\\ud800\"}"};
  for (int i = 0; bad.size() < 110; ++i) {  // random bytes and truncations
    std::string b = good.substr(0, rng() % good.size());
    for (int k = 0; k < 3; ++k) b[rng() % (b.size() + 1 > 1 ? b.size() : 1)] = static_cast<char>(rng());
    bad.push_back(b);
  }
  std::vector<std::thread> goods;
  std::atomic<int> matched{0};
  for (int i = 0; i < 8; ++i)
    goods.emplace_back([&] {
      httplib::Client c("127.0.0.1", server_->port());
      c.set_read_timeout(60);
      OrderedJson b = OrderedJson::parse(good);
      b["stream"] = true;
      auto r = c.Post("/v1/completions", b.dump(), "application/json");
      if (!r || r->status != 200) return;
      bool done = false;
      std::string text;
      for (const auto& e : Events(r->body, &done))
        if (!e["choices"].empty()) text += e["choices"][0]["text"].get<std::string>();
      if (done && text == want) ++matched;
    });
  int fours = 0, total = 0;
  for (const auto& b : bad) {
    for (const char* path : {"/v1/completions", "/v1/chat/completions", "/generate"}) {
      auto r = Post(path, b);
      ++total;
      if (r && r->status >= 400 && r->status < 500) ++fours;
      else ADD_FAILURE() << path << " " << b << " -> " << (r ? std::to_string(r->status) + " " + r->body : "no answer");
    }
  }
  for (auto& t : goods) t.join();
  EXPECT_EQ(matched.load(), 8);
  EXPECT_EQ(fours, total);
  EXPECT_GE(total, 300);
  EXPECT_EQ(client_->Get("/health")->status, 200);
}

TEST_F(ServerTest, MetricsPassPromtool) {
  Start();
  PostJson("/v1/chat/completions", kChat);
  Post("/v1/completions", "{bad");
  auto m = client_->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("qwenbox_time_to_first_token_seconds_bucket"), std::string::npos);
  EXPECT_NE(m->body.find("qwenbox_requests_total{code=\"400\",finish_reason=\"none\"} 1"), std::string::npos);
  EXPECT_NE(m->body.find("qwenbox_kv_cache_usage_ratio"), std::string::npos);
  if (std::system("command -v promtool > /dev/null 2>&1") != 0) GTEST_SKIP() << "promtool is not installed";
  const std::string path = test::ScratchDir() + "/scrape.txt";
  test::WriteBytes(path, m->body);
  const int rc = std::system(("promtool check metrics < " + path + " > " + path + ".out 2>&1").c_str());
  EXPECT_EQ(rc, 0) << test::ReadBytes(path + ".out");
}

// With speculative decoding on, the API answers exactly as without it, and /metrics counts the
// proposals (a prompt that repeats a phrase gives the n-gram drafter something to propose).
TEST_F(ServerTest, SpeculativeDecodingAnswersTheSameAndIsCounted) {
  const std::string body =
      R"({"prompt": "one two three four, one two three four, one two three four, one two three", )"
      R"("max_tokens": 24, "ignore_eos": true, "logprobs": 2})";
  Start();
  const OrderedJson plain = PostJson("/v1/completions", body);
  server_->Stop();
  engine_.reset();
  SpeculativeConfig sp;
  sp.num_tokens = 3;
  sp.ngram_min = 1;
  Start({}, 0, 16, sp);
  const OrderedJson spec = PostJson("/v1/completions", body);
  EXPECT_EQ(spec["choices"][0]["text"], plain["choices"][0]["text"]);
  EXPECT_EQ(spec["choices"][0]["logprobs"]["tokens"], plain["choices"][0]["logprobs"]["tokens"]);
  EXPECT_EQ(spec["usage"], plain["usage"]);
  auto m = client_->Get("/metrics");
  ASSERT_TRUE(m);
  const std::string key = "\nqwenbox_spec_decode_draft_tokens_total ";
  const auto at = m->body.find(key);
  ASSERT_NE(at, std::string::npos) << m->body;
  EXPECT_GT(std::stod(m->body.substr(at + key.size())), 0);
  EXPECT_NE(m->body.find("qwenbox_spec_decode_accepted_tokens_total"), std::string::npos);
}

// `serve` listens before it loads the model, so a load that fails at once stops the server right
// after Start(). cpp-httplib's stop() does nothing until its listen loop has begun; a Stop() that
// came first used to leave the loop running and join() waiting forever (a CI run hung on it).
TEST(HttpServerLifecycle, StopRightAfterStartReturns) {
  for (int i = 0; i < 100; ++i) {
    ServerConfig sc;
    sc.host = "127.0.0.1";
    sc.port = 0;
    sc.http_threads = 2;
    HttpServer server(sc);
    ASSERT_TRUE(server.Start().ok());
    server.Stop();
  }
}

}  // namespace
}  // namespace qb
