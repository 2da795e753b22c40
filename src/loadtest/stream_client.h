// One streamed request against an OpenAI-compatible (completions or chat) or TGI server, timed
// as vLLM's `bench serve` times it: TTFT is the first chunk that carries text, each later
// text-carrying chunk adds an inter-token latency, and the output token count comes from the
// server's usage (or, without usage, the chunks counted).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "loadtest/workload.h"

namespace qb::loadtest {

enum class Api { kOpenAiCompletions, kOpenAiChat, kTgi };

struct Endpoint {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string base_path;  // a path prefix from the URL, e.g. "/v1" is NOT included: "" normally
  Api api = Api::kOpenAiCompletions;
  std::string model = "qwenbox";
  std::string api_key;
  bool ignore_eos = false;
  double temperature = 0.0;
  double timeout_s = 600;
};

// "http://host:port[/prefix]" into an endpoint (https is refused: no TLS in this build).
Result<Endpoint> ParseUrl(const std::string& url);
Result<Api> ParseApi(const std::string& name);

struct RequestResult {
  bool success = false;
  std::string error;  // why it failed (HTTP status and message, a broken stream, ...)
  int http_status = 0;
  double start_s = 0, end_s = 0;  // seconds since the run began
  double ttft_s = 0;
  std::vector<double> itl_s;          // gaps between text-carrying chunks
  std::vector<double> token_times_s;  // arrival of each text-carrying chunk (since the run began)
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
  bool usage_reported = false;  // counts came from the server
  std::string text;
};

// The JSON body for `r` on `e`'s API (streaming on).
std::string RequestBody(const Endpoint& e, const LoadRequest& r);
// The path it is posted to.
std::string RequestPath(const Endpoint& e);

// Sends `r`, reads the stream to its end and times it against `run_start`.
RequestResult SendStreaming(const Endpoint& e, const LoadRequest& r, double (*now_s)());

}  // namespace qb::loadtest
