// qwenbox tune --model PATH --cpus N --memory SIZE --slo ttft=MS,tpot=MS [--quant q8_0,q4_0]
//   [--instances 1,2] [--threads LIST] [--max-num-seqs 4,8,16] [--max-batch-tokens 512,2048]
//   [--concurrency 8] [--num-requests 24] [--input-len 128] [--output-len 64]
// Tries serving configurations inside cgroups that hold the given budget (each instance gets
// --cpus / instances and --memory / instances), loads each with `loadtest`, and recommends the
// one with the highest goodput whose P99 TTFT and TPOT meet the SLO.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include <httplib.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "assets/assets.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "loadtest/report.h"
#include "loadtest/runner.h"
#include "loadtest/workload.h"
#include "resources/cgroup_sandbox.h"
#include "resources/deployment.h"
#include "util/byte_size.h"
#include "util/child_process.h"

namespace qb::cli {

namespace {

struct TuneOptions {
  std::string model, memory, slo = "ttft=2000,tpot=200", quant, instances = "1,2", threads, seqs = "4,8,16",
              batch_tokens = "512,2048", input_len = "128", output_len = "64", out;
  double cpus = 0;
  int concurrency = 8, num_requests = 24, port_base = 18600, max_total_tokens = 1024;
  double ready_timeout = 180;
  bool json = false;
};

struct Config {
  std::string quant;  // "" = as stored
  int instances = 1, threads = 1, seqs = 8, batch_tokens = 2048;
};

struct Trial {
  Config c;
  bool started = false;
  std::string failure;  // why it did not run (did not fit, crashed, ...)
  loadtest::LoadReport report;
  bool meets_slo = false;
  int64_t oom_kills = 0, peak_bytes = 0;
};

Result<std::vector<int>> IntList(const std::string& text, const char* flag) {
  std::vector<int> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    try {
      size_t used = 0;
      const int v = std::stoi(item, &used);
      if (used != item.size() || v < 1) throw std::invalid_argument("bad");
      out.push_back(v);
    } catch (...) {
      return InvalidArgument(fmt::format("{} \"{}\": a comma-separated list of positive integers", flag, text));
    }
  }
  if (out.empty()) return InvalidArgument(fmt::format("{} is empty", flag));
  return out;
}

std::vector<std::string> StringList(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  if (out.empty()) out.push_back("");
  return out;
}

std::string SelfPath() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "qwenbox";
}

std::vector<std::string> ServeArgs(const TuneOptions& o, const Config& c, int port) {
  std::vector<std::string> a = {"serve", "--model", o.model, "--port", std::to_string(port), "--threads",
                                std::to_string(c.threads), "--max-num-seqs", std::to_string(c.seqs),
                                "--max-batch-tokens", std::to_string(c.batch_tokens), "--max-total-tokens",
                                std::to_string(o.max_total_tokens)};
  if (!c.quant.empty()) a.insert(a.end(), {"--quant", c.quant});
  return a;
}

std::string LastLine(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last;
}

// The first port from `from` on that can be bound now: trial servers must not collide with other
// servers, nor with the local ports of this host's outgoing connections (which the kernel takes
// from the same range: 32768-60999 by default). No SO_REUSEADDR, so a port in TIME_WAIT counts
// as taken too.
int FreePort(int from) {
  for (int p = from; p < 65536; ++p) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return from;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(p));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (ok) return p;
  }
  return from;
}

constexpr int kTrialDrainS = 5;

