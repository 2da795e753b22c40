// The load tester against a scripted fake server whose delays are known: TTFT, ITL and TPOT must
// match what the server actually did within 2 ms, percentiles must be exact on known
// distributions, and failures (HTTP errors, error events, broken streams) must be counted and
// listed, never hidden.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <thread>

#include "assets/assets.h"
#include "loadtest/report.h"
#include "loadtest/runner.h"
#include "loadtest/stats.h"
#include "loadtest/workload.h"
#include "tokenizer/tokenizer.h"

namespace qb::loadtest {
namespace {

using Clock = std::chrono::steady_clock;
double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
Clock::duration Seconds(double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); }

TEST(Stats, PercentilesInterpolateLikeNumpy) {
  std::vector<double> v;
  for (int i = 1; i <= 100; ++i) v.push_back(i);
  const Summary s = Summarize(v);
  EXPECT_DOUBLE_EQ(s.mean, 50.5);
  EXPECT_DOUBLE_EQ(s.p50, 50.5);
  EXPECT_DOUBLE_EQ(s.p90, 90.1);
  EXPECT_DOUBLE_EQ(s.p99, 99.01);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 100);
  EXPECT_DOUBLE_EQ(Percentile({7}, 99), 7);
  EXPECT_DOUBLE_EQ(Percentile({1, 3}, 50), 2);
  EXPECT_EQ(Summarize({}).count, 0u);
}

TEST(Slo, Parses) {
  auto s = ParseSlo("ttft=500,tpot=50.5,e2e=9000");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->ttft_ms, 500);
  EXPECT_EQ(s->tpot_ms, 50.5);
  EXPECT_EQ(s->e2e_ms, 9000);
  EXPECT_FALSE(s->itl_ms);
  EXPECT_FALSE(ParseSlo("ttft").ok());
  EXPECT_FALSE(ParseSlo("ttft=-1").ok());
  EXPECT_FALSE(ParseSlo("latency=5").ok());
}

TEST(LengthDist, ParsesAndSamples) {
  std::mt19937_64 rng(1);
  EXPECT_EQ(LengthDist::Parse("64")->Sample(rng), 64);
  auto u = LengthDist::Parse("uniform:10:20");
  ASSERT_TRUE(u.ok());
  for (int i = 0; i < 100; ++i) {
    const int64_t x = u->Sample(rng);
    EXPECT_GE(x, 10);
    EXPECT_LE(x, 20);
  }
  EXPECT_TRUE(LengthDist::Parse("normal:128:16").ok());
  for (const char* bad : {"0", "1.5", "uniform:5", "uniform:9:3", "gauss:1:2", "x"}) EXPECT_FALSE(LengthDist::Parse(bad).ok()) << bad;
}

TEST(Workload, RandomPromptsHaveTheAskedTokenLength) {
  auto tok = LoadTokenizerFromText(assets::Qwen25TokenizerJson(), assets::Qwen25TokenizerConfigJson(), "built-in");
  ASSERT_TRUE(tok.ok());
  const auto reqs = RandomWorkload(**tok, 20, *LengthDist::Parse("uniform:50:300"), *LengthDist::Parse("32"), 7);
  ASSERT_EQ(reqs.size(), 20u);
  for (const LoadRequest& r : reqs) {
    // Re-encoding the prompt gives its stated length (the last token may be dropped to keep
    // UTF-8 whole).
    const auto n = static_cast<int64_t>((*tok)->Encode(r.prompt, false).size());
    EXPECT_EQ(n, r.prompt_tokens);
    EXPECT_GE(r.prompt_tokens, 49);
    EXPECT_EQ(r.max_tokens, 32);
    EXPECT_NO_THROW((void)Json(r.prompt).dump());  // valid UTF-8
  }
  // Seeded: the same workload again.
  EXPECT_EQ(RandomWorkload(**tok, 3, *LengthDist::Parse("40"), *LengthDist::Parse("8"), 7)[2].prompt,
            RandomWorkload(**tok, 3, *LengthDist::Parse("40"), *LengthDist::Parse("8"), 7)[2].prompt);
}

// A server that streams what the prompt scripts: "ttft=MS itl=MS n=TOKENS [fail|error|break]".
// It records when it really wrote each chunk, so oversleeping does not blur the check.
class FakeServer {
 public:
  struct Sent {
    Clock::time_point first;  // when the first text chunk was written
    std::vector<double> gaps_ms;
  };

