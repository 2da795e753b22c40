#include "loadtest/runner.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

namespace qb::loadtest {

namespace {

std::chrono::steady_clock::time_point g_start;
double SinceStart() { return std::chrono::duration<double>(std::chrono::steady_clock::now() - g_start).count(); }

// At most `limit` holders at once (0: unlimited); tracks the peak.
class Gate {
 public:
  explicit Gate(int limit) : limit_(limit) {}
  void Enter() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return limit_ <= 0 || in_ < limit_; });
    peak_ = std::max(peak_, ++in_);
  }
  void Leave() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      --in_;
    }
    cv_.notify_one();
  }
  int peak() const { return peak_; }

 private:
  int limit_;
  int in_ = 0, peak_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
};

const Endpoint& EndpointFor(const LoadOptions& o, int i) {
  const size_t k = static_cast<size_t>(i) % (1 + o.more_endpoints.size());
  return k == 0 ? o.endpoint : o.more_endpoints[k - 1];
}

}  // namespace

LoadRun RunLoad(const LoadOptions& o) {
  g_start = std::chrono::steady_clock::now();
  for (int i = 0; i < o.warmup && !o.requests.empty(); ++i)
    SendStreaming(EndpointFor(o, i), o.requests[static_cast<size_t>(i) % o.requests.size()], &SinceStart);

  const int total = static_cast<int>(o.requests.size());
  LoadRun run;
  run.results.resize(o.requests.size());
  std::atomic<int> done{0}, failed{0};
  std::mutex progress_mu;
  auto finish = [&](int i, RequestResult r) {
    if (!r.success) failed.fetch_add(1);
    run.results[static_cast<size_t>(i)] = std::move(r);
    const int d = done.fetch_add(1) + 1;
    if (o.progress) {
      std::lock_guard<std::mutex> lock(progress_mu);
      o.progress(d, total, failed.load());
    }
  };
  g_start = std::chrono::steady_clock::now();
  run.start = g_start;
  Gate gate(o.concurrency);
  if (o.rate <= 0) {
    // Closed loop: `concurrency` workers each send the next request when theirs ends.
    std::atomic<int> next{0};
    std::vector<std::thread> workers;
    const int n = std::max(1, std::min(o.concurrency, total));
    for (int w = 0; w < n; ++w)
      workers.emplace_back([&] {
        for (int i; (i = next.fetch_add(1)) < total;) {
          gate.Enter();
          RequestResult r = SendStreaming(EndpointFor(o, i), o.requests[static_cast<size_t>(i)], &SinceStart);
          gate.Leave();
          finish(i, std::move(r));
        }
      });
    for (auto& t : workers) t.join();
  } else {
    // Open loop: arrivals on a schedule, each on its own thread (waiting at the gate if capped).
    std::mt19937_64 rng(o.seed);
    const double shape = o.burstiness > 0 ? o.burstiness : 1.0;
    std::gamma_distribution<double> gap(shape, 1.0 / (o.rate * shape));
    std::vector<std::thread> senders;
    double at = 0;
    for (int i = 0; i < total; ++i) {
      const double wait = at - SinceStart();
      if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
      senders.emplace_back([&, i] {
        gate.Enter();
        RequestResult r = SendStreaming(EndpointFor(o, i), o.requests[static_cast<size_t>(i)], &SinceStart);
        gate.Leave();
        finish(i, std::move(r));
      });
      at += gap(rng);
    }
    for (auto& t : senders) t.join();
  }
  double first = 1e300, last = 0;
  for (const RequestResult& r : run.results) {
    first = std::min(first, r.start_s);
    last = std::max(last, r.end_s);
  }
  run.duration_s = run.results.empty() ? 0 : last - first;
  run.max_in_flight = gate.peak();
  return run;
}

}  // namespace qb::loadtest
