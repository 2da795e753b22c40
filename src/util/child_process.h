// Waiting for a child process without ever waiting forever: after the time given, the child is
// killed with SIGKILL and reaped (used by `tune` for its trial servers and by the tests).
#pragma once

#include <sys/types.h>

namespace qb {

struct ChildExit {
  int status = 0;       // as waitpid gives it
  bool killed = false;  // still running at the deadline: killed with SIGKILL
};

// Waits up to `timeout_s` for `pid` to end, then kills it.
ChildExit WaitChild(pid_t pid, double timeout_s);

// SIGTERM, then WaitChild(pid, grace_s).
ChildExit StopChild(pid_t pid, double grace_s);

}  // namespace qb
