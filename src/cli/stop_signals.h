// SIGTERM / SIGINT for `serve`, taken by one thread with sigwait from the first line of the
// command. While the server starts (loading a model can take minutes) a signal ends the process
// at once with 128 + the signal's number, as if it had not been handled; once the server is
// ready, the signal is handed to WaitForSignal() so the caller can drain.
#pragma once

#include <condition_variable>
#include <mutex>
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
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;
  int signal_ = 0;
  std::thread thread_;
};

}  // namespace qb::cli
