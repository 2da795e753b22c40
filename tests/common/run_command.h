// Runs a command line and captures its exit status, stdout and stderr (for CLI tests).
#pragma once

#include <string>
#include <vector>

namespace qb::test {

struct CommandResult {
  bool exited = false;  // false: killed by a signal (a crash)
  int exit_code = -1;
  int signal = 0;
  std::string out;
  std::string err;
  bool timed_out = false;  // still running after the time limit: killed with SIGKILL
};

// A command that runs past `timeout_s` is killed (a hang fails its test instead of stalling
// the whole run); the result then says timed_out, with the signal and what it printed.
CommandResult RunCommand(const std::vector<std::string>& argv, double timeout_s = 600);

// A loopback TCP port that was free a moment ago (the kernel's pick), for a server under test.
int FreeLoopbackPort();

}  // namespace qb::test
