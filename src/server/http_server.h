// The HTTP front end: OpenAI (/v1/chat/completions, /v1/completions, /v1/models), TGI
// (/generate, /generate_stream, /info), /tokenize, /detokenize, /health, /ready, /metrics.
// Handlers only parse, submit to the engine and relay its streams; they never touch engine
// state. Bad input gets a 4xx with the reason; a full queue 429; draining or loading 503.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "engine/engine.h"
#include "resources/memory_guard.h"
#include "server/api_types.h"
#include "server/server_metrics.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/status.h"

namespace httplib {
class Server;
class Request;
class Response;
}  // namespace httplib

namespace qb {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see HttpServer::port())
  std::string api_key;  // empty: no authentication
  std::string served_model_name = "qwenbox";
  size_t max_body_bytes = 8 << 20;
  int http_threads = 1024;  // connections served at once (streams hold one each)
  double heartbeat_s = 1.0;  // a space is sent this often while a non-streamed answer is computed
  int probe_port = -1;  // >= 0: /health, /ready and /metrics also here, on threads of their own (0: any)
  // CORS: origins whose browser pages may call the API ("*": any); empty: no CORS headers.
  std::vector<std::string> allowed_origins;
};

// What the generation endpoints need; set once the model is loaded.
struct ServedModel {
  Engine* engine = nullptr;
  std::shared_ptr<const Tokenizer> tokenizer;
  std::optional<ChatTemplateKind> chat_template;  // none: /v1/chat/completions answers 400
  api::Defaults defaults;
  std::string dtype;           // for /info
  std::shared_ptr<MemoryGuard> memory_guard;  // null: no memory admission check
  int compute_threads = 1;
};

class HttpServer {
 public:
  explicit HttpServer(ServerConfig config);
  ~HttpServer();

  // Binds and starts serving in the background; an error if the address cannot be bound.
  Status Start();
  int port() const { return port_; }
  int probe_port() const { return probe_port_; }  // -1 without a probe listener
  // Loading progress shown by /ready until SetModel.
  void SetLoading(const std::string& what, double fraction);
  void SetModel(ServedModel model);
  // Stop accepting generation requests (503); /health and /metrics keep answering.
  void BeginDrain() { draining_.store(true); }
  bool draining() const { return draining_.load(); }
  int64_t in_flight() const { return in_flight_.load(); }
  void Stop();

 private:
  void Routes();
  void ProbeRoutes(httplib::Server& s);  // /health, /ready, /metrics
  void HandleGeneration(const httplib::Request& req, httplib::Response& res, api::Endpoint endpoint);
  bool Authorized(const httplib::Request& req) const;
  // /v1/models' entries: the served model, then its LoRA adapters.
  OrderedJson ModelList() const;
  // Sets the CORS headers for a request from an allowed origin; false when it is not one.
  bool AllowOrigin(const httplib::Request& req, httplib::Response& res) const;

  ServerConfig config_;
  std::unique_ptr<httplib::Server> http_, probe_;
  std::thread thread_, probe_thread_;
  std::atomic<bool> listen_returned_{false}, probe_returned_{false};
  int port_ = 0, probe_port_ = -1;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> in_flight_{0};
  std::atomic<uint64_t> next_request_{1};
  mutable std::mutex model_mu_;
  ServedModel model_;
  bool loaded_ = false;
  std::string loading_what_ = "starting";
  double loading_fraction_ = 0;
  ServerMetrics metrics_;
};

}  // namespace qb
