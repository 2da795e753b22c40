#include "loadtest/stream_client.h"

#include <httplib.h>

#include <fmt/format.h>

namespace qb::loadtest {

Result<Endpoint> ParseUrl(const std::string& url) {
  Endpoint e;
  std::string rest = url;
  if (rest.rfind("https://", 0) == 0) return InvalidArgument(fmt::format("{}: https is not supported (no TLS in this build)", url));
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  const size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  if (slash != std::string::npos) e.base_path = rest.substr(slash);
  while (!e.base_path.empty() && e.base_path.back() == '/') e.base_path.pop_back();
  const size_t colon = hostport.rfind(':');
  if (colon != std::string::npos) {
    try {
      size_t used = 0;
      e.port = std::stoi(hostport.substr(colon + 1), &used);
      if (used != hostport.size() - colon - 1 || e.port < 1 || e.port > 65535) throw std::out_of_range("port");
    } catch (...) {
      return InvalidArgument(fmt::format("{}: bad port", url));
    }
    hostport = hostport.substr(0, colon);
  } else {
    e.port = 80;
  }
  if (hostport.empty()) return InvalidArgument(fmt::format("{}: no host (use http://HOST:PORT)", url));
  e.host = hostport;
  return e;
}

Result<Api> ParseApi(const std::string& name) {
  if (name == "openai") return Api::kOpenAiCompletions;
  if (name == "openai-chat") return Api::kOpenAiChat;
  if (name == "tgi") return Api::kTgi;
  return InvalidArgument(fmt::format("unknown --api \"{}\" (openai, openai-chat or tgi)", name));
}

std::string RequestPath(const Endpoint& e) {
  switch (e.api) {
    case Api::kOpenAiCompletions:
      return e.base_path + "/v1/completions";
    case Api::kOpenAiChat:
      return e.base_path + "/v1/chat/completions";
    case Api::kTgi:
      return e.base_path + "/generate_stream";
  }
  return "";
}

std::string RequestBody(const Endpoint& e, const LoadRequest& r) {
  Json j;
  if (e.api == Api::kTgi) {
    j["inputs"] = r.prompt;
    j["parameters"] = {{"max_new_tokens", r.max_tokens}, {"details", true}};
    if (e.temperature > 0) j["parameters"]["temperature"] = e.temperature, j["parameters"]["do_sample"] = true;
    return j.dump();
  }
  j["model"] = e.model;
  if (e.api == Api::kOpenAiChat) {
    j["messages"] = r.messages.is_array() ? r.messages : Json::array({{{"role", "user"}, {"content", r.prompt}}});
  } else {
    j["prompt"] = r.prompt;
  }
  j["max_tokens"] = r.max_tokens;
  j["temperature"] = e.temperature;
  j["stream"] = true;
  j["stream_options"] = {{"include_usage", true}};
  // Not OpenAI's, but vLLM, llama.cpp's server and qwenbox read it; it makes output lengths exact.
  if (e.ignore_eos) j["ignore_eos"] = true;
  return j.dump();
}

namespace {

// Applies one SSE event's data to the result; returns false on an error event.
bool OnEvent(const Endpoint& e, const std::string& data, double t, RequestResult& r, double* last) {
  if (data == "[DONE]") return true;
  auto j = ParseJson(data, "event");
  if (!j.ok() || !j->is_object()) {
    r.error = "unparsable stream event: " + data.substr(0, 200);
    return false;
  }
  if (j->contains("error")) {
    const Json& err = (*j)["error"];
    r.error = "error event: " + (err.is_object() && err.contains("message") ? err["message"].dump() : err.dump());
    return false;
  }
  std::string piece;
  bool counted_token = false;
  if (e.api == Api::kTgi) {
    if (j->contains("token") && (*j)["token"].is_object()) {
      const Json& tok = (*j)["token"];
      if (!tok.value("special", false) && tok.contains("text") && tok["text"].is_string()) piece = tok["text"].get<std::string>();
      counted_token = true;
    }
    if (j->contains("details") && (*j)["details"].is_object() && (*j)["details"].contains("generated_tokens")) {
      r.output_tokens = (*j)["details"]["generated_tokens"].get<int64_t>();
      r.usage_reported = true;
    }
  } else {
    if (j->contains("choices") && (*j)["choices"].is_array() && !(*j)["choices"].empty()) {
      const Json& c = (*j)["choices"][0];
      if (e.api == Api::kOpenAiChat) {
        if (c.contains("delta") && c["delta"].is_object() && c["delta"].contains("content") && c["delta"]["content"].is_string())
          piece = c["delta"]["content"].get<std::string>();
      } else if (c.contains("text") && c["text"].is_string()) {
        piece = c["text"].get<std::string>();
      }
    }
    if (j->contains("usage") && (*j)["usage"].is_object()) {
      const Json& u = (*j)["usage"];
      if (u.contains("completion_tokens")) r.output_tokens = u["completion_tokens"].get<int64_t>(), r.usage_reported = true;
      if (u.contains("prompt_tokens")) r.prompt_tokens = u["prompt_tokens"].get<int64_t>();
    }
  }
  if (!piece.empty() || (counted_token && e.api == Api::kTgi)) {
    if (r.token_times_s.empty()) r.ttft_s = t - r.start_s;
    else r.itl_s.push_back(t - *last);
    r.token_times_s.push_back(t);
    *last = t;
    r.text += piece;
  }
  return true;
}

}  // namespace

RequestResult SendStreaming(const Endpoint& e, const LoadRequest& lr, double (*now_s)()) {
  RequestResult r;
  r.prompt_tokens = lr.prompt_tokens;
  httplib::Client client(e.host, e.port);
  const auto secs = static_cast<time_t>(e.timeout_s);
  client.set_connection_timeout(10, 0);
  client.set_read_timeout(secs, 0);
  client.set_write_timeout(60, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = RequestPath(e);
  req.body = RequestBody(e, lr);
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", "text/event-stream");
  if (!e.api_key.empty()) req.set_header("Authorization", "Bearer " + e.api_key);

  std::string buffer, error_body;
  double last = 0;
  bool stream_ok = true;
  int status = 0;
  req.response_handler = [&](const httplib::Response& res) {
    status = res.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    const double t = now_s();
    if (status != 200) {
      error_body.append(data, len);
      return error_body.size() < 65536;
    }
    buffer.append(data, len);
    // SSE: events end with a blank line; each "data:" line of the event is payload.
    while (true) {
      size_t end = buffer.find("\n\n");
      size_t skip = 2;
      const size_t crlf = buffer.find("\r\n\r\n");
      if (crlf != std::string::npos && (end == std::string::npos || crlf < end)) end = crlf, skip = 4;
      if (end == std::string::npos) break;
      const std::string event = buffer.substr(0, end);
      buffer.erase(0, end + skip);
      size_t pos = 0;
      while (pos < event.size()) {
        size_t nl = event.find('\n', pos);
        if (nl == std::string::npos) nl = event.size();
        std::string line = event.substr(pos, nl - pos);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        pos = nl + 1;
        if (line.rfind("data:", 0) != 0) continue;
        std::string payload = line.substr(5);
        if (!payload.empty() && payload.front() == ' ') payload.erase(0, 1);
        if (!OnEvent(e, payload, t, r, &last)) {
          stream_ok = false;
          return false;
        }
      }
    }
    return true;
  };
  r.start_s = now_s();
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  const bool sent = client.send(req, res, err);
  r.end_s = now_s();
  r.http_status = status ? status : res.status;
  if (!stream_ok) return r;
  if (!sent && r.http_status == 0) {
    r.error = fmt::format("request failed: {}", httplib::to_string(err));
    return r;
  }
  if (r.http_status != 200) {
    std::string msg = error_body.empty() ? res.body : error_body;
    if (auto j = ParseJson(msg, "error"); j.ok() && j->is_object() && j->contains("error")) {
      const Json& e2 = (*j)["error"];
      msg = e2.is_object() && e2.contains("message") && e2["message"].is_string() ? e2["message"].get<std::string>() : e2.dump();
    }
    r.error = fmt::format("HTTP {}: {}", r.http_status, msg.substr(0, 300));
    return r;
  }
  if (!sent) {
    r.error = fmt::format("the stream broke off: {}", httplib::to_string(err));
    return r;
  }
  if (r.token_times_s.empty()) {
    r.error = "the stream ended without any text";
    return r;
  }
  if (!r.usage_reported) r.output_tokens = static_cast<int64_t>(r.token_times_s.size());
  r.success = true;
  return r;
}

}  // namespace qb::loadtest
