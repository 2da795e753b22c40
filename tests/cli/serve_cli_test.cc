// `qwenbox serve` end to end with its model split over ranks (--tensor-parallel-size): the
// completions it serves are those of the whole model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
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

TEST(ServeCli, TensorParallelServesWhatTheWholeModelGenerates) {
  std::string ids;
  for (int32_t id : test::LoadReference(DataPath("micro-qwen2/reference/f32/en_sentence.json")).token_ids)
    ids += (ids.empty() ? "" : ",") + std::to_string(id);
  // The whole model, greedy, exact kernels.
  auto whole = RunCommand({kQwenbox, "generate", "--model", DataPath("micro-qwen2"), "--ids", ids, "--max-tokens", "12",
                           "--temperature", "0", "--ignore-eos", "--kernels", "reference", "--json"});
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  const std::string want = ParseJson(whole.out, "stdout").value()["text"].get<std::string>();
  ASSERT_FALSE(want.empty());

  const int port = test::FreeLoopbackPort();
  ASSERT_GT(port, 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string port_text = std::to_string(port), model = DataPath("micro-qwen2");
    ::execl(kQwenbox.c_str(), kQwenbox.c_str(), "--log-level", "warn", "serve", "--model", model.c_str(), "--port",
            port_text.c_str(), "--threads", "2", "--tensor-parallel-size", "2", "--kernels", "reference",
            static_cast<char*>(nullptr));
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
  std::vector<std::string> texts;
  if (ready) {
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
      for (const auto& choice : body["choices"]) texts.push_back(choice["text"]);
    }
  }
  const ChildExit end = StopChild(pid, 60);
  EXPECT_FALSE(end.killed) << "the server did not stop on SIGTERM";
  ASSERT_TRUE(ready) << "the server did not become ready";
  EXPECT_EQ(texts, (std::vector<std::string>{want, want, want}));
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
