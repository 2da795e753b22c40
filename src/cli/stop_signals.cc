#include "cli/stop_signals.h"

#include <signal.h>
#include <pthread.h>

#include <cstdlib>

#include <spdlog/spdlog.h>

namespace qb::cli {
namespace {

sigset_t StopSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

const char* Name(int sig) { return sig == SIGTERM ? "SIGTERM" : "SIGINT"; }

}  // namespace

StopSignals::StopSignals() {
  const sigset_t set = StopSet();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  thread_ = std::thread([this] { Run(); });
}

StopSignals::~StopSignals() {
  // The waiting thread may still sit in sigwait (the process ends right after this): leave it.
  if (thread_.joinable()) thread_.detach();
}

void StopSignals::Run() {
  const sigset_t set = StopSet();
  int sig = 0;
  if (sigwait(&set, &sig) != 0) return;
  std::unique_lock<std::mutex> lock(mu_);
  if (!ready_) {
    spdlog::warn("{} while starting: exiting", Name(sig));
    spdlog::default_logger()->flush();
    std::_Exit(128 + sig);
  }
  signal_ = sig;
  cv_.notify_all();
}

void StopSignals::SetReady() {
  std::lock_guard<std::mutex> lock(mu_);
  ready_ = true;
}

int StopSignals::WaitForSignal() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return signal_ != 0; });
  spdlog::info("{}: draining", Name(signal_));
  return signal_;
}

}  // namespace qb::cli
