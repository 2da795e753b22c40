// `qwenbox serve` end to end with its model split over ranks (--tensor-parallel-size), or with a
// draft model (--draft-model): the completions it serves are those of the whole model alone.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>

#include <httplib.h>

#include "cli/cli_test_util.h"
#include "common/reference.h"
#include "common/run_command.h"
#include "common/test_paths.h"
#include "util/child_process.h"
#include "util/json.h"

namespace qb {
namespace {

using test::DataPath;
using test::kQwenbox;
using test::RunCommand;

// The ids of the micro-qwen2 reference prompt, comma-separated.
std::string ReferenceIds() {
  std::string ids;
  for (int32_t id : test::LoadReference(DataPath("micro-qwen2/reference/f32/en_sentence.json")).token_ids)
    ids += (ids.empty() ? "" : ",") + std::to_string(id);
  return ids;
}

// The whole model's greedy text for `ids` (exact kernels), with a LoRA adapter when `lora` is given.
std::string WholeModelText(const std::string& ids, const std::string& lora = "") {
  std::vector<std::string> argv = {kQwenbox, "generate", "--model", DataPath("micro-qwen2"), "--ids", ids, "--max-tokens",
                                   "12", "--temperature", "0", "--ignore-eos", "--kernels", "reference", "--json"};
  if (!lora.empty()) argv.insert(argv.end(), {"--lora", lora});
  auto whole = RunCommand(argv);
  EXPECT_EQ(whole.exit_code, 0) << whole.err;
  return whole.exit_code == 0 ? ParseJson(whole.out, "stdout").value()["text"].get<std::string>() : "";
}

struct Served {
  bool ready = false;
  std::vector<std::string> texts;  // greedy completions of `ids`: n = 2, then n = 1
  std::string metrics;
};

// Starts `qwenbox serve --model micro-qwen2 ... extra`, runs `talk` with a client once it is
// ready, then stops it. False if it never became ready.
bool WithServer(const std::vector<std::string>& extra, const std::function<void(httplib::Client&)>& talk) {
  const int port = test::FreeLoopbackPort();
  EXPECT_GT(port, 0);
  if (port <= 0) return false;
  std::vector<std::string> args = {kQwenbox, "--log-level", "warn", "serve", "--model", DataPath("micro-qwen2"),
                                   "--port", std::to_string(port), "--threads", "2", "--kernels", "reference"};
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  EXPECT_GE(pid, 0);
  if (pid < 0) return false;
  if (pid == 0) {
    ::execv(kQwenbox.c_str(), argv.data());
    ::_exit(127);
  }
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60, 0);
  bool ready = false;
  for (int i = 0; i < 150 && !ready; ++i) {
    auto r = client.Get("/ready");
    ready = r && r->status == 200;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (ready) talk(client);
  const ChildExit end = StopChild(pid, 60);
  EXPECT_FALSE(end.killed) << "the server did not stop on SIGTERM";
  return ready;
}

// Greedy completions of `ids` (12 tokens) from a running server, with `"model": model` unless empty.
std::vector<std::string> Complete(httplib::Client& client, const std::string& ids, const char* n,
                                  const std::string& model = "") {
  std::vector<std::string> texts;
  const std::string field = model.empty() ? "" : R"(, "model": ")" + model + "\"";
  auto r = client.Post("/v1/completions",
                       std::string(R"({"prompt": [)") + ids + R"(], "max_tokens": 12, "temperature": 0, "ignore_eos": true, "n": )" +
                           n + field + "}",
                       "application/json");
  if (!r || r->status != 200) {  // (no ASSERT before the server is stopped)
    ADD_FAILURE() << (r ? r->body : httplib::to_string(r.error()));
    return texts;
  }
  const Json body = ParseJson(r->body, "response").value();
  EXPECT_EQ(body["model"], model.empty() ? "qwenbox" : model);
  for (const auto& choice : body["choices"]) texts.push_back(choice["text"]);
  return texts;
}

// Starts `qwenbox serve --model micro-qwen2 ... extra` and asks for the completions.
Served ServeCompletions(const std::string& ids, const std::vector<std::string>& extra) {
  Served out;
  out.ready = WithServer(extra, [&](httplib::Client& client) {
    // Two sequences in one batch (n = 2), then one more request after them.
    for (const char* n : {"2", "1"})
      for (auto& t : Complete(client, ids, n)) out.texts.push_back(std::move(t));
    if (auto m = client.Get("/metrics")) out.metrics = m->body;
  });
  return out;
}

// A counter's value in Prometheus text (-1 when absent).
double Counter(const std::string& metrics, const std::string& name) {
  const auto at = metrics.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stod(metrics.substr(at + name.size() + 2));
}

TEST(ServeCli, TensorParallelServesWhatTheWholeModelGenerates) {
  const std::string ids = ReferenceIds();
  const std::string want = WholeModelText(ids);
  ASSERT_FALSE(want.empty());
  const Served got = ServeCompletions(ids, {"--tensor-parallel-size", "2"});
  ASSERT_TRUE(got.ready) << "the server did not become ready";
  EXPECT_EQ(got.texts, (std::vector<std::string>{want, want, want}));
}

// With a draft model (the Q4_0 file of the same weights) the server generates the same text, and
// the draft's proposals were computed and mostly accepted.
TEST(ServeCli, DraftModelServesWhatTheModelGenerates) {
  const std::string ids = ReferenceIds();
  const std::string want = WholeModelText(ids);
  ASSERT_FALSE(want.empty());
  const Served got =
      ServeCompletions(ids, {"--draft-model", DataPath("micro-qwen2/micro-qwen2-q4_0.gguf"), "--speculative-tokens", "3"});
  ASSERT_TRUE(got.ready) << "the server did not become ready";
  EXPECT_EQ(got.texts, (std::vector<std::string>{want, want, want}));
  const double drafted = Counter(got.metrics, "qwenbox_spec_decode_draft_tokens_total");
  const double accepted = Counter(got.metrics, "qwenbox_spec_decode_accepted_tokens_total");
  EXPECT_GT(drafted, 0) << got.metrics;
  EXPECT_GT(accepted, 0) << got.metrics;
  EXPECT_GT(Counter(got.metrics, "qwenbox_engine_draft_seconds_total"), 0) << got.metrics;
}

TEST(ServeCli, LoraAdaptersServeWhatGenerateGives) {
  const std::string dir = test::ScratchDir();
  for (const char* seed : {"1", "2"}) {
    auto made = RunCommand({kQwenbox, "make-lora", "--model", DataPath("micro-qwen2"), "--out", dir + "/a" + seed,
                            "--seed", seed, "--alpha", "64"});
    ASSERT_EQ(made.exit_code, 0) << made.err;
  }
  const std::string ids = ReferenceIds();
  const std::string base = WholeModelText(ids), sql = WholeModelText(ids, dir + "/a1"),
                    chat = WholeModelText(ids, dir + "/a2");
  ASSERT_FALSE(base.empty() || sql.empty() || chat.empty());
  EXPECT_NE(base, sql);
  EXPECT_NE(sql, chat);
  const bool ready = WithServer({"--lora-modules", "sql=" + dir + "/a1", "chat=" + dir + "/a2"}, [&](httplib::Client& c) {
    // vLLM's listing: the model, then each adapter with the model as its parent.
    if (auto r = c.Get("/v1/models"); r && r->status == 200) {
      const Json data = ParseJson(r->body, "models").value()["data"];
      ASSERT_EQ(data.size(), 3u) << r->body;
      EXPECT_EQ(data[0]["id"], "qwenbox");
      EXPECT_EQ(data[1]["id"], "sql");
      EXPECT_EQ(data[1]["parent"], "qwenbox");
      EXPECT_EQ(data[2]["id"], "chat");
    } else {
      ADD_FAILURE() << "/v1/models";
    }
    // Each name gets its adapter's text, two sequences of one adapter batched (n = 2).
    EXPECT_EQ(Complete(c, ids, "2", "sql"), (std::vector<std::string>{sql, sql}));
    EXPECT_EQ(Complete(c, ids, "1", "chat"), std::vector<std::string>{chat});
    EXPECT_EQ(Complete(c, ids, "1"), std::vector<std::string>{base});
    EXPECT_EQ(Complete(c, ids, "1", "qwenbox"), std::vector<std::string>{base});
    auto unknown = c.Post("/v1/completions", R"({"prompt": "Hi", "model": "nope"})", "application/json");
    ASSERT_TRUE(unknown);
    EXPECT_EQ(unknown->status, 404);
    EXPECT_NE(unknown->body.find("'qwenbox', 'sql', 'chat'"), std::string::npos) << unknown->body;
    // TGI's adapter_id: the same text as the OpenAI endpoint with that adapter.
    auto tgi = c.Post("/generate", R"({"inputs": "Hello world", "parameters": {"adapter_id": "chat", "max_new_tokens": 8}})",
                      "application/json");
    auto oai = c.Post("/v1/completions",
                      R"({"prompt": "Hello world", "model": "chat", "max_tokens": 8, "temperature": 0})", "application/json");
    ASSERT_TRUE(tgi && oai);
    ASSERT_EQ(tgi->status, 200) << tgi->body;
    ASSERT_EQ(oai->status, 200) << oai->body;
    EXPECT_EQ(ParseJson(tgi->body, "tgi").value()["generated_text"],
              ParseJson(oai->body, "openai").value()["choices"][0]["text"]);
    auto bad = c.Post("/generate", R"({"inputs": "Hi", "parameters": {"adapter_id": "nope"}})", "application/json");
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->status, 404) << bad->body;
    // Per adapter, each sequence counted: "sql" ran one request of n = 2 (2 x 12 tokens), "chat"
    // three requests.
    if (auto m = c.Get("/metrics")) {
      EXPECT_NE(m->body.find("qwenbox_lora_requests_total{adapter=\"sql\"} 2"), std::string::npos) << m->body;
      EXPECT_NE(m->body.find("qwenbox_lora_requests_total{adapter=\"chat\"} 3"), std::string::npos) << m->body;
      EXPECT_NE(m->body.find("qwenbox_lora_generation_tokens_total{adapter=\"sql\"} 24"), std::string::npos);
    }
  });
  EXPECT_TRUE(ready);

