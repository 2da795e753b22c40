// What structured output costs per generated token: the sampler with and without a grammar
// over the real Qwen2.5 vocabulary (151,665 tokens), random logits, greedy and sampled, for
// JSON mode and a JSON schema. Prints JSON with medians and p99 in microseconds.
//   grammar_bench [documents=20]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "assets/assets.h"
#include "grammar/json_grammar.h"
#include "grammar/token_constraint.h"
#include "sampling/sampler.h"

namespace {

using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  using namespace qb;
  const int documents = argc > 1 ? std::atoi(argv[1]) : 20;
  auto tok = LoadTokenizerFromText(assets::Qwen25TokenizerJson(), assets::Qwen25TokenizerConfigJson(), "built-in");
  if (!tok.ok()) return 1;
  const auto t0 = Clock::now();
  auto index = std::make_shared<const TokenBytesIndex>(*tok);
  const double index_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  const int32_t end = *(*tok)->AddedTokenId("<|im_end|>");
  auto schema = JsonSchemaGrammar(nlohmann::ordered_json::parse(R"({"type": "object", "properties": {
      "name": {"type": "string"}, "age": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}},
      "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                  "required": ["city"]}}, "required": ["name", "age", "tags", "address"]})"));
  if (!schema.ok()) return 1;
  std::printf("{\"vocab\": %d, \"index_build_ms\": %.1f, \"runs\": [", index->vocab_size(), index_ms);
  const std::vector<float> zeros;
  bool first = true;
  for (const auto& [name, grammar] : {std::pair{"json_object", JsonObjectGrammar()}, std::pair{"schema", *schema}})
    for (int mode = 0; mode < 3; ++mode) {
      // 0 greedy, 1 sampled (each document its own allowed-set cache), 2 greedy with one
      // cache shared by the documents (what requests of one schema get in the engine).
      const bool sampled = mode == 1;
      auto shared = std::make_shared<TokenSetCache>();
      std::mt19937 rng(1);
      std::normal_distribution<float> normal(0.0f, 3.0f);
      std::vector<float> logits(static_cast<size_t>(index->vocab_size()));
      std::vector<double> with, without, first_token;
      for (int d = 0; d < documents; ++d) {
        SamplingParams p;
        if (sampled) {
          p.temperature = 0.8f;
          p.top_p = 0.95f;
          p.seed = static_cast<uint64_t>(d);
        }
        Sampler plain(p), constrained(p);
        GrammarConstraint c(grammar, index, {end}, mode == 2 ? shared : nullptr);
        for (int step = 0; step < 64; ++step) {
          for (float& l : logits) l = normal(rng);
          auto a = Clock::now();
          plain.Sample(logits);
          auto b = Clock::now();
          const int32_t t = constrained.Sample(logits, &c).token;
          c.Accept(t);
          auto e = Clock::now();
          without.push_back(std::chrono::duration<double, std::micro>(b - a).count());
          (step == 0 ? first_token : with).push_back(std::chrono::duration<double, std::micro>(e - b).count());
          if (t == end) break;
        }
      }
      std::printf("%s{\"grammar\": \"%s\", \"sampling\": \"%s\", \"tokens\": %zu, \"plain_us_p50\": %.1f, "
                  "\"constrained_us_p50\": %.1f, \"constrained_us_p99\": %.1f, \"first_token_us_p50\": %.1f}",
                  first ? "" : ", ", name, sampled ? "t=0.8 top_p=0.95" : mode == 2 ? "greedy, shared sets" : "greedy", with.size(),
                  Percentile(without, 0.5), Percentile(with, 0.5), Percentile(with, 0.99), Percentile(first_token, 0.5));
      first = false;
    }
  std::printf("]}\n");
  return 0;
}
