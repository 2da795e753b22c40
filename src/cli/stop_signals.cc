#include "cli/stop_signals.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace qb::cli {
namespace {

sigset_t StopSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

const char* StopSignalName(int sig) { return sig == SIGTERM ? "SIGTERM" : "SIGINT"; }

struct StopSignals::State {
  std::mutex mu;
  std::condition_variable cv;
  bool ready = false;
  int signal = 0;
};

StopSignals::StopSignals() : state_(std::make_shared<State>()) {
  const sigset_t set = StopSet();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  thread_ = std::thread([state = state_] {
    const sigset_t stop = StopSet();
    int sig = 0;
    if (sigwait(&stop, &sig) != 0) return;
    std::unique_lock<std::mutex> lock(state->mu);
    if (!state->ready) {
      // Plain write(2): the process may already be in its static destructors (logger included).
      const char* name = StopSignalName(sig);
      const char* tail = " while starting: exiting\n";
      ssize_t ignored = ::write(2, name, std::strlen(name));
      ignored = ::write(2, tail, std::strlen(tail));
      (void)ignored;
      std::_Exit(128 + sig);
    }
    state->signal = sig;
    state->cv.notify_all();
  });
}

StopSignals::~StopSignals() {
  // The waiting thread may still sit in sigwait until the process ends: leave it (it owns a
  // reference to the state).
  if (thread_.joinable()) thread_.detach();
}

void StopSignals::SetReady() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->ready = true;
}

int StopSignals::WaitForSignal() {
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->cv.wait(lock, [this] { return state_->signal != 0; });
  return state_->signal;
}

}  // namespace qb::cli
