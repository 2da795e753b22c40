#include "server/http_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <strings.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cstring>
#include <ctime>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "server/openai_api.h"
#include "server/responses_api.h"
#include "server/tgi_api.h"

namespace qb {

namespace {

using Clock = std::chrono::steady_clock;
using api::Choice;
using api::HttpError;
using api::ParsedRequest;

void SendJson(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

void SendError(httplib::Response& res, const HttpError& e) {
  if (e.status == 429 || e.status == 503) res.set_header("Retry-After", "1");
  SendJson(res, e.status, api::ErrorJson(e));
}

HttpError FromStatus(const Status& s) {
  if (s.code() == StatusCode::kResourceExhausted && s.message().find("queue") != std::string::npos)
    return HttpError{429, "rate_limit_error", s.message(), ""};
  if (s.code() == StatusCode::kUnimplemented) return HttpError{503, "server_error", s.message(), ""};
  return HttpError{400, "invalid_request_error", s.message(), ""};
}

// What requests may name: the served model and the engine's LoRA adapters.
api::ServedNames Names(const std::string& served, const ServedModel& m) {
  api::ServedNames n;
  n.model = served;
  if (m.engine && m.engine->config().lora)
    for (const auto& a : *m.engine->config().lora) n.adapters.push_back(a->name);
  return n;
}

std::string Dump(const OrderedJson& j) { return j.dump(-1, ' ', false, OrderedJson::error_handler_t::replace); }

// One request's state while its answer is produced (shared with the content provider).
struct Exchange {
  std::string id;
  ParsedRequest parsed;
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<Choice> choices;
  std::vector<StreamEvent> finish;
  std::vector<Clock::time_point> last_token;
  std::shared_ptr<const Tokenizer> tok;
  std::string model_name;
  int64_t created = 0;
  Clock::time_point start;
  size_t finished = 0;
  bool role_sent = false;  // (streamed /v1/responses: the opening events went out)
  std::unique_ptr<api::ResponseEvents> response_events;  // streamed /v1/responses
  std::vector<bool> in_tool_call;  // streaming with tools: a <tool_call> began, hold the text
  std::vector<size_t> streamed;    // bytes of each choice's text already streamed
  std::vector<bool> echoed;        // streaming completions with echo: the prompt went out
  std::vector<api::PromptPart> prompts;  // the request's prompts (completions may send several)
  std::vector<size_t> prompt_of;         // each choice's prompt
  // Choice i's prompt scores: its own, or those of its prompt's first choice.
  const std::vector<TokenLogprobs>& PromptScores(size_t i) const {
    return choices[i].prompt.empty() ? choices[prompt_of[i] * static_cast<size_t>(parsed.n)].prompt : choices[i].prompt;
  }
  uint64_t call_salt = 0;          // random: makes tool call ids unique across requests and restarts
};

// Pulls the events that are ready from every stream, waiting up to `wait` for one when there is
// a single stream; `on_event` sees each. Returns within about `wait` even while tokens keep
// coming, so that the caller's heartbeat (which finds a client that went away) still runs.
template <typename F>
bool Pump(Exchange& x, std::chrono::milliseconds wait, F on_event) {
  bool any = false;
  const auto deadline = Clock::now() + wait;
  for (size_t i = 0; i < x.streams.size(); ++i) {
    StreamEvent ev;
    while (x.streams[i]->Next(&ev, x.streams.size() == 1 && !any ? wait : std::chrono::milliseconds(1))) {
      any = true;
      Choice& c = x.choices[i];
      if (ev.kind == StreamEvent::Kind::kToken) {
        if (!ev.prompt_logprobs.empty()) c.prompt = std::move(ev.prompt_logprobs);
        c.ids.push_back(ev.token);
        c.logprobs.push_back(ev.logprob);
        c.top.push_back(ev.top_logprobs);
        c.text += ev.text;
      } else {
        c.text += ev.text;
        c.reason = ev.reason;
        x.finish[i] = ev;
        ++x.finished;
      }
      if (!on_event(i, ev)) return false;
      if (ev.kind == StreamEvent::Kind::kFinished || Clock::now() >= deadline) break;
    }
  }
  if (!any && x.streams.size() > 1) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return true;
}

api::ResponseHeader ResponseHeaderOf(const Exchange& x) {
  return {"resp_" + x.id, x.created, x.model_name, x.parsed.responses_request};
}

OrderedJson Usage(const Exchange& x) {
  // Each prompt counts once however many choices it has (n), its cached tokens as its best choice's.
  int64_t prompt = 0, completion = 0, cached = 0;
  for (const auto& part : x.prompts) prompt += static_cast<int64_t>(part.ids.size());
  std::vector<int64_t> cached_of(x.prompts.size(), 0);
  for (size_t i = 0; i < x.finish.size(); ++i) {
    completion += x.finish[i].generated_tokens;
    int64_t& c = cached_of[x.prompt_of[i]];
    c = std::max(c, x.finish[i].cached_tokens);
  }
  for (int64_t c : cached_of) cached += c;
  if (x.parsed.echo_only) completion = 0;  // (its one token is not shown)
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

std::string Sse(const OrderedJson& j) { return "data: " + Dump(j) + "\n\n"; }

// Binds `server` to host:port (port 0: any free one); the port bound.
Result<int> Bind(httplib::Server& server, const std::string& host, int port, std::string_view what) {
  if (port == 0) {
    const int bound = server.bind_to_any_port(host);
    if (bound <= 0) return IoError(fmt::format("cannot bind {} for {}: no free port", host, what));
    return bound;
  }
  if (!server.bind_to_port(host, port))
    return IoError(fmt::format("cannot listen on {}:{} for {} (in use, or not an address of this host)", host, port, what));
  return port;
}

}  // namespace

HttpServer::HttpServer(ServerConfig config)
    : config_(std::move(config)), http_(std::make_unique<httplib::Server>()), probe_(std::make_unique<httplib::Server>()) {
  Routes();
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::SetLoading(const std::string& what, double fraction) {
  std::lock_guard<std::mutex> lock(model_mu_);
  loading_what_ = what;
  loading_fraction_ = fraction;
}

void HttpServer::SetModel(ServedModel model) {
  std::lock_guard<std::mutex> lock(model_mu_);
  model_ = std::move(model);
  loaded_ = true;
}

Status HttpServer::Start() {
  const int threads = config_.http_threads;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http_->set_payload_max_length(config_.max_body_bytes);
  http_->set_read_timeout(30);
  http_->set_write_timeout(30);
  // cpp-httplib listens with a backlog of 5 (fixed when Debian built it): under a burst of
  // connections the kernel would drop handshakes. Note the socket and listen again, longer.
  auto listen_fd = std::make_shared<int>(-1);
  http_->set_socket_options([listen_fd](socket_t sock) {
    httplib::default_socket_options(sock);
    *listen_fd = sock;
  });
  QB_ASSIGN_OR_RETURN(port_, Bind(*http_, config_.host, config_.port, "the API"));
  if (*listen_fd >= 0) ::listen(*listen_fd, 4096);
  if (config_.probe_port >= 0) {
    // The probes' own listener and threads: they answer while every connection of the API
    // port is taken (long streams, a flood of slow clients), so an orchestrator does not
    // restart a server that is only busy.
    probe_->new_task_queue = [] { return new httplib::ThreadPool(4); };
    probe_->set_read_timeout(5);
    probe_->set_write_timeout(5);
    ProbeRoutes(*probe_);
    QB_ASSIGN_OR_RETURN(probe_port_, Bind(*probe_, config_.host, config_.probe_port, "the probes (--probe-port)"));
    probe_returned_ = false;
    probe_thread_ = std::thread([this] {
      probe_->listen_after_bind();
      probe_returned_ = true;
    });
  }
  listen_returned_ = false;
  thread_ = std::thread([this] {
    http_->listen_after_bind();
    listen_returned_ = true;
  });
  return Status::Ok();
}

void HttpServer::Stop() {
  // cpp-httplib's stop() does nothing until the listen loop has begun (it checks is_running()):
  // a Stop() right after Start() would leave the loop running and the join waiting forever.
  // Only stop() ends the loop once it runs, so it cannot end between the check and the call.
  auto stop = [](httplib::Server& server, std::thread& thread, const std::atomic<bool>& returned) {
    if (!thread.joinable()) return;
    while (!server.is_running() && !returned) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    server.stop();
    thread.join();
  };
  stop(*http_, thread_, listen_returned_);
  stop(*probe_, probe_thread_, probe_returned_);
}

bool HttpServer::Authorized(const httplib::Request& req) const {
  if (config_.api_key.empty()) return true;
  // The scheme is case-insensitive (RFC 9110 11.1), the key is not.
  const std::string auth = req.get_header_value("Authorization");
  const bool bearer = auth.size() == 7 + config_.api_key.size() && strncasecmp(auth.c_str(), "bearer ", 7) == 0 &&
                      auth.compare(7, std::string::npos, config_.api_key) == 0;
  return bearer || req.get_header_value("x-api-key") == config_.api_key;
}

bool HttpServer::AllowOrigin(const httplib::Request& req, httplib::Response& res) const {
  const std::string origin = req.get_header_value("Origin");
  if (origin.empty() || config_.allowed_origins.empty()) return false;
  const auto& allowed = config_.allowed_origins;
  const bool any = std::find(allowed.begin(), allowed.end(), "*") != allowed.end();
  if (!any && std::find(allowed.begin(), allowed.end(), origin) == allowed.end()) return false;
  res.set_header("Access-Control-Allow-Origin", any ? "*" : origin);
  if (!any) res.set_header("Vary", "Origin");
  res.set_header("Access-Control-Expose-Headers", "X-Request-Id");
  return true;
}

void HttpServer::ProbeRoutes(httplib::Server& s) {
  s.Get("/health", [](const httplib::Request&, httplib::Response& res) { SendJson(res, 200, R"({"status":"ok"})"); });
  s.Get("/ready", [this](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(model_mu_);
    if (draining()) return SendJson(res, 503, R"({"status":"draining"})");
    if (!loaded_)
      return SendJson(res, 503, Dump({{"status", "loading"}, {"stage", loading_what_}, {"progress", loading_fraction_}}));
    SendJson(res, 200, R"({"status":"ready"})");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    ServedModel m;
    {
      std::lock_guard<std::mutex> lock(model_mu_);
      m = model_;
    }
    res.set_content(metrics_.Render(m.engine, m.memory_guard.get(), m.compute_threads),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
}

OrderedJson HttpServer::ModelList() const {
  std::lock_guard<std::mutex> lock(model_mu_);
  OrderedJson data = OrderedJson::array();
  const auto created = static_cast<int64_t>(std::time(nullptr));
  data.push_back({{"id", config_.served_model_name},
                  {"object", "model"},
                  {"created", created},
                  {"owned_by", "qwenbox"},
                  {"max_model_len", model_.defaults.max_total_tokens}});
  // LoRA adapters as vLLM lists them: their own ids, with the model as parent.
  if (model_.engine && model_.engine->config().lora)
    for (const auto& a : *model_.engine->config().lora)
      data.push_back({{"id", a->name},
                      {"object", "model"},
                      {"created", created},
                      {"owned_by", "qwenbox"},
                      {"root", a->path},
                      {"parent", config_.served_model_name},
                      {"max_model_len", model_.defaults.max_total_tokens}});
  return data;
}

void HttpServer::Routes() {
  httplib::Server& s = *http_;
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    std::string id = req.get_header_value("X-Request-Id");
    if (id.empty() || id.size() > 128) id = fmt::format("qb-{:012x}", next_request_.fetch_add(1));
    res.set_header("X-Request-Id", id);
    // CORS: a browser's preflight (never with credentials) is answered here, before the API key.
    const bool cors = AllowOrigin(req, res);
    if (req.method == "OPTIONS" && cors) {
      res.status = 204;
      res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
      const std::string asked = req.get_header_value("Access-Control-Request-Headers");
      res.set_header("Access-Control-Allow-Headers", asked.empty() ? "Authorization, Content-Type, X-Api-Key, X-Request-Id" : asked);
      res.set_header("Access-Control-Max-Age", "600");
      res.set_header("Vary", "Origin, Access-Control-Request-Headers");
      return httplib::Server::HandlerResponse::Handled;
    }
    // A POST that says neither how long its body is nor that it is chunked: cpp-httplib 0.11
    // would read until the client closes (the read timeout, 30 s, holding a thread) before
    // answering 400. Say at once what is missing.
    if ((req.method == "POST" || req.method == "PUT" || req.method == "PATCH") && !req.has_header("Content-Length") &&
        strcasestr(req.get_header_value("Transfer-Encoding").c_str(), "chunked") == nullptr) {
      SendError(res, HttpError{411, "invalid_request_error",
                               "the request has no Content-Length (nor Transfer-Encoding: chunked)", ""});
      res.set_header("Connection", "close");
      return httplib::Server::HandlerResponse::Handled;
    }
    const bool open = req.path == "/health" || req.path == "/ready" || req.path == "/metrics";
    if (!open && !Authorized(req)) {
      SendError(res, HttpError{401, "authentication_error", "missing or wrong API key (Authorization: Bearer ...)", ""});
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    // A route that exists with another method: 405 and the Allow header.
    static const std::map<std::string, std::string, std::less<>> kAllowed = {
        {"/health", "GET"}, {"/ready", "GET"}, {"/metrics", "GET"}, {"/v1/models", "GET"}, {"/info", "GET"},
        {"/tokenize", "POST"}, {"/detokenize", "POST"}, {"/v1/chat/completions", "POST"}, {"/v1/completions", "POST"}, {"/v1/responses", "POST"},
        {"/generate", "POST"}, {"/generate_stream", "POST"}};
    const auto route = kAllowed.find(req.path);
    if (res.status == 404 && route != kAllowed.end() && req.method != route->second) {
      res.set_header("Allow", route->second);
      SendError(res, HttpError{405, "invalid_request_error",
                               fmt::format("{} {}: this route takes {}", req.method, req.path, route->second), ""});
    } else if (res.status == 404) {
      SendError(res, HttpError{404, "not_found_error", fmt::format("no route {} {}", req.method, req.path), ""});
    } else if (res.status == 413) {
      SendError(res, HttpError{413, "invalid_request_error", "the request body is too large", ""});
    } else if (res.status >= 400) {
      SendError(res, HttpError{res.status, "invalid_request_error", fmt::format("HTTP {}", res.status), ""});
    }
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("handler exception: {}", what);
    SendError(res, HttpError{500, "server_error", what, ""});
  });
  s.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    if (req.path == "/health" || req.path == "/metrics" || req.path == "/ready") return;
    spdlog::info("{}", Dump({{"request_id", res.get_header_value("X-Request-Id")},
                             {"method", req.method},
                             {"path", req.path},
                             {"status", res.status},
                             {"remote", req.remote_addr}}));
  });

  ProbeRoutes(s);
  s.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, Dump({{"object", "list"}, {"data", ModelList()}}));
  });
  // OpenAI's "retrieve model": one entry of the list, or 404.
  s.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    for (const auto& m : ModelList())
      if (m["id"] == id) return SendJson(res, 200, Dump(m));
    SendError(res, HttpError{404, "not_found_error", fmt::format("The model '{}' does not exist", id), "model"});
  });
  s.Get("/info", [this](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(model_mu_);
    const int64_t total = model_.defaults.max_total_tokens;
    SendJson(res, 200,
             Dump({{"model_id", config_.served_model_name},
                   {"model_sha", nullptr},
                   {"model_dtype", model_.dtype},
                   {"model_device_type", "cpu"},
                   {"model_pipeline_tag", "text-generation"},
                   {"max_concurrent_requests", model_.engine ? model_.engine->config().scheduler.max_num_seqs : 0},
                   {"max_best_of", 1},
                   {"max_stop_sequences", api::kMaxStopSequences},
                   {"max_input_tokens", model_.engine ? model_.engine->config().max_input_tokens : total - 1},
                   {"max_total_tokens", total},
                   {"max_batch_total_tokens", model_.engine ? model_.engine->config().scheduler.max_batch_tokens : 0},
                   {"router", "qwenbox"},
                   {"version", "0.1.0"}}));
  });
  auto tokenizer = [this]() {
    std::lock_guard<std::mutex> lock(model_mu_);
    return model_.tokenizer;
  };
  s.Post("/tokenize", [tokenizer](const httplib::Request& req, httplib::Response& res) {
    auto tok = tokenizer();
    if (!tok) return SendError(res, HttpError{503, "server_error", "the model is loading", ""});
    const OrderedJson body = OrderedJson::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) return SendError(res, HttpError{400, "invalid_request_error", "invalid JSON", ""});
    if (body.contains("inputs") && body["inputs"].is_string()) {  // TGI: tokens with character offsets
      const std::string text = body["inputs"].get<std::string>();
      OrderedJson out = OrderedJson::array();
      size_t pos = 0;
      for (int32_t id : tok->Encode(text)) {
        const std::string piece = api::TokenText(*tok, id);
        const size_t len = tok->TokenBytes(id) ? tok->TokenBytes(id)->size() : 0;
        out.push_back({{"id", id}, {"text", piece}, {"start", pos}, {"stop", pos + len}});
        pos += len;
      }
      return SendJson(res, 200, Dump(out));
    }
    if (body.contains("prompt") && body["prompt"].is_string()) {  // vLLM
      const auto ids = tok->Encode(body["prompt"].get<std::string>());
      return SendJson(res, 200, Dump({{"tokens", ids}, {"count", ids.size()}}));
    }
    SendError(res, HttpError{400, "invalid_request_error", "expected {\"inputs\": text} or {\"prompt\": text}", ""});
  });
  s.Post("/detokenize", [tokenizer](const httplib::Request& req, httplib::Response& res) {
    auto tok = tokenizer();
    if (!tok) return SendError(res, HttpError{503, "server_error", "the model is loading", ""});
    const OrderedJson body = OrderedJson::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("tokens") || !body["tokens"].is_array())
      return SendError(res, HttpError{400, "invalid_request_error", "expected {\"tokens\": [ids]}", ""});
    std::vector<int32_t> ids;
    for (const auto& t : body["tokens"]) {
      if (!api::IsTokenIdValue(t))
        return SendError(res, HttpError{400, "invalid_request_error", "token ids must be non-negative integers", ""});
      ids.push_back(static_cast<int32_t>(t.get<uint64_t>()));
    }
    auto text = tok->Decode(ids);
    if (!text.ok()) return SendError(res, HttpError{400, "invalid_request_error", text.status().message(), ""});
    SendJson(res, 200, Dump({{"prompt", *text}}));
  });
  s.Post("/v1/chat/completions", [this](const httplib::Request& q, httplib::Response& r) { HandleGeneration(q, r, api::Endpoint::kChat); });
  s.Post("/v1/completions", [this](const httplib::Request& q, httplib::Response& r) { HandleGeneration(q, r, api::Endpoint::kCompletion); });
  s.Post("/v1/responses", [this](const httplib::Request& q, httplib::Response& r) { HandleGeneration(q, r, api::Endpoint::kResponses); });
  s.Post("/generate", [this](const httplib::Request& q, httplib::Response& r) { HandleGeneration(q, r, api::Endpoint::kTgi); });
  s.Post("/generate_stream", [this](const httplib::Request& q, httplib::Response& r) {
    HandleGeneration(q, r, api::Endpoint::kTgi);
  });
}

