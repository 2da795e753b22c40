#include "util/child_process.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>

namespace qb {
namespace {

pid_t Spawn(const char* script) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", script, static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

TEST(ChildProcess, WaitChildReturnsTheExitStatus) {
  const pid_t pid = Spawn("exit 3");
  ASSERT_GT(pid, 0);
  const ChildExit e = WaitChild(pid, 30);
  EXPECT_FALSE(e.killed);
  ASSERT_TRUE(WIFEXITED(e.status));
  EXPECT_EQ(WEXITSTATUS(e.status), 3);
}

TEST(ChildProcess, WaitChildKillsAChildPastTheDeadline) {
  const pid_t pid = Spawn("exec sleep 30");
  ASSERT_GT(pid, 0);
  const auto start = std::chrono::steady_clock::now();
  const ChildExit e = WaitChild(pid, 0.2);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_TRUE(e.killed);
  ASSERT_TRUE(WIFSIGNALED(e.status));
  EXPECT_EQ(WTERMSIG(e.status), SIGKILL);
}

TEST(ChildProcess, StopChildSendsSigtermThenSigkill) {
  const pid_t polite = Spawn("exec sleep 30");
  ASSERT_GT(polite, 0);
  const ChildExit a = StopChild(polite, 30);
  EXPECT_FALSE(a.killed);
  ASSERT_TRUE(WIFSIGNALED(a.status));
  EXPECT_EQ(WTERMSIG(a.status), SIGTERM);

  const pid_t stubborn = Spawn("trap '' TERM; while :; do sleep 0.05; done");
  ASSERT_GT(stubborn, 0);
  ::usleep(200 * 1000);  // let the shell install its trap
  const ChildExit b = StopChild(stubborn, 0.5);
  EXPECT_TRUE(b.killed);
  ASSERT_TRUE(WIFSIGNALED(b.status));
  EXPECT_EQ(WTERMSIG(b.status), SIGKILL);
}

}  // namespace
}  // namespace qb
