// SIGTERM / SIGINT for `serve`, taken by one thread with sigwait from the first line of the
// command. While the server starts (loading a model can take minutes) a signal ends the process
// at once with 128 + the signal's number, as if it had not been handled; once the server is
// ready, the signal is handed to WaitForSignal() so the caller can drain.
#pragma once

#include <memory>
#include <thread>

namespace qb::cli {

class StopSignals {
 public:
  // Blocks SIGTERM and SIGINT in the calling thread (and every thread it starts later) and
  // starts the waiting thread. Construct before any other thread starts.
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // From now on a signal is delivered to WaitForSignal() instead of ending the process.
  void SetReady();
  // Blocks until SIGTERM or SIGINT arrives; returns its number.
  int WaitForSignal();

 private:
  struct State;
  // Shared with the waiting thread, which outlives this object (it stays in sigwait until the
  // process ends, and a signal may still come after `serve` has returned).
  std::shared_ptr<State> state_;
  std::thread thread_;
};

const char* StopSignalName(int sig);

}  // namespace qb::cli
