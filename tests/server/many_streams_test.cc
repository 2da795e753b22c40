// 512 clients hold streaming requests open at once: /health and /metrics still answer, and when
// the clients hang up every request is cancelled and the KV cache is empty again. (Label
// "slow": 512 connections and threads.)
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "assets/assets.h"
#include "model/presets.h"
#include "model/random_checkpoint.h"
#include "server/http_server.h"
#include "util/thread_pool.h"

namespace qb {
namespace {

TEST(ManyStreamsTest, ProbesAnswerWith512StreamsOpen) {
  auto preset = FindPreset("tiny");
  ASSERT_TRUE(preset.ok());
  auto model = std::make_shared<const Qwen2Model>(preset->config, RandomWeightsInMemory(*preset, DType::kBF16, 0));
  auto tok = LoadTokenizerFromText(assets::Qwen25TokenizerJson(), assets::Qwen25TokenizerConfigJson(), "built-in");
  ASSERT_TRUE(tok.ok());
  ThreadPool pool(2);
  EngineConfig ec;
  ec.kv_blocks = 2048;
  ec.max_total_tokens = 4096;
  ec.scheduler.max_num_seqs = 64;
  Engine engine(model, *tok, ec, kernels::ExecContext{&pool, kernels::DetectIsa()});
  ServerConfig sc;
  sc.port = 0;
  HttpServer server(sc);
  ASSERT_TRUE(server.Start().ok());
  ServedModel m;
  m.engine = &engine;
  m.tokenizer = *tok;
  m.defaults.max_total_tokens = 4096;
  server.SetModel(m);

  constexpr int kClients = 512;
  const std::string body = R"({"prompt": "x", "max_tokens": 3000, "stream": true, "ignore_eos": true})";
  const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body;
  std::vector<int> fds;
  for (int i = 0; i < kClients; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server.port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << i;
    ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
    fds.push_back(fd);
  }
  // Every request is in the engine (running or waiting).
  for (int i = 0; i < 500 && engine.Stats().running + engine.Stats().waiting < kClients; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(engine.Stats().running + engine.Stats().waiting, kClients);
  httplib::Client probe("127.0.0.1", server.port());
  probe.set_read_timeout(5);
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto h = probe.Get("/health");
    ASSERT_TRUE(h);
    EXPECT_EQ(h->status, 200);
    auto mt = probe.Get("/metrics");
    ASSERT_TRUE(mt);
    EXPECT_EQ(mt->status, 200);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  }
  for (int fd : fds) ::close(fd);
  for (int i = 0; i < 1000 && (engine.Stats().kv_blocks_used > 0 || server.in_flight() > 0); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(engine.Stats().kv_blocks_used, 0);
  EXPECT_EQ(engine.Stats().running + engine.Stats().waiting, 0);
  server.Stop();
}

}  // namespace
}  // namespace qb
