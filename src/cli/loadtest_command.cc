// qwenbox loadtest --url URL [--api openai|openai-chat|tgi] [--model NAME] (--concurrency N |
//   --rate R [--burstiness B]) --num-requests K [--input-len DIST] [--output-len DIST]
//   [--dataset FILE.jsonl] [--ignore-eos] [--seed S] [--warmup W] [--slo ttft=MS,tpot=MS]
//   [--json] [--out report.json] [--plot report.svg]
// A load test against any OpenAI-compatible or TGI server (qwenbox, vLLM, llama.cpp's
// llama-server, TGI): TTFT, TPOT, ITL, end-to-end latency and throughput as vLLM's `bench serve`
// reports them (src/loadtest/report.h has the definitions).
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>

#include <httplib.h>

#include <fmt/format.h>

#include "assets/assets.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "loadtest/report.h"
#include "loadtest/runner.h"
#include "loadtest/workload.h"

namespace qb::cli {

namespace {

struct LoadtestOptions {
  std::string url = "http://127.0.0.1:8080", api = "openai", model, api_key, input_len = "128", output_len = "128",
              dataset, tokenizer, slo, out, plot;
  int concurrency = 0, num_requests = 0, warmup = 0;
  double rate = 0, burstiness = 1, temperature = 0, timeout = 600;
  uint64_t seed = 0;
  bool ignore_eos = false, json = false;
};

// The first model the server lists (as vLLM's benchmark does), or "" when it lists none.
std::string ServedModel(const loadtest::Endpoint& e) {
  httplib::Client c(e.host, e.port);
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(10, 0);
  httplib::Headers h;
  if (!e.api_key.empty()) h.emplace("Authorization", "Bearer " + e.api_key);
  auto res = c.Get((e.base_path + "/v1/models").c_str(), h);
  if (!res || res->status != 200) return "";
  auto j = ParseJson(res->body, "/v1/models");
  if (!j.ok() || !j->contains("data") || !(*j)["data"].is_array() || (*j)["data"].empty()) return "";
  const Json& m = (*j)["data"][0];
  return m.contains("id") && m["id"].is_string() ? m["id"].get<std::string>() : "";
}

Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  f.close();
  if (!f) return IoError(fmt::format("{}: cannot write", path));
  return Status::Ok();
}

void DrawProgress(int done, int total, int failed) {
  constexpr int kWidth = 40;
  const int filled = total > 0 ? done * kWidth / total : kWidth;
  std::fprintf(stderr, "\r[%s%s] %d/%d requests%s", std::string(static_cast<size_t>(filled), '#').c_str(),
               std::string(static_cast<size_t>(kWidth - filled), ' ').c_str(), done, total,
               failed ? fmt::format(", {} failed", failed).c_str() : "");
  if (done == total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

Status RunLoadtest(const LoadtestOptions& o) {
  if (o.num_requests < 1) return InvalidArgument("--num-requests must be at least 1");
  if (o.concurrency < 0 || o.rate < 0 || o.burstiness <= 0 || o.warmup < 0)
    return InvalidArgument("--concurrency, --rate and --warmup must not be negative, --burstiness must be positive");
  if (o.concurrency == 0 && o.rate == 0) return InvalidArgument("give --concurrency N, --rate R, or both");
  QB_ASSIGN_OR_RETURN(loadtest::Endpoint e, loadtest::ParseUrl(o.url));
  QB_ASSIGN_OR_RETURN(e.api, loadtest::ParseApi(o.api));
  e.api_key = o.api_key;
  e.ignore_eos = o.ignore_eos;
  e.temperature = o.temperature;
  e.timeout_s = o.timeout;
  QB_ASSIGN_OR_RETURN(loadtest::LengthDist in_len, loadtest::LengthDist::Parse(o.input_len));
  QB_ASSIGN_OR_RETURN(loadtest::LengthDist out_len, loadtest::LengthDist::Parse(o.output_len));
  loadtest::Slo slo;
  if (!o.slo.empty()) {
    QB_ASSIGN_OR_RETURN(slo, loadtest::ParseSlo(o.slo));
  }

  std::shared_ptr<const Tokenizer> tok;
  if (o.tokenizer.empty()) {
    QB_ASSIGN_OR_RETURN(tok, LoadTokenizerFromText(assets::Qwen25TokenizerJson(), assets::Qwen25TokenizerConfigJson(),
                                                   "built-in"));
  } else {
    QB_ASSIGN_OR_RETURN(tok, LoadTokenizer(o.tokenizer));
  }
  loadtest::LoadOptions lo;
  lo.endpoint = e;
  if (o.dataset.empty()) {
    lo.requests = loadtest::RandomWorkload(*tok, o.num_requests + o.warmup, in_len, out_len, o.seed);
  } else {
    QB_ASSIGN_OR_RETURN(lo.requests, loadtest::DatasetWorkload(o.dataset, *tok, o.num_requests + o.warmup, out_len, o.seed));
  }
  // Warm-up requests come first in the list and are not measured.
  std::vector<loadtest::LoadRequest> warm(lo.requests.begin(), lo.requests.begin() + o.warmup);
  lo.requests.erase(lo.requests.begin(), lo.requests.begin() + o.warmup);
  lo.concurrency = o.concurrency;
  lo.rate = o.rate;
  lo.burstiness = o.burstiness;
  lo.seed = o.seed;
  if (e.api != loadtest::Api::kTgi) {
    lo.endpoint.model = o.model.empty() ? ServedModel(e) : o.model;
    if (lo.endpoint.model.empty()) lo.endpoint.model = "qwenbox";
  }
  for (const auto& w : warm) {
    auto r = loadtest::SendStreaming(lo.endpoint, w, [] { return 0.0; });
    if (!r.success) return IoError(fmt::format("warm-up request failed: {}", r.error));
  }
  if (::isatty(2)) lo.progress = DrawProgress;
  const loadtest::LoadRun run = loadtest::RunLoad(lo);
  const loadtest::LoadReport report = loadtest::MakeReport(run, slo);
  Json j = loadtest::ReportJson(report);
  j["config"] = {{"url", o.url},          {"api", o.api},
                 {"model", lo.endpoint.model}, {"concurrency", o.concurrency},
                 {"rate", o.rate},        {"burstiness", o.burstiness},
                 {"num_requests", o.num_requests}, {"input_len", in_len.ToString()},
                 {"output_len", out_len.ToString()}, {"dataset", o.dataset},
                 {"ignore_eos", o.ignore_eos}, {"seed", o.seed}, {"warmup", o.warmup}};
  if (!o.out.empty()) QB_RETURN_IF_ERROR(WriteFile(o.out, j.dump(2) + "\n"));
  if (!o.plot.empty())
    QB_RETURN_IF_ERROR(WriteFile(
        o.plot, loadtest::ReportSvg(report, fmt::format("{} — {} requests, {}", o.url, o.num_requests,
                                                        o.rate > 0 ? fmt::format("{:g} req/s", o.rate)
                                                                   : fmt::format("concurrency {}", o.concurrency)))));
  if (o.json) std::puts(j.dump(2).c_str());
  else std::fputs(loadtest::ReportTable(report).c_str(), stdout);
  if (report.completed == 0) return IoError(fmt::format("every request failed ({} failures)", report.failed));
  return Status::Ok();
}

}  // namespace

void AddLoadtestCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<LoadtestOptions>();
  auto* cmd = app.add_subcommand("loadtest", "Load-test an OpenAI-compatible or TGI server: TTFT, TPOT, ITL, latency percentiles, throughput");
  cmd->add_option("--url", o->url, "The server, http://HOST:PORT")->capture_default_str();
  cmd->add_option("--api", o->api, "openai (/v1/completions), openai-chat (/v1/chat/completions) or tgi (/generate_stream)")
      ->capture_default_str();
  cmd->add_option("--model", o->model, "Model name to send (default: the first of /v1/models)");
  cmd->add_option("--api-key", o->api_key, "Sent as 'Authorization: Bearer KEY'");
  cmd->add_option("--concurrency", o->concurrency, "Requests in flight (with --rate: at most this many)");
  cmd->add_option("--rate", o->rate, "Requests per second, arriving as a Poisson process (0: closed loop)");
  cmd->add_option("--burstiness", o->burstiness, "Gamma shape of the arrival gaps: 1 Poisson, < 1 burstier")->capture_default_str();
  cmd->add_option("--num-requests", o->num_requests, "Requests to measure")->required();
  cmd->add_option("--input-len", o->input_len, "Prompt tokens: N, uniform:MIN:MAX or normal:MEAN:STD")->capture_default_str();
  cmd->add_option("--output-len", o->output_len, "max_tokens: N, uniform:MIN:MAX or normal:MEAN:STD")->capture_default_str();
  cmd->add_option("--dataset", o->dataset, "JSONL of {\"prompt\": ...} or {\"messages\": [...]}, optional \"max_tokens\"");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer for prompt lengths (default: the built-in Qwen2.5)");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Ask the server to generate exactly max_tokens");
  cmd->add_option("--temperature", o->temperature, "Sampling temperature sent")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed for prompts, lengths and arrivals")->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "Requests sent one at a time before measuring")->capture_default_str();
  cmd->add_option("--slo", o->slo, "Goodput objectives in ms, e.g. ttft=500,tpot=50 (also itl, e2e)");
  cmd->add_option("--timeout", o->timeout, "Seconds a request may take")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the JSON report instead of the table");
  cmd->add_option("--out", o->out, "Write the JSON report to this file");
  cmd->add_option("--plot", o->plot, "Write an SVG of latency percentiles and throughput over time");
  cmd->callback([o, exit_code] {
    const Status s = RunLoadtest(*o);
    *exit_code = s.ok() ? 0 : ReportError("loadtest", s);
  });
}

}  // namespace qb::cli
