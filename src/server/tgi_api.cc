#include "server/tgi_api.h"

#include <random>
#include <set>

#include <fmt/format.h>

#include "server/structured_output.h"

namespace qb::api {

namespace {
HttpError Bad(std::string m) { return HttpError{400, "validation", std::move(m), ""}; }
}  // namespace

std::variant<ParsedRequest, HttpError> ParseTgiRequest(const OrderedJson& body, const Tokenizer& tok, const Defaults& d,
                                                       const ServedNames& names) {
  if (!body.is_object()) return Bad("the request body must be a JSON object");
  for (auto it = body.begin(); it != body.end(); ++it)
    if (it.key() != "inputs" && it.key() != "parameters" && it.key() != "stream")
      return Bad(fmt::format("unknown field '{}'", it.key()));
  if (!body.contains("inputs") || !body["inputs"].is_string()) return Bad("'inputs' must be a string");
  ParsedRequest p;
  p.endpoint = Endpoint::kTgi;
  p.model = names.model;
  p.prompt_text = body["inputs"].get<std::string>();
  if (p.prompt_text.empty()) return Bad("'inputs' cannot be empty");
  p.gen.prompt = tok.Encode(p.prompt_text);
  p.gen.max_tokens = 20;  // TGI's default max_new_tokens
  SamplingParams& s = p.gen.sampling;
  s.seed = std::random_device{}();
  const OrderedJson params = body.value("parameters", OrderedJson::object());
  if (!params.is_object()) return Bad("'parameters' must be an object");
  static const std::set<std::string> kKnown = {"max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty",
                                               "frequency_penalty", "stop", "seed", "details", "decoder_input_details",
                                               "truncate", "return_full_text", "do_sample", "best_of", "watermark",
                                               "typical_p", "top_n_tokens", "grammar", "adapter_id"};
  bool sampling = false;
  for (auto it = params.begin(); it != params.end(); ++it) {
    const std::string& k = it.key();
    const OrderedJson& v = *it;
    if (!kKnown.count(k)) return Bad(fmt::format("unknown parameter '{}'", k));
    if (v.is_null()) continue;
    auto number = [&](double lo, double hi) -> std::optional<double> {
      if (!v.is_number() || v.get<double>() < lo || v.get<double>() > hi) return std::nullopt;
      return v.get<double>();
    };
    if (k == "max_new_tokens") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > d.max_total_tokens)
        return Bad(fmt::format("'max_new_tokens' must be an integer between 1 and {}", d.max_total_tokens));
      p.gen.max_tokens = v.get<int64_t>();
      p.max_tokens_given = true;
    } else if (k == "temperature") {
      auto t = number(1e-6, 100);
      if (!t) return Bad("'temperature' must be a positive number");
      s.temperature = static_cast<float>(*t);
      sampling = true;
    } else if (k == "top_p") {
      auto t = number(1e-9, 1 - 1e-9);
      if (!t) return Bad("'top_p' must be in (0, 1)");
      s.top_p = static_cast<float>(*t);
      sampling = true;
    } else if (k == "top_k") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1) return Bad("'top_k' must be a positive integer");
      s.top_k = v.get<int64_t>();
      sampling = true;
    } else if (k == "repetition_penalty") {
      auto t = number(1e-6, 100);
      if (!t) return Bad("'repetition_penalty' must be positive");
      s.repetition_penalty = static_cast<float>(*t);
    } else if (k == "frequency_penalty") {
      auto t = number(-2, 2);
      if (!t) return Bad("'frequency_penalty' must be between -2 and 2");
      s.frequency_penalty = static_cast<float>(*t);
    } else if (k == "stop") {
      if (!v.is_array()) return Bad("'stop' must be an array of strings");
      for (const auto& x : v) {
        if (!x.is_string() || x.get<std::string>().empty()) return Bad("'stop' must hold non-empty strings");
        p.gen.stop.push_back(x.get<std::string>());
      }
      if (p.gen.stop.size() > kMaxStopSequences) return Bad(fmt::format("at most {} stop sequences", kMaxStopSequences));
    } else if (k == "seed") {
      if (!v.is_number_unsigned()) return Bad("'seed' must be a non-negative integer");
      s.seed = v.get<uint64_t>();
    } else if (k == "details" || k == "decoder_input_details" || k == "return_full_text" || k == "do_sample" ||
               k == "watermark") {
      if (!v.is_boolean()) return Bad(fmt::format("'{}' must be true or false", k));
      if (k == "details") p.details = v.get<bool>();
      if (k == "decoder_input_details") p.decoder_input_details = v.get<bool>();
      if (k == "return_full_text") p.return_full_text = v.get<bool>();
      if (k == "do_sample" && v.get<bool>()) sampling = true;
      if (k == "watermark" && v.get<bool>()) return Bad("'watermark' is not supported");
    } else if (k == "truncate") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1) return Bad("'truncate' must be a positive integer");
      const auto keep = static_cast<size_t>(v.get<int64_t>());
      if (p.gen.prompt.size() > keep) p.gen.prompt.erase(p.gen.prompt.begin(), p.gen.prompt.end() - static_cast<std::ptrdiff_t>(keep));
    } else if (k == "grammar") {
      if (auto e = ReadTgiGrammar(v, p)) return *e;
    } else if (k == "adapter_id") {
      if (!v.is_string()) return Bad("'adapter_id' must be a string");
      const auto adapter = names.Find(v.get<std::string>());
      if (!adapter)
        return HttpError{404, "validation",
                         fmt::format("adapter_id '{}' is not loaded (this server serves {})", v.get<std::string>(),
                                     names.List()),
                         ""};
      p.gen.adapter = *adapter;
      if (*adapter > 0) p.model = v.get<std::string>();
    } else if (k == "best_of") {
      if (!v.is_number_integer() || v.get<int64_t>() != 1) return Bad("'best_of' other than 1 is not supported");
    } else {
      return Bad(fmt::format("'{}' is not supported", k));
    }
  }
  if (sampling) {
    if (s.temperature <= 0) s.temperature = 1.0f;
  } else {
    s.temperature = 0.0f;  // TGI is greedy unless sampling is asked for
  }
  if (body.contains("stream") && !body["stream"].is_null()) {
    if (!body["stream"].is_boolean()) return Bad("'stream' must be true or false");
    p.stream = body["stream"].get<bool>();
  }
  p.gen.sampling.logprobs = true;  // TGI reports every token's logprob
  (void)d;
  return p;
}

std::string TgiFinishReason(FinishReason r, bool by_stop_sequence) {
  if (r == FinishReason::kLength) return "length";
  return by_stop_sequence ? "stop_sequence" : "eos_token";
}

}  // namespace qb::api
