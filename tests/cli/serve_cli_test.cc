// `qwenbox serve` end to end with its model split over ranks (--tensor-parallel-size), or with a
// draft model (--draft-model): the completions it serves are those of the whole model alone.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
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

// The whole model's greedy text for `ids` (exact kernels).
std::string WholeModelText(const std::string& ids) {
  auto whole = RunCommand({kQwenbox, "generate", "--model", DataPath("micro-qwen2"), "--ids", ids, "--max-tokens", "12",
                           "--temperature", "0", "--ignore-eos", "--kernels", "reference", "--json"});
  EXPECT_EQ(whole.exit_code, 0) << whole.err;
  return whole.exit_code == 0 ? ParseJson(whole.out, "stdout").value()["text"].get<std::string>() : "";
}

struct Served {
  bool ready = false;
  std::vector<std::string> texts;  // greedy completions of `ids`: n = 2, then n = 1
  std::string metrics;
};

// Starts `qwenbox serve --model micro-qwen2 ... extra` and asks for the completions.
Served ServeCompletions(const std::string& ids, const std::vector<std::string>& extra) {
  Served out;
  const int port = test::FreeLoopbackPort();
  EXPECT_GT(port, 0);
  if (port <= 0) return out;
  std::vector<std::string> args = {kQwenbox, "--log-level", "warn", "serve", "--model", DataPath("micro-qwen2"),
                                   "--port", std::to_string(port), "--threads", "2", "--kernels", "reference"};
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  EXPECT_GE(pid, 0);
  if (pid < 0) return out;
  if (pid == 0) {
    ::execv(kQwenbox.c_str(), argv.data());
    ::_exit(127);
  }
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60, 0);
  for (int i = 0; i < 150 && !out.ready; ++i) {
    auto r = client.Get("/ready");
    out.ready = r && r->status == 200;
    if (!out.ready) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (out.ready) {
    // Two sequences in one batch (n = 2), then one more request after them.
    for (const char* n : {"2", "1"}) {
      auto r = client.Post("/v1/completions",
                           std::string(R"({"prompt": [)") + ids + R"(], "max_tokens": 12, "temperature": 0, "ignore_eos": true, "n": )" + n + "}",
                           "application/json");
      if (!r || r->status != 200) {  // (no ASSERT before the server is stopped)
        ADD_FAILURE() << (r ? r->body : httplib::to_string(r.error()));
        break;
      }
      const Json body = ParseJson(r->body, "response").value();
      for (const auto& choice : body["choices"]) out.texts.push_back(choice["text"]);
    }
    if (auto m = client.Get("/metrics")) out.metrics = m->body;
  }
  const ChildExit end = StopChild(pid, 60);
  EXPECT_FALSE(end.killed) << "the server did not stop on SIGTERM";
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
