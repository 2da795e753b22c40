// Drives a load: a fixed number of requests in flight (--concurrency), or arrivals at a rate
// (--rate, Poisson, or gamma-distributed gaps with --burstiness < 1 for bursts), optionally
// capped in flight; warm-up requests first, not measured.
#pragma once

#include <chrono>
#include <functional>
#include <vector>

#include "loadtest/stream_client.h"

namespace qb::loadtest {

struct LoadOptions {
  Endpoint endpoint;
  std::vector<Endpoint> more_endpoints;  // several servers: request i goes to server i % count
  std::vector<LoadRequest> requests;
  int concurrency = 0;   // > 0: this many in flight (with rate: at most this many)
  double rate = 0;       // > 0: requests per second
  double burstiness = 1;  // gamma shape of the gaps: 1 = Poisson
  int warmup = 0;        // requests sent (one at a time) before measuring
  uint64_t seed = 0;
  std::function<void(int done, int total, int failed)> progress;  // called after each request
};

struct LoadRun {
  std::chrono::steady_clock::time_point start;  // the zero of the results' times
  std::vector<RequestResult> results;  // in request order
  double duration_s = 0;               // first send to last end
  int max_in_flight = 0;
};

LoadRun RunLoad(const LoadOptions& o);

}  // namespace qb::loadtest
