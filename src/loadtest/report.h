// The figures of a load run, defined as vLLM's `bench serve` defines them:
//   TTFT  first text-carrying chunk - send
//   TPOT  (end-to-end - TTFT) / (output tokens - 1), per request with more than one token
//   ITL   the gaps between text-carrying chunks, over all requests
//   E2E   last byte - send
//   throughput: completed requests, output tokens and input + output tokens per second of the
//   run (first send to last end); goodput: requests per second that met every SLO.
// Failed requests are counted and listed, never averaged in.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "loadtest/runner.h"
#include "loadtest/stats.h"
#include "util/json.h"

namespace qb::loadtest {

// Service-level objectives in milliseconds: "ttft=500,tpot=50,e2e=10000".
struct Slo {
  std::optional<double> ttft_ms, tpot_ms, itl_ms, e2e_ms;
  bool empty() const { return !ttft_ms && !tpot_ms && !itl_ms && !e2e_ms; }
};
Result<Slo> ParseSlo(const std::string& spec);

struct LoadReport {
  int completed = 0, failed = 0;
  double duration_s = 0;
  int64_t input_tokens = 0, output_tokens = 0;
  double request_s = 0, output_tok_s = 0, total_tok_s = 0;
  Summary ttft_ms, tpot_ms, itl_ms, e2e_ms;
  Slo slo;
  int good = 0;  // completed requests within every SLO
  double goodput_req_s = 0;
  int max_in_flight = 0;
  std::map<std::string, int> errors;  // message -> count
  // Per second of the run: output tokens received and requests completed.
  std::vector<double> tokens_per_second, requests_per_second;
};

LoadReport MakeReport(const LoadRun& run, const Slo& slo);
Json ReportJson(const LoadReport& r);
// A fixed-width table for a terminal.
std::string ReportTable(const LoadReport& r);
// An SVG with latency percentiles (TTFT, TPOT, ITL, E2E) and throughput over time.
std::string ReportSvg(const LoadReport& r, const std::string& title);

}  // namespace qb::loadtest