  // --print-config lists the adapters; their bytes are part of what the model holds.
  auto cfg = RunCommand({kQwenbox, "serve", "--model", DataPath("micro-qwen2"), "--print-config", "--threads", "2",
                         "--enable-lora", "--lora-modules", "sql=" + dir + "/a1", dir + "/a2",
                         R"({"name": "js", "path": ")" + dir + R"(/a1", "base_model_name": "x"})"});
  ASSERT_EQ(cfg.exit_code, 0) << cfg.err;
  const Json j = ParseJson(cfg.out, "stdout").value();
  ASSERT_EQ(j["lora_adapters"].size(), 3u);
  EXPECT_EQ(j["lora_adapters"][0]["name"], "sql");
  EXPECT_EQ(j["lora_adapters"][1]["name"], "a2");  // a bare PATH is named after its directory
  EXPECT_EQ(j["lora_adapters"][2]["name"], "js");  // vLLM's JSON form
  EXPECT_EQ(j["lora_adapters"][0]["rank"], 8);
  EXPECT_EQ(j["lora_bytes"].get<int64_t>(), 3 * j["lora_adapters"][0]["bytes"].get<int64_t>());
  // What `plan --lora` counts per adapter: micro-qwen2 (2 layers, hidden 256, kv 128, intermediate
  // 768), rank 8: A in BF16 8 x (6 x 256 + 768), B^T in f32 8 x (3 x 256 + 2 x 128 + 2 x 768).
  EXPECT_EQ(j["lora_adapters"][0]["bytes"], 2 * (8 * (6 * 256 + 768) * 2 + 8 * (3 * 256 + 2 * 128 + 2 * 768) * 4));
  // Refusals, before anything is served.
  const auto refused = [&](std::vector<std::string> extra, const std::string& why) {
    std::vector<std::string> argv = {kQwenbox, "serve", "--model", DataPath("micro-qwen2"), "--print-config"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = RunCommand(argv);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
  };
  refused({"--lora-modules", "qwenbox=" + dir + "/a1"}, "the model's own");
  refused({"--lora-modules", "x=" + dir + "/a1", "x=" + dir + "/a2"}, "two adapters are named \"x\"");
  refused({"--lora-modules", "x=" + dir + "/missing"}, "not a directory");
  refused({"--lora-modules", "x=" + dir + "/a1", "--max-lora-rank", "4"}, "has rank 8, above --max-lora-rank 4");
  refused({"--lora-modules", "x=" + dir + "/a1", "--tensor-parallel-size", "2"}, "tensor-parallel-size");
}

TEST(ServeCli, DraftModelConfigAndRefusals) {
  auto cfg = RunCommand({kQwenbox, "serve", "--model", DataPath("micro-qwen2"), "--print-config", "--threads", "2",
                         "--draft-model", DataPath("micro-qwen2/micro-qwen2-q8_0.gguf"), "--max-total-tokens", "100",
                         "--speculative-max-seqs", "3"});
  ASSERT_EQ(cfg.exit_code, 0) << cfg.err;
  const Json j = ParseJson(cfg.out, "stdout").value();
  const Json& sp = j["speculative"];
  EXPECT_EQ(sp["method"], "draft_model");
  EXPECT_EQ(sp["num_tokens"], 4);
  // 3 sequences of 100 tokens: 7 blocks of 16 each.
  EXPECT_EQ(sp["draft_kv_blocks"], 21);
  EXPECT_EQ(sp["draft_kv_bytes"].get<int64_t>(), 21 * 16 * j["kv_bytes_per_token"].get<int64_t>());
  EXPECT_GT(sp["draft_activation_bytes"].get<int64_t>(), 0);
  EXPECT_GT(sp["draft_weights_bytes"].get<int64_t>(), 0);
  // The draft model's KV pool and activations come out of the memory the KV cache is sized from.
  // The limit is set from what this build measures (sanitizers hold more) so that the draft's
  // costs and 4 MiB of KV cache just fit: without the draft the KV cache gets their room too
  // (still memory-bound: below the cap of 256 sequences of 100 tokens).
  auto config = [](const std::string& limit, bool with_draft) {
    std::vector<std::string> argv = {kQwenbox, "serve", "--model", DataPath("micro-qwen2"), "--print-config",
                                     "--threads", "2", "--max-total-tokens", "100", "--max-num-seqs", "256",
                                     "--http-threads", "16", "--memory-limit", limit};
    if (with_draft) {
      argv.push_back("--draft-model");
      argv.push_back(DataPath("micro-qwen2/micro-qwen2-q8_0.gguf"));
    }
    auto r = RunCommand(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? ParseJson(r.out, "stdout").value() : Json();
  };
  const Json measured = config("4g", true);
  ASSERT_TRUE(measured.is_object());
  const int64_t fixed = measured["model_resident_bytes"].get<int64_t>() + measured["activation_bytes"].get<int64_t>() +
                        measured["connection_bytes"].get<int64_t>() +
                        measured["speculative"]["draft_kv_bytes"].get<int64_t>() +
                        measured["speculative"]["draft_activation_bytes"].get<int64_t>();
  const std::string limit = std::to_string(static_cast<int64_t>(static_cast<double>(fixed + (4 << 20)) / 0.95));
  const Json plain = config(limit, false), with = config(limit, true);
  ASSERT_TRUE(plain.is_object() && with.is_object());
  const int64_t cap = int64_t{256} * 112 * plain["kv_bytes_per_token"].get<int64_t>();
  EXPECT_LT(plain["kv_cache_bytes"].get<int64_t>(), cap);
  // The difference: the draft's pool and activations (and its weights, resident), give or take
  // the measurement's noise.
  EXPECT_GE(plain["kv_cache_bytes"].get<int64_t>() - with["kv_cache_bytes"].get<int64_t>(),
            measured["speculative"]["draft_kv_bytes"].get<int64_t>() +
                measured["speculative"]["draft_activation_bytes"].get<int64_t>() - (1 << 20));
  // Another tokenizer (the demo model's is the real Qwen2.5 one, micro-qwen2's has 1,024 tokens).
  auto other = RunCommand({kQwenbox, "serve", "--print-config", "--draft-model", DataPath("micro-qwen2")});
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_NE(other.err.find("the draft model's tokenizer has 1024 tokens"), std::string::npos) << other.err;
  // The same tokenizer with the vocabulary padded to the embedding's rows, as GGUF files have it
  // (the demo model's is Hugging Face's 151,665 tokens; the tiny GGUF's 151,936): accepted.
  const std::string padded = ::testing::TempDir() + "/qb-draft-tiny.gguf";
  auto made = RunCommand({kQwenbox, "make-model", "--preset", "tiny", "--format", "gguf", "--dtype", "f16", "--out", padded});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  auto same = RunCommand({kQwenbox, "serve", "--print-config", "--draft-model", padded});
  EXPECT_EQ(same.exit_code, 0) << same.err;
  EXPECT_EQ(ParseJson(same.out, "stdout").value()["speculative"]["method"], "draft_model") << same.out;
  std::remove(padded.c_str());
  // bench runs it through the engine (--concurrency), and says so without.
  auto bench = RunCommand({kQwenbox, "bench", "--model", DataPath("micro-qwen2"), "-p", "16", "-n", "16", "--reps", "1",
                           "--concurrency", "2", "--draft-model", DataPath("micro-qwen2/micro-qwen2-q8_0.gguf")});
  EXPECT_EQ(bench.exit_code, 0) << bench.err;
  EXPECT_NE(bench.out.find("speculation: "), std::string::npos) << bench.out;
  auto alone = RunCommand({kQwenbox, "bench", "--model", DataPath("micro-qwen2"), "--draft-model",
                           DataPath("micro-qwen2/micro-qwen2-q8_0.gguf")});
  EXPECT_EQ(alone.exit_code, 1);
  EXPECT_NE(alone.err.find("add --concurrency N"), std::string::npos) << alone.err;
  auto missing = RunCommand({kQwenbox, "serve", "--print-config", "--draft-model", "/nonexistent/draft.gguf"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("--draft-model"), std::string::npos) << missing.err;
}

TEST(ServeCli, TensorParallelConfigAndRefusals) {
  auto cfg = RunCommand({kQwenbox, "serve", "--model", DataPath("micro-qwen2"), "--print-config", "--threads", "2",
                         "--tp", "2"});
  ASSERT_EQ(cfg.exit_code, 0) << cfg.err;
  const Json j = ParseJson(cfg.out, "stdout").value();
  EXPECT_EQ(j["tensor_parallel"], 2);
  EXPECT_EQ(j["device"], "cpu (tensor parallel: 2 ranks x 1 threads)");
  auto whole = RunCommand({kQwenbox, "serve", "--model", DataPath("micro-qwen2"), "--print-config", "--threads", "2"});
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  // The KV cache holds each rank's heads: the same bytes per token in all.
  EXPECT_EQ(j["kv_bytes_per_token"], ParseJson(whole.out, "stdout").value()["kv_bytes_per_token"]);
  auto bad = RunCommand({kQwenbox, "serve", "--model", DataPath("micro-qwen2"), "--print-config", "--tp", "4"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("2 KV heads do not split evenly"), std::string::npos) << bad.err;
  auto zero = RunCommand({kQwenbox, "logits", "--model", DataPath("micro-qwen2"), "--ids", "1", "--tp", "0"});
  EXPECT_EQ(zero.exit_code, 1);
  EXPECT_NE(zero.err.find("--tensor-parallel-size must be at least 1"), std::string::npos) << zero.err;
}

}  // namespace
}  // namespace qb