  FakeServer() {
    server_.new_task_queue = [] { return new httplib::ThreadPool(64); };
    auto handler = [this](const httplib::Request& req, httplib::Response& res, int api) {
      const Json body = Json::parse(req.body);
      std::string script = api == 2 ? body["inputs"].get<std::string>()
                           : api == 1 ? body["messages"][0]["content"].get<std::string>()
                                      : body["prompt"].get<std::string>();
      std::map<std::string, double> kv;
      std::stringstream ss(script);
      std::string word;
      bool fail = false, error = false, brk = false;
      while (ss >> word) {
        const size_t eq = word.find('=');
        if (eq != std::string::npos) kv[word.substr(0, eq)] = std::stod(word.substr(eq + 1));
        fail |= word == "fail";
        error |= word == "error";
        brk |= word == "break";
      }
      if (fail) {
        res.status = 503;
        res.set_content(R"({"error": {"message": "scripted failure", "type": "server_error"}})", "application/json");
        return;
      }
      const auto t0 = Clock::now();
      const int n = static_cast<int>(kv["n"]);
      const double ttft = kv["ttft"], itl = kv["itl"];
      const std::string key = script;
      res.set_chunked_content_provider("text/event-stream", [=, this](size_t, httplib::DataSink& sink) {
        Sent sent;
        auto last = t0;
        for (int i = 0; i < n; ++i) {
          std::this_thread::sleep_until(i == 0 ? t0 + std::chrono::microseconds(static_cast<int64_t>(ttft * 1000))
                                               : last + std::chrono::microseconds(static_cast<int64_t>(itl * 1000)));
          if (brk && i == n / 2) return false;  // the connection drops mid-stream
          if (error && i == n / 2) {
            const std::string ev = "data: {\"error\": {\"message\": \"scripted error event\"}}\n\n";
            sink.write(ev.data(), ev.size());
            sink.done();
            return true;
          }
          std::string ev;
          if (api == 2) ev = "data: {\"token\": {\"id\": 5, \"text\": \"x\", \"special\": false}" +
                             std::string(i == n - 1 ? ", \"details\": {\"generated_tokens\": " + std::to_string(n) + "}}" : "}") + "\n\n";
          else if (api == 1) ev = "data: {\"choices\": [{\"index\": 0, \"delta\": {\"content\": \"x\"}}]}\n\n";
          else ev = "data: {\"choices\": [{\"index\": 0, \"text\": \"x\"}]}\n\n";
          const auto now = Clock::now();
          sink.write(ev.data(), ev.size());
          if (i == 0) sent.first = now;
          else sent.gaps_ms.push_back(Ms(now - last));
          last = now;
        }
        if (api != 2) {
          const std::string usage = "data: {\"choices\": [], \"usage\": {\"prompt_tokens\": 11, \"completion_tokens\": " +
                                    std::to_string(n) + "}}\n\ndata: [DONE]\n\n";
          sink.write(usage.data(), usage.size());
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          sent_[key] = sent;
        }
        sink.done();
        return true;
      });
    };
    server_.Post("/v1/completions", [=](const httplib::Request& q, httplib::Response& r) { handler(q, r, 0); });
    server_.Post("/v1/chat/completions", [=](const httplib::Request& q, httplib::Response& r) { handler(q, r, 1); });
    server_.Post("/generate_stream", [=](const httplib::Request& q, httplib::Response& r) { handler(q, r, 2); });
    // cpp-httplib's listen backlog is 5: a burst of connections would wait for SYN retries.
    server_.set_socket_options([this](socket_t sock) {
      httplib::default_socket_options(sock);
      listen_fd_ = sock;
    });
    server_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        res.status = 500;
        res.set_content(e.what(), "text/plain");
      }
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (listen_fd_ >= 0) ::listen(listen_fd_, 1024);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeServer() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  Sent sent(const std::string& script) {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_[script];
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  socket_t listen_fd_ = -1;
  std::thread thread_;
  std::mutex mu_;
  std::map<std::string, Sent> sent_;
};

LoadOptions Options(const FakeServer& s, Api api, const std::vector<std::string>& scripts, int concurrency) {
  LoadOptions o;
  o.endpoint.port = s.port();
  o.endpoint.api = api;
  for (const std::string& sc : scripts) {
    LoadRequest r;
    r.prompt = sc;
    r.prompt_tokens = 10;
    r.max_tokens = 100;
    o.requests.push_back(r);
  }
  o.concurrency = concurrency;
  return o;
}

// The client's clock against the moment the server wrote each chunk (same process, same clock):
// TTFT, every inter-token gap and TPOT within 2 ms. A shared machine can hold the client's thread
// off the CPU for a few milliseconds at any moment (seen under AddressSanitizer on a busy 2-core
// VM: one run of many 2.7 ms late), so each API gets up to three runs and its best run must meet
// 2 ms everywhere; a loadtest that measured from the wrong moment would miss it in every run.
TEST(LoadTest, TimingsMatchWhatTheServerDid) {
  FakeServer server;
  for (Api api : {Api::kOpenAiCompletions, Api::kOpenAiChat, Api::kTgi}) {
    double best = 1e9;  // the largest deviation of the best run, ms
    std::string worst_of_best;
    for (int attempt = 0; attempt < 3 && best > 2.0; ++attempt) {
      const std::string tag = " run " + std::to_string(attempt);
      const std::vector<std::string> scripts = {"ttft=40 itl=15 n=6 id=1" + tag, "ttft=80 itl=5 n=4 id=2" + tag,
                                                "ttft=20 itl=25 n=3 id=3" + tag};
      const LoadRun run = RunLoad(Options(server, api, scripts, 3));
      ASSERT_EQ(run.results.size(), 3u);
      double run_worst = 0;
      std::string where;
      auto deviation = [&](double got, double want, const std::string& what) {
        if (std::fabs(got - want) > run_worst) {
          run_worst = std::fabs(got - want);
          where = what + ": measured " + std::to_string(got) + " ms, server " + std::to_string(want) + " ms";
        }
      };
      for (size_t i = 0; i < scripts.size(); ++i) {
        const RequestResult& r = run.results[i];
        ASSERT_TRUE(r.success) << r.error;
        const FakeServer::Sent sent = server.sent(scripts[i]);
        deviation(r.ttft_s * 1e3, Ms(sent.first - (run.start + Seconds(r.start_s))), scripts[i] + " TTFT");
        ASSERT_EQ(r.itl_s.size(), sent.gaps_ms.size()) << scripts[i];
        for (size_t k = 0; k < r.itl_s.size(); ++k)
          deviation(r.itl_s[k] * 1e3, sent.gaps_ms[k], scripts[i] + " gap " + std::to_string(k));
        EXPECT_EQ(r.output_tokens, static_cast<int64_t>(sent.gaps_ms.size() + 1));
        EXPECT_TRUE(r.usage_reported);
        // TPOT: (E2E - TTFT) / (n - 1) is the mean gap the server really left (plus the usage chunk).
        double gaps = 0;
        for (double g : sent.gaps_ms) gaps += g;
        const double tpot = ((r.end_s - r.start_s) - r.ttft_s) * 1e3 / static_cast<double>(r.output_tokens - 1);
        deviation(tpot, gaps / static_cast<double>(sent.gaps_ms.size()), scripts[i] + " TPOT");
      }
      const LoadReport rep = MakeReport(run, {});
      EXPECT_EQ(rep.completed, 3);
      EXPECT_EQ(rep.failed, 0);
      EXPECT_EQ(rep.output_tokens, 13);
      // The report's TPOT range: the scripted gaps are 5 to 25 ms. (Not a bound that holds in
      // every run: a client thread held off the CPU when the first token came measures a late
      // TTFT, and so a shorter TPOT; it counts toward the run's deviation like the rest.)
      deviation(rep.tpot_ms.min, 5, "report's smallest TPOT");
      deviation(rep.tpot_ms.max, 25, "report's largest TPOT");
      EXPECT_EQ(rep.itl_ms.count, 5u + 3u + 2u);
      EXPECT_LE(rep.max_in_flight, 3);
      if (run_worst < best) {
        best = run_worst;
        worst_of_best = where;
      }
    }
    EXPECT_LE(best, 2.0) << "best of 3 runs; its largest deviation: " << worst_of_best;
  }
}

TEST(LoadTest, PercentilesOfAKnownDistribution) {
  FakeServer server;
  // TTFTs of 10, 20, ..., 100 ms, all at once: p50 = 55, p90 = 91, p99 = 99.1, plus what the
  // connections and the server's threads add, measured on the server's side. The client's
  // percentiles must match the server's within 2 ms in the best of up to three runs (a busy
  // machine can hold the client's thread off the CPU for a few ms at any moment; see above).
  double best = 1e9;
  for (int attempt = 0; attempt < 3 && best > 2.0; ++attempt) {
    std::vector<std::string> scripts;
    for (int i = 1; i <= 10; ++i)
      scripts.push_back("ttft=" + std::to_string(10 * i) + " itl=1 n=2 run " + std::to_string(attempt));
    const LoadRun run = RunLoad(Options(server, Api::kOpenAiCompletions, scripts, 10));
    std::vector<double> sent;
    for (size_t i = 0; i < scripts.size(); ++i)
      sent.push_back(Ms(server.sent(scripts[i]).first - (run.start + Seconds(run.results[i].start_s))));
    const Summary expect = Summarize(sent);
    const LoadReport rep = MakeReport(run, ParseSlo("ttft=52").value());
    ASSERT_EQ(rep.completed, 10);
    // The scripted delays are a floor; connection set-up adds to them (15-25 ms for 10 connections
    // at once under AddressSanitizer on two busy cores). Requests served one after another
    // instead of at once would put the median near 150 ms.
    EXPECT_GE(expect.p50, 55 - 0.5);
    EXPECT_LT(expect.p50, 55 + 45.0);
    best = std::min(best, std::max({std::fabs(rep.ttft_ms.p50 - expect.p50), std::fabs(rep.ttft_ms.p90 - expect.p90),
                                    std::fabs(rep.ttft_ms.p99 - expect.p99), std::fabs(rep.ttft_ms.mean - expect.mean)}));
    int within = 0;
    for (double t : sent) within += t <= 52 + 2 ? 1 : 0;
    EXPECT_NEAR(rep.good, within, 1);  // about 10..50 ms meet ttft <= 52 ms
    EXPECT_NEAR(rep.goodput_req_s, rep.good / rep.duration_s, 1e-9);
  }
  EXPECT_LE(best, 2.0) << "largest |client - server| of p50, p90, p99 and mean TTFT, best of 3 runs";
}

TEST(LoadTest, FailuresAreCountedAndListed) {
  FakeServer server;
  const std::vector<std::string> scripts = {"ttft=5 itl=1 n=3 fail",  "ttft=5 itl=1 n=4", "ttft=5 itl=1 n=6 error",
                                            "ttft=5 itl=2 n=8 break", "ttft=5 itl=1 n=2", "ttft=5 itl=1 n=3 fail x"};
  const LoadRun run = RunLoad(Options(server, Api::kOpenAiCompletions, scripts, 2));
  const LoadReport rep = MakeReport(run, {});
  EXPECT_EQ(rep.completed, 2);
  EXPECT_EQ(rep.failed, 4);
  EXPECT_EQ(rep.output_tokens, 6);  // only the completed requests count
  int http = 0, event = 0, broken = 0;
  for (const auto& [msg, n] : rep.errors) {
    if (msg.find("HTTP 503: scripted failure") != std::string::npos) http += n;
    if (msg.find("scripted error event") != std::string::npos) event += n;
    if (msg.find("broke off") != std::string::npos || msg.find("without") != std::string::npos) broken += n;
  }
  EXPECT_EQ(http, 2);
  EXPECT_EQ(event, 1);
  EXPECT_EQ(broken, 1);
  const Json j = ReportJson(rep);
  EXPECT_EQ(j["failed"], 4);
  EXPECT_EQ(j["errors"].size(), rep.errors.size());
}

TEST(LoadTest, RateModeCapsConcurrency) {
  FakeServer server;
  std::vector<std::string> scripts(12, "ttft=30 itl=5 n=3");
  LoadOptions o = Options(server, Api::kOpenAiCompletions, scripts, 2);
  o.rate = 200;  // far faster than two slots can serve
  const LoadRun run = RunLoad(o);
  const LoadReport rep = MakeReport(run, {});
  EXPECT_EQ(rep.completed, 12);
  EXPECT_EQ(rep.max_in_flight, 2);
  // 6 rounds of ~40 ms each.
  EXPECT_GT(rep.duration_s, 0.2);
  const std::string svg = ReportSvg(rep, "rate <test>");
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("rate &lt;test&gt;"), std::string::npos);
}

TEST(Endpoint, ParsesUrls) {
  auto e = ParseUrl("http://10.0.0.5:8000/prefix/");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "10.0.0.5");
  EXPECT_EQ(e->port, 8000);
  EXPECT_EQ(e->base_path, "/prefix");
  EXPECT_EQ(ParseUrl("localhost").value().port, 80);
  EXPECT_FALSE(ParseUrl("https://x:1").ok());
  EXPECT_FALSE(ParseUrl("http://:80").ok());
  EXPECT_FALSE(ParseUrl("http://x:99999").ok());
  EXPECT_FALSE(ParseApi("grpc").ok());
}

}  // namespace
}  // namespace qb::loadtest