void HttpServer::HandleGeneration(const httplib::Request& req, httplib::Response& res, api::Endpoint endpoint) {
  const std::string id = res.get_header_value("X-Request-Id");
  auto fail = [&](const HttpError& e) {
    SendError(res, e);
    metrics_.RequestDone(e.status, "", nullptr);
  };
  if (draining()) return fail(HttpError{503, "server_error", "the server is shutting down", ""});
  ServedModel m;
  {
    std::lock_guard<std::mutex> lock(model_mu_);
    if (!loaded_) return fail(HttpError{503, "server_error", fmt::format("the model is loading ({})", loading_what_), ""});
    m = model_;
  }
  if (m.memory_guard && m.memory_guard->ShouldShed()) {
    const MemorySample s = m.memory_guard->Sample();
    return fail(HttpError{429, "rate_limit_error",
                          fmt::format("memory is near the limit ({} of {} bytes in use): try again shortly", s.used_bytes,
                                      s.limit_bytes.value_or(0)),
                          ""});
  }
  const OrderedJson body = OrderedJson::parse(req.body, nullptr, false);
  if (body.is_discarded()) return fail(HttpError{400, "invalid_request_error", "the body is not valid JSON (or not UTF-8)", ""});
  std::variant<ParsedRequest, HttpError> parsed;
  const api::ServedNames names = Names(config_.served_model_name, m);
  if (endpoint == api::Endpoint::kChat || endpoint == api::Endpoint::kResponses) {
    if (!m.chat_template)
      return fail(HttpError{400, "invalid_request_error", "this model has no chat template qwenbox can render; use /v1/completions", ""});
    parsed = endpoint == api::Endpoint::kChat
                 ? api::ParseChatRequest(body, *m.tokenizer, *m.chat_template, m.defaults, names)
                 : api::ParseResponsesRequest(body, *m.tokenizer, *m.chat_template, m.defaults, names);
  } else if (endpoint == api::Endpoint::kCompletion) {
    parsed = api::ParseCompletionRequest(body, *m.tokenizer, m.defaults, names);
  } else {
    parsed = api::ParseTgiRequest(body, *m.tokenizer, m.defaults, names);
    if (auto* p = std::get_if<ParsedRequest>(&parsed); p && req.path == "/generate_stream") p->stream = true;
  }
  if (auto* e = std::get_if<HttpError>(&parsed)) return fail(*e);
  if (auto* p = std::get_if<ParsedRequest>(&parsed); p && p->decoder_input_details) {
    // As TGI: the prompt's logprobs only in a whole answer with details.
    if (p->stream)
      return fail(HttpError{400, "invalid_request_error", "decoder_input_details == true is not supported when streaming tokens", "decoder_input_details"});
    if (p->details) p->gen.prompt_logprobs = std::max(p->gen.prompt_logprobs, 0);
  }
  auto x = std::make_shared<Exchange>();
  x->id = id;
  x->call_salt = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  x->parsed = std::move(std::get<ParsedRequest>(parsed));
  x->tok = m.tokenizer;
  x->model_name = x->parsed.model;
  x->created = static_cast<int64_t>(std::time(nullptr));
  x->start = Clock::now();
  GenerationRequest& g = x->parsed.gen;
  g.id = id;
  const auto prompt = static_cast<int64_t>(g.prompt.size());
  if (!x->parsed.max_tokens_given) g.max_tokens = std::max<int64_t>(1, m.defaults.max_total_tokens - prompt);
  x->prompts = x->parsed.prompts;
  if (x->prompts.empty()) x->prompts.push_back({g.prompt, x->parsed.prompt_text});
  for (size_t k = 0; k < x->prompts.size(); ++k)
    for (int i = 0; i < x->parsed.n; ++i) {
      GenerationRequest gi = g;
      gi.prompt = x->prompts[k].ids;
      // A prompt's scores are the same for each of its choices: computed once (a streamed
      // choice sends them with its first token, so there each computes its own).
      if (i > 0 && !x->parsed.stream) gi.prompt_logprobs = -1;
      gi.sampling.seed = g.sampling.seed + static_cast<uint64_t>(i);
      auto stream = m.engine->Submit(std::move(gi));
      if (!stream.ok()) {
        for (auto& s : x->streams) s->Cancel();
        return fail(FromStatus(stream.status()));
      }
      x->streams.push_back(*stream);
      x->prompt_of.push_back(k);
    }
  x->choices.resize(x->streams.size());
  for (Choice& c : x->choices) c.text = x->parsed.assistant_prefix;  // a forced tool call's beginning
  x->finish.resize(x->streams.size());
  x->last_token.assign(x->streams.size(), x->start);
  x->in_tool_call.assign(x->streams.size(), false);
  x->streamed.assign(x->streams.size(), 0);
  x->echoed.assign(x->streams.size(), false);
  ++in_flight_;
  const bool stream = x->parsed.stream;
  const double heartbeat = config_.heartbeat_s;
  ServerMetrics* metrics = &metrics_;
  auto* in_flight = &in_flight_;
  auto finish_metrics = [metrics](const Exchange& ex, int status) {
    const std::string adapter = ex.parsed.gen.adapter > 0 ? ex.parsed.model : "";
    for (const auto& f : ex.finish) metrics->RequestDone(status, std::string(FinishReasonName(f.reason)), &f, adapter);
  };
  // A client that went away: its requests are cancelled (status 499, as nginx logs it).
  auto metrics_cancelled = [metrics](const Exchange& ex) {
    const std::string adapter = ex.parsed.gen.adapter > 0 ? ex.parsed.model : "";
    for (size_t i = 0; i < ex.streams.size(); ++i) metrics->RequestDone(499, "cancelled", nullptr, adapter);
  };
  auto on_token_metrics = [metrics](Exchange& ex, size_t i, const StreamEvent& ev) {
    if (ev.kind != StreamEvent::Kind::kToken) return;
    if (!ex.choices[i].ids.empty() && ex.choices[i].ids.size() > 1) metrics->InterTokenLatency(std::chrono::duration<double>(ev.time - ex.last_token[i]).count());
    ex.last_token[i] = ev.time;
  };
  auto released = [in_flight, x](bool success) {
    if (!success)
      for (auto& s : x->streams) s->Cancel();  // the client went away: free its KV blocks
    --*in_flight;
  };

  // HTTP/1.0 clients (ApacheBench, old probes) cannot read chunked bodies. A response is sent
  // whole with a Content-Length when the connection is to stay open (a client asking Keep-Alive
  // could not tell where a body ends) or is not streamed; a stream to a client that does not keep
  // the connection is written as it comes and ends when the connection closes.
  const bool http10 = req.version == "HTTP/1.0";
  std::string connection = req.get_header_value("Connection");
  std::transform(connection.begin(), connection.end(), connection.begin(), [](unsigned char ch) { return std::tolower(ch); });
  const bool whole = http10 && (!stream || connection == "keep-alive");
  auto provide = [&res, http10, whole](const char* type, httplib::ContentProviderWithoutLength writer,
                                       httplib::ContentProviderResourceReleaser done) {
    if (whole) {
      std::string content;
      bool finished = false;
      httplib::DataSink sink;
      sink.write = [&content](const char* d, size_t n) {
        content.append(d, n);
        return true;
      };
      sink.is_writable = [] { return true; };
      sink.done = [&finished] { finished = true; };
      bool ok = true;
      while (ok && !finished) ok = writer(content.size(), sink);
      res.set_content(content, type);
      done(ok);
    } else if (http10) {
      res.set_content_provider(type, std::move(writer), std::move(done));
    } else {
      res.set_chunked_content_provider(type, std::move(writer), std::move(done));
    }
  };
  if (!stream) {
    provide(
        "application/json",
        [x, heartbeat, finish_metrics, on_token_metrics, metrics_cancelled](size_t, httplib::DataSink& sink) {
          auto last_beat = Clock::now();
          while (x->finished < x->streams.size()) {
            Pump(*x, std::chrono::milliseconds(100), [&](size_t i, const StreamEvent& ev) {
              on_token_metrics(*x, i, ev);
              return true;
            });
            if (Clock::now() - last_beat > std::chrono::duration<double>(heartbeat)) {
              // JSON allows leading white space: a space keeps proxies patient and tells us
              // whether the client is still there.
              if (!sink.write(" ", 1)) {
                metrics_cancelled(*x);
                return false;
              }
              last_beat = Clock::now();
            }
          }
          const api::ParsedRequest& p = x->parsed;
          OrderedJson out;
          if (p.endpoint == api::Endpoint::kTgi) {
            const Choice& c = x->choices[0];
            const StreamEvent& f = x->finish[0];
            out["generated_text"] = p.return_full_text ? p.prompt_text + c.text : c.text;
            if (p.details) {
              OrderedJson tokens = OrderedJson::array();
              for (size_t t = 0; t < c.ids.size(); ++t)
                tokens.push_back({{"id", c.ids[t]}, {"text", api::TokenText(*x->tok, c.ids[t])}, {"logprob", c.logprobs[t]},
                                  {"special", x->tok->IsSpecial(c.ids[t])}});
              OrderedJson prefill = OrderedJson::array();
              if (p.decoder_input_details)
                for (size_t t = 0; t < p.gen.prompt.size(); ++t)
                  prefill.push_back({{"id", p.gen.prompt[t]},
                                     {"text", api::TokenText(*x->tok, p.gen.prompt[t])},
                                     {"logprob", t > 0 && t - 1 < c.prompt.size() ? OrderedJson(c.prompt[t - 1].logprob) : OrderedJson()}});
              const bool by_stop = f.reason == FinishReason::kStop && !c.ids.empty() && !x->tok->IsSpecial(c.ids.back());
              out["details"] = {{"finish_reason", api::TgiFinishReason(f.reason, by_stop)},
                                {"generated_tokens", f.generated_tokens},
                                {"seed", p.gen.sampling.temperature > 0 ? OrderedJson(p.gen.sampling.seed) : OrderedJson()},
                                {"prefill", prefill},
                                {"tokens", tokens}};
            }
          } else if (p.endpoint == api::Endpoint::kResponses) {
            out = api::ResponseObject(ResponseHeaderOf(*x), x->choices[0], p.tools, fmt::format("{:016x}0_", x->call_salt),
                                      Usage(*x), x->finish[0].error);
          } else {
            const bool chat = p.endpoint == api::Endpoint::kChat;
            out["id"] = (chat ? "chatcmpl-" : "cmpl-") + x->id;
            out["object"] = chat ? "chat.completion" : "text_completion";
            out["created"] = x->created;
            out["model"] = x->model_name;
            OrderedJson choices = OrderedJson::array();
            for (size_t i = 0; i < x->choices.size(); ++i) {
              const Choice& c = x->choices[i];
              OrderedJson ch;
              ch["index"] = i;
              bool tool_calls = false;
              if (chat) {
                ch["message"] = api::ChatMessage(c, p.tools, &tool_calls, fmt::format("{:016x}{}_", x->call_salt, i));
                ch["logprobs"] = p.want_logprobs ? api::ChatLogprobs(*x->tok, c) : OrderedJson();
              } else {
                const api::PromptPart& part = x->prompts[x->prompt_of[i]];
                ch["text"] = (p.echo ? part.text : "") + (p.echo_only ? "" : c.text);
                ch["logprobs"] = p.want_logprobs ? api::CompletionLogprobs(*x->tok, c, p.echo ? part.ids : std::vector<int32_t>(),
                                                                           x->PromptScores(i), p.top_logprobs, !p.echo_only)
                                                 : OrderedJson();
                if (p.prompt_logprobs >= 0)
                  ch["prompt_logprobs"] = api::PromptLogprobs(*x->tok, part.ids, x->PromptScores(i), p.prompt_logprobs);
              }
              ch["finish_reason"] = c.reason == FinishReason::kError ? "error" : api::FinishReasonText(c.reason, tool_calls);
              if (p.echo_only && c.reason != FinishReason::kError) ch["finish_reason"] = "length";
              choices.push_back(ch);
            }
            out["choices"] = choices;
            if (chat && p.prompt_logprobs >= 0) out["prompt_logprobs"] = api::PromptLogprobs(*x->tok, p.gen.prompt, x->choices[0].prompt, p.prompt_logprobs);
            out["usage"] = Usage(*x);
          }
          const std::string text = Dump(out);
          // Counted before the answer goes out: a client that reads /metrics after it sees it.
          finish_metrics(*x, 200);
          const bool ok = sink.write(text.data(), text.size());
          if (ok) sink.done();
          return ok;
        },
        released);
    return;
  }

  // Streaming (SSE).
  res.set_header("Cache-Control", "no-cache");
  provide(
      "text/event-stream",
      [x, finish_metrics, on_token_metrics, metrics_cancelled, heartbeat](size_t, httplib::DataSink& sink) {
        const api::ParsedRequest& p = x->parsed;
        auto last_write = Clock::now();
        const bool chat = p.endpoint == api::Endpoint::kChat, tgi = p.endpoint == api::Endpoint::kTgi;
        auto chunk = [&](size_t i, OrderedJson delta_or_text, const OrderedJson& finish_reason, const OrderedJson& logprobs) {
          OrderedJson j;
          j["id"] = (chat ? "chatcmpl-" : "cmpl-") + x->id;
          j["object"] = chat ? "chat.completion.chunk" : "text_completion";
          j["created"] = x->created;
          j["model"] = x->model_name;
          OrderedJson ch;
          ch["index"] = i;
          if (chat) ch["delta"] = std::move(delta_or_text);
          else ch["text"] = std::move(delta_or_text);
          ch["logprobs"] = logprobs;
          ch["finish_reason"] = finish_reason;
          j["choices"] = OrderedJson::array({ch});
          return Sse(j);
        };
        bool ok = true;
        const bool responses = p.endpoint == api::Endpoint::kResponses;
        if (responses && !x->role_sent) {
          x->response_events = std::make_unique<api::ResponseEvents>(ResponseHeaderOf(*x));
          const std::string begin = x->response_events->Begin();
          ok = sink.write(begin.data(), begin.size());
          x->role_sent = true;
        }
        if (chat && !x->role_sent) {
          for (size_t i = 0; i < x->streams.size() && ok; ++i) {
            const std::string c = chunk(i, {{"role", "assistant"}, {"content", ""}}, OrderedJson(), OrderedJson());
            ok = sink.write(c.data(), c.size());
          }
          x->role_sent = true;
        }
        size_t index = 0;
        std::optional<OrderedJson> tgi_pending;  // a TGI token event not sent yet
        bool tgi_pending_last = false;
        auto send_tgi_pending = [&]() {
          if (!tgi_pending) return true;
          const std::string out = "data:" + Dump(*tgi_pending) + "\n\n";
          tgi_pending.reset();
          last_write = Clock::now();
          return sink.write(out.data(), out.size());
        };
        while (ok && x->finished < x->streams.size()) {
          // While a request waits or computes, an SSE comment now and then keeps proxies patient
          // and finds out whether the client is still there.
          if (Clock::now() - last_write > std::chrono::duration<double>(heartbeat)) {
            ok = sink.write(":\n\n", 3);
            last_write = Clock::now();
            if (!ok) break;
          }
          ok = Pump(*x, std::chrono::milliseconds(200), [&](size_t i, const StreamEvent& ev) {
            on_token_metrics(*x, i, ev);
            Choice& c = x->choices[i];
            std::string out;
            if (tgi) {
              // As TGI: one event per token, the last one carrying generated_text and details.
              // A token's event is held until the events ready with it are drained (the engine
              // sends the last token and the end in the same step), then sent.
              if (ev.kind == StreamEvent::Kind::kToken) {
                OrderedJson j;
                j["index"] = index++;
                j["token"] = {{"id", ev.token}, {"text", ev.text}, {"logprob", ev.logprob}, {"special", x->tok->IsSpecial(ev.token)}};
                j["generated_text"] = nullptr;
                j["details"] = nullptr;
                const bool sent = send_tgi_pending();
                tgi_pending = std::move(j);
                // A token that must be the last (the length limit, or an end-of-sequence token)
                // waits for the end event however long that takes.
                tgi_pending_last = static_cast<int64_t>(c.ids.size()) >= p.gen.max_tokens || x->tok->IsSpecial(ev.token);
                return sent;
              }
              OrderedJson j;
              if (tgi_pending) {  // the last token's event ends the stream
                j = std::move(*tgi_pending);
                tgi_pending.reset();
                j["token"]["text"] = j["token"]["text"].get<std::string>() + ev.text;
              } else {  // (no token, or its event already went out: a closing event of its own)
                j["index"] = index++;
                j["token"] = {{"id", c.ids.empty() ? -1 : c.ids.back()}, {"text", ev.text}, {"logprob", 0.0}, {"special", true}};
              }
              j["generated_text"] = p.return_full_text ? p.prompt_text + c.text : c.text;
              const bool by_stop = ev.reason == FinishReason::kStop && !c.ids.empty() && !x->tok->IsSpecial(c.ids.back());
              j["details"] = {{"finish_reason", api::TgiFinishReason(ev.reason, by_stop)},
                              {"generated_tokens", ev.generated_tokens},
                              {"seed", p.gen.sampling.temperature > 0 ? OrderedJson(p.gen.sampling.seed) : OrderedJson()}};
              out = "data:" + Dump(j) + "\n\n";
              last_write = Clock::now();
              return sink.write(out.data(), out.size());
            }
            // OpenAI: stream the text; with tools, hold everything from a "<tool_call>" on and
            // send the parsed calls at the end. With echo the prompt comes first, in a chunk of its own.
            if (p.echo && !x->echoed[i]) {
              x->echoed[i] = true;
              const api::PromptPart& part = x->prompts[x->prompt_of[i]];
              out += chunk(i, OrderedJson(part.text), OrderedJson(),
                           p.want_logprobs ? api::CompletionLogprobs(*x->tok, c, part.ids, c.prompt, p.top_logprobs, false) : OrderedJson());
            }
            std::string text;
            if (p.tools) {
              if (!x->in_tool_call[i]) {
                const size_t at = c.text.find("<tool_call>", x->streamed[i]);
                // Keep back a possible partial "<tool_call>" at the end.
                size_t ready = at != std::string::npos ? at : c.text.size();
                if (at == std::string::npos) {
                  const size_t lt = c.text.rfind('<');
                  if (lt != std::string::npos && lt >= x->streamed[i] && c.text.size() - lt < 11 &&
                      std::string_view("<tool_call>").starts_with(std::string_view(c.text).substr(lt)))
                    ready = lt;
                }
                if (ev.kind == StreamEvent::Kind::kFinished && at == std::string::npos) ready = c.text.size();
                if (ready > x->streamed[i]) text = c.text.substr(x->streamed[i], ready - x->streamed[i]);
                x->streamed[i] = std::max(x->streamed[i], ready);
                if (at != std::string::npos) x->in_tool_call[i] = true;
              }
            } else if (!p.echo_only) {
              text = ev.text;
            }
            if (responses) {
              out += x->response_events->Text(text);
              if (ev.kind == StreamEvent::Kind::kFinished)
                out += x->response_events->Finish(c, p.tools, fmt::format("{:016x}{}_", x->call_salt, i), Usage(*x), ev.error);
              if (out.empty()) return true;
              last_write = Clock::now();
              return sink.write(out.data(), out.size());
            }
            OrderedJson lp;
            if (p.want_logprobs && ev.kind == StreamEvent::Kind::kToken && !p.echo_only) {
              Choice one;
              one.ids = {ev.token};
              one.logprobs = {ev.logprob};
              one.top = {ev.top_logprobs};
              lp = chat ? api::ChatLogprobs(*x->tok, one) : api::CompletionLogprobs(*x->tok, one);
            }
            if (!text.empty() || !lp.is_null())
              out += chunk(i, chat ? OrderedJson{{"content", text}} : OrderedJson(text), OrderedJson(), lp);
            if (ev.kind == StreamEvent::Kind::kFinished) {
              bool tool_calls = false;
              OrderedJson delta = OrderedJson::object();
              if (chat && p.tools) {
                OrderedJson msg = api::ChatMessage(c, true, &tool_calls, fmt::format("{:016x}{}_", x->call_salt, i));
                if (tool_calls) {
                  OrderedJson calls = msg["tool_calls"];
                  for (size_t k = 0; k < calls.size(); ++k) calls[k]["index"] = k;
                  delta["tool_calls"] = calls;
                }
              }
              std::string reason = ev.reason == FinishReason::kError ? "error" : api::FinishReasonText(ev.reason, tool_calls);
              if (p.echo_only && ev.reason != FinishReason::kError) reason = "length";
              out += chunk(i, chat ? delta : OrderedJson(""), reason, OrderedJson());
            }
            if (out.empty()) return true;  // (text held back: the heartbeat still runs)
            last_write = Clock::now();
            return sink.write(out.data(), out.size());
          });
          if (ok && !tgi_pending_last) ok = send_tgi_pending();
        }
        // Every event is out: counted before the stream's last bytes (see above).
        if (ok) finish_metrics(*x, 200);
        else metrics_cancelled(*x);
        if (ok && !tgi && !responses) {
          std::string tail;
          if (p.include_usage) {
            OrderedJson j;
            j["id"] = (chat ? "chatcmpl-" : "cmpl-") + x->id;
            j["object"] = chat ? "chat.completion.chunk" : "text_completion";
            j["created"] = x->created;
            j["model"] = x->model_name;
            j["choices"] = OrderedJson::array();
            j["usage"] = Usage(*x);
            tail += Sse(j);
          }
          tail += "data: [DONE]\n\n";
          ok = sink.write(tail.data(), tail.size());
        }
        if (ok) sink.done();
        return ok;
      },
      released);
}

}  // namespace qb
