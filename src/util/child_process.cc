#include "util/child_process.h"

#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <thread>

namespace qb {

ChildExit WaitChild(pid_t pid, double timeout_s) {
  ChildExit e;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (pid_t w; (w = ::waitpid(pid, &e.status, WNOHANG)) != pid;) {
    if (w < 0 && errno != EINTR) break;  // not a child of ours (cannot happen): nothing to wait for
    if (std::chrono::steady_clock::now() > deadline) {
      e.killed = true;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &e.status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return e;
}

ChildExit StopChild(pid_t pid, double grace_s) {
  ::kill(pid, SIGTERM);
  return WaitChild(pid, grace_s);
}

}  // namespace qb
