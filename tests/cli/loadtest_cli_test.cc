// `qwenbox loadtest` end to end against `qwenbox serve` on the demo model, and its bad input.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "common/run_command.h"
#include "cli/cli_test_util.h"
#include "util/child_process.h"
#include "common/test_paths.h"
#include "util/json.h"

namespace qb {
namespace {

using test::RunCommand;
using test::kQwenbox;

TEST(LoadtestCli, AgainstTheDemoServer) {
  const int port = test::FreeLoopbackPort();
  ASSERT_GT(port, 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string port_text = std::to_string(port);
    ::execl(kQwenbox.c_str(), kQwenbox.c_str(), "--log-level", "warn", "serve", "--port", port_text.c_str(), "--threads",
            "1", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  test::CommandResult r;
  for (int i = 0; i < 100; ++i) {  // until the server is up
    r = RunCommand({kQwenbox, "loadtest", "--url", url, "--concurrency", "2", "--num-requests", "4", "--input-len",
                    "16", "--output-len", "8", "--ignore-eos", "--json", "--warmup", "1"});
    if (r.exit_code == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const ChildExit end = StopChild(pid, 60);
  EXPECT_FALSE(end.killed) << "the server did not stop on SIGTERM";
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = ParseJson(r.out, "stdout").value();
  EXPECT_EQ(j["completed"], 4);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_EQ(j["output_tokens"], 32);  // --ignore-eos: exactly max_tokens each
  EXPECT_EQ(j["input_tokens"], 64);   // the server's count of the 16-token prompts
  EXPECT_GT(j["ttft_ms"]["p50"].get<double>(), 0);
  EXPECT_GT(j["output_tok_s"].get<double>(), 0);
  EXPECT_EQ(j["config"]["model"], "qwenbox");
}

TEST(LoadtestCli, BadInputAndNoServer) {
  auto none = RunCommand({kQwenbox, "loadtest", "--url", "http://127.0.0.1:1", "--concurrency", "1", "--num-requests", "2"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("every request failed"), std::string::npos) << none.err;
  for (const std::vector<std::string>& argv :
       {std::vector<std::string>{kQwenbox, "loadtest", "--num-requests", "2"},  // neither concurrency nor rate
        std::vector<std::string>{kQwenbox, "loadtest", "--concurrency", "1", "--num-requests", "1", "--input-len", "x"},
        std::vector<std::string>{kQwenbox, "loadtest", "--concurrency", "1", "--num-requests", "1", "--slo", "p99=1"},
        std::vector<std::string>{kQwenbox, "loadtest", "--concurrency", "1", "--num-requests", "1", "--api", "grpc"},
        std::vector<std::string>{kQwenbox, "loadtest", "--url", "https://x", "--concurrency", "1", "--num-requests", "1"}}) {
    auto r = RunCommand(argv);
    EXPECT_TRUE(r.exited);
    EXPECT_EQ(r.exit_code, 1) << argv.back();
    EXPECT_FALSE(r.err.empty());
  }
}

}  // namespace
}  // namespace qb