// Starts the instances, waits until each is ready (or gone), loads them, stops them.
Trial RunTrial(const TuneOptions& o, const Config& c, int64_t memory, const std::vector<loadtest::LoadRequest>& reqs,
               const loadtest::Slo& slo, int index) {
  Trial t;
  t.c = c;
  std::vector<std::unique_ptr<CgroupSandbox>> boxes;
  std::vector<pid_t> pids;
  std::vector<loadtest::Endpoint> eps;
  std::vector<std::string> logs;
  for (int i = 0; i < c.instances; ++i) {
    auto box = CgroupSandbox::Create(fmt::format("qwenbox-tune-{}-{}-{}", ::getpid(), index, i), memory / c.instances,
                                     o.cpus / c.instances);
    if (!box.ok()) {
      t.failure = box.status().message();
      return t;
    }
    const int port = FreePort(i == 0 ? o.port_base + index * 8 : eps.back().port + 1);
    std::vector<std::string> argv = {SelfPath()};
    for (auto& a : ServeArgs(o, c, port)) argv.push_back(a);
    // Nothing is in flight when a trial ends: a short drain, well inside StopServer's grace.
    argv.insert(argv.end(), {"--drain-timeout", std::to_string(kTrialDrainS)});
    logs.push_back(fmt::format("/tmp/qwenbox-tune-{}-{}-{}.log", ::getpid(), index, i));
    auto pid = (*box)->Spawn(argv, logs.back());
    if (!pid.ok()) {
      t.failure = pid.status().message();
      return t;
    }
    pids.push_back(*pid);
    boxes.push_back(std::move(*box));
    loadtest::Endpoint e;
    e.port = port;
    e.ignore_eos = true;
    eps.push_back(e);
  }
  // Ready, or exited (did not fit: its last log line says why).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.ready_timeout);
  for (size_t i = 0; i < pids.size(); ++i) {
    httplib::Client client("127.0.0.1", eps[i].port);
    client.set_connection_timeout(1, 0);
    while (true) {
      int status = 0;
      if (::waitpid(pids[i], &status, WNOHANG) == pids[i]) {
        pids[i] = -1;
        t.failure = fmt::format("instance {} exited ({}): {}", i,
                                WIFSIGNALED(status) ? fmt::format("signal {}", WTERMSIG(status))
                                                    : fmt::format("status {}", WEXITSTATUS(status)),
                                LastLine(logs[i]));
        break;
      }
      auto res = client.Get("/ready");
      if (res && res->status == 200) break;
      if (std::chrono::steady_clock::now() > deadline) {
        t.failure = fmt::format("instance {} not ready after {:g} s", i, o.ready_timeout);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (!t.failure.empty()) break;
  }
  if (t.failure.empty()) {
    t.started = true;
    loadtest::LoadOptions lo;
    lo.endpoint = eps[0];
    lo.more_endpoints.assign(eps.begin() + 1, eps.end());
    lo.requests = reqs;
    lo.concurrency = o.concurrency;
    lo.warmup = c.instances;
    t.report = loadtest::MakeReport(loadtest::RunLoad(lo), slo);
    t.meets_slo = t.report.failed == 0 && t.report.completed > 0 &&
                  (!slo.ttft_ms || t.report.ttft_ms.p99 <= *slo.ttft_ms) &&
                  (!slo.tpot_ms || t.report.tpot_ms.p99 <= *slo.tpot_ms) &&
                  (!slo.itl_ms || t.report.itl_ms.p99 <= *slo.itl_ms) && (!slo.e2e_ms || t.report.e2e_ms.p99 <= *slo.e2e_ms);
  }
  for (pid_t pid : pids)
    // SIGTERM (nothing is in flight by now), then SIGKILL: a trial never waits forever.
    if (pid > 0 && StopChild(pid, kTrialDrainS + 25).killed)
      spdlog::warn("tune: server {} did not stop within {} s of SIGTERM: killed it", pid, kTrialDrainS + 25);
  for (const auto& b : boxes) {
    t.oom_kills += b->OomKills();
    t.peak_bytes = std::max(t.peak_bytes, b->PeakBytes());
  }
  for (const std::string& l : logs) std::remove(l.c_str());
  return t;
}

std::string Describe(const Config& c) {
  return fmt::format("{} x (threads {}, seqs {}, batch tokens {}{})", c.instances, c.threads, c.seqs, c.batch_tokens,
                     c.quant.empty() ? "" : ", " + c.quant);
}

Status RunTune(const TuneOptions& o) {
  if (o.model.empty()) return InvalidArgument("--model is required");
  if (o.cpus <= 0) return InvalidArgument("--cpus must be positive");
  QB_ASSIGN_OR_RETURN(const int64_t memory, ParseByteSize(o.memory));
  QB_ASSIGN_OR_RETURN(const loadtest::Slo slo, loadtest::ParseSlo(o.slo));
  QB_ASSIGN_OR_RETURN(const auto instances, IntList(o.instances, "--instances"));
  QB_ASSIGN_OR_RETURN(const auto seqs, IntList(o.seqs, "--max-num-seqs"));
  QB_ASSIGN_OR_RETURN(const auto batch, IntList(o.batch_tokens, "--max-batch-tokens"));
  std::vector<int> threads_list;
  if (!o.threads.empty()) {
    QB_ASSIGN_OR_RETURN(threads_list, IntList(o.threads, "--threads"));
  }
  QB_ASSIGN_OR_RETURN(auto in_len, loadtest::LengthDist::Parse(o.input_len));
  QB_ASSIGN_OR_RETURN(auto out_len, loadtest::LengthDist::Parse(o.output_len));
  QB_ASSIGN_OR_RETURN(auto tok, LoadTokenizerFromText(assets::Qwen25TokenizerJson(), assets::Qwen25TokenizerConfigJson(), "built-in"));
  const auto reqs = loadtest::RandomWorkload(*tok, o.num_requests, in_len, out_len, 0);

  std::vector<Config> grid;
  for (const std::string& q : StringList(o.quant))
    for (int inst : instances) {
      if (o.cpus / inst < 0.5) continue;  // less than half a CPU per instance is not worth trying
      // Threads: the quota each instance gets, rounded down (the serve default), unless listed.
      std::vector<int> ts = threads_list;
      if (ts.empty()) ts.push_back(std::max(1, static_cast<int>(std::floor(o.cpus / inst + 1e-9))));
      for (int th : ts)
        for (int s : seqs)
          for (int b : batch) grid.push_back(Config{q, inst, th, s, b});
    }
  std::fprintf(stderr, "tune: %zu configurations, %d requests each at concurrency %d, budget %s and %g CPUs\n", grid.size(),
               o.num_requests, o.concurrency, HumanBytes(memory).c_str(), o.cpus);
  std::vector<Trial> trials;
  for (size_t i = 0; i < grid.size(); ++i) {
    std::fprintf(stderr, "[%zu/%zu] %s ... ", i + 1, grid.size(), Describe(grid[i]).c_str());
    std::fflush(stderr);
    trials.push_back(RunTrial(o, grid[i], memory, reqs, slo, static_cast<int>(i)));
    const Trial& t = trials.back();
    if (!t.started) std::fprintf(stderr, "not run: %s\n", t.failure.c_str());
    else
      std::fprintf(stderr, "%.1f tok/s, goodput %.2f req/s, p99 TTFT %.0f ms, p99 TPOT %.0f ms%s\n", t.report.output_tok_s,
                   t.report.goodput_req_s, t.report.ttft_ms.p99, t.report.tpot_ms.p99, t.meets_slo ? "" : " (misses the SLO)");
    if (t.started && t.failure.empty() && trials.size() == 1 && t.oom_kills > 0) break;
  }
  // The best: meets the SLO, highest goodput (then output tokens/s).
  const Trial* best = nullptr;
  for (const Trial& t : trials) {
    if (!t.started || !t.meets_slo) continue;
    if (!best || t.report.goodput_req_s > best->report.goodput_req_s ||
        (t.report.goodput_req_s == best->report.goodput_req_s && t.report.output_tok_s > best->report.output_tok_s))
      best = &t;
  }
  Json runs = Json::array();
  for (const Trial& t : trials) {
    Json r = {{"quant", t.c.quant.empty() ? "as stored" : t.c.quant},
              {"instances", t.c.instances},
              {"threads", t.c.threads},
              {"max_num_seqs", t.c.seqs},
              {"max_batch_tokens", t.c.batch_tokens},
              {"ran", t.started},
              {"oom_kills", t.oom_kills},
              {"peak_memory_bytes", t.peak_bytes}};
    if (t.started) {
      r["meets_slo"] = t.meets_slo;
      r["goodput_req_s"] = t.report.goodput_req_s;
      r["output_tok_s"] = t.report.output_tok_s;
      r["ttft_p99_ms"] = t.report.ttft_ms.p99;
      r["tpot_p99_ms"] = t.report.tpot_ms.p99;
      r["e2e_p99_ms"] = t.report.e2e_ms.p99;
      r["failed"] = t.report.failed;
    } else {
      r["why_not"] = t.failure;
    }
    runs.push_back(r);
  }
  Json j = {{"model", o.model}, {"cpus", o.cpus}, {"memory_bytes", memory}, {"slo", o.slo}, {"runs", runs}};
  std::string command;
  if (best) {
    std::string serve;
    for (const std::string& a : ServeArgs(o, best->c, 8080)) serve += " " + a;
    serve = serve.substr(0, serve.find(" --port")) + " --host 0.0.0.0 --port 8080" +
            serve.substr(serve.find(" --threads"));
    command = fmt::format("docker run --rm -p 8080:8080 --memory={} --memory-swap={} --cpus={:g} -v MODEL:MODEL:ro qwenbox:latest{}",
                          DockerSize(memory / best->c.instances), DockerSize(memory / best->c.instances),
                          o.cpus / best->c.instances, serve);
    if (best->c.instances > 1) command = fmt::format("{} instances, each: {}", best->c.instances, command);
    j["best"] = runs[static_cast<size_t>(best - trials.data())];
    j["command"] = command;
  } else {
    j["best"] = nullptr;
  }
  if (!o.out.empty()) {
    std::ofstream f(o.out);
    f << j.dump(2) << "\n";
    if (!f) return IoError(fmt::format("{}: cannot write", o.out));
  }
  if (o.json) {
    std::puts(j.dump(2).c_str());
  } else {
    std::printf("%-10s %-5s %-7s %-5s %-7s %10s %10s %10s %10s  %s\n", "quant", "inst", "threads", "seqs", "batch",
                "tok/s", "goodput", "p99 TTFT", "p99 TPOT", "");
    for (const Trial& t : trials) {
      std::printf("%-10s %-5d %-7d %-5d %-7d ", t.c.quant.empty() ? "stored" : t.c.quant.c_str(), t.c.instances,
                  t.c.threads, t.c.seqs, t.c.batch_tokens);
      if (t.started)
        std::printf("%10.1f %10.2f %10.0f %10.0f  %s%s\n", t.report.output_tok_s, t.report.goodput_req_s, t.report.ttft_ms.p99,
                    t.report.tpot_ms.p99, t.meets_slo ? "meets SLO" : "misses SLO", &t == best ? "  <- best" : "");
      else
        std::printf("%10s  %s\n", "-", t.failure.c_str());
    }
    if (best) std::printf("\nbest: %s\n%s\n", Describe(best->c).c_str(), command.c_str());
    else std::printf("\nno configuration met the SLO %s: loosen it, or give more CPUs or memory\n", o.slo.c_str());
  }
  return Status::Ok();
}

}  // namespace

void AddTuneCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<TuneOptions>();
  auto* cmd = app.add_subcommand("tune", "Find the serving configuration with the best goodput under an SLO within a CPU and memory budget (runs qwenbox in cgroups; needs root)");
  cmd->add_option("--model", o->model, "A Hugging Face directory or a .gguf file")->required();
  cmd->add_option("--cpus", o->cpus, "CPUs of the budget (shared by the instances)")->required();
  cmd->add_option("--memory", o->memory, "Memory of the budget, e.g. 4g")->required();
  cmd->add_option("--slo", o->slo, "Objectives for P99, in ms: ttft=MS,tpot=MS (also itl, e2e)")->capture_default_str();
  cmd->add_option("--quant", o->quant, "Quantizations to try, e.g. q8_0,q4_0 (default: as stored)");
  cmd->add_option("--instances", o->instances, "Instance counts to try")->capture_default_str();
  cmd->add_option("--threads", o->threads, "Threads per instance to try (default: the instance's CPU quota, rounded down)");
  cmd->add_option("--max-num-seqs", o->seqs, "Batch sizes to try")->capture_default_str();
  cmd->add_option("--max-batch-tokens", o->batch_tokens, "Step token budgets to try")->capture_default_str();
  cmd->add_option("--max-total-tokens", o->max_total_tokens, "Per-request token limit of the servers")->capture_default_str();
  cmd->add_option("--concurrency", o->concurrency, "Clients in flight during each trial")->capture_default_str();
  cmd->add_option("--num-requests", o->num_requests, "Requests per trial")->capture_default_str();
  cmd->add_option("--input-len", o->input_len, "Prompt tokens (N, uniform:A:B, normal:M:S)")->capture_default_str();
  cmd->add_option("--output-len", o->output_len, "Output tokens")->capture_default_str();
  cmd->add_option("--port-base", o->port_base, "First port tried for the trial servers (taken ports are skipped)")
      ->capture_default_str();
  cmd->add_option("--ready-timeout", o->ready_timeout, "Seconds to wait for a server to load")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the JSON summary instead of the table");
  cmd->add_option("--out", o->out, "Write the JSON summary to this file");
  cmd->callback([o, exit_code] {
    const Status s = RunTune(*o);
    *exit_code = s.ok() ? 0 : ReportError("tune", s);
  });
}

}  // namespace qb::cli
