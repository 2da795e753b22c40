// Tokenizer speed: vocabulary load time and single-thread encode throughput.
//   build/bench/tokenizer_bench TOKENIZER_PATH TEXT_FILE [REPS]
// Prints medians (and min/max) as JSON. See BENCHMARKS.md.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "util/json.h"

namespace {

double Ms(std::chrono::steady_clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Stats {
  double min, median, max;
};

Stats Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2], v.back()};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TOKENIZER_PATH TEXT_FILE [REPS]\n", argv[0]);
    return 2;
  }
  const int reps = argc > 3 ? std::atoi(argv[3]) : 5;
  auto text = qb::ReadFileToString(argv[2]);
  if (!text.ok()) {
    std::fprintf(stderr, "%s\n", text.status().ToString().c_str());
    return 1;
  }
  std::vector<double> load_ms, encode_ms, cold_ms;
  std::shared_ptr<const qb::Tokenizer> tok;
  size_t n_ids = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    auto loaded = qb::LoadTokenizer(argv[1]);
    const auto t1 = std::chrono::steady_clock::now();
    if (!loaded.ok()) {
      std::fprintf(stderr, "%s\n", loaded.status().ToString().c_str());
      return 1;
    }
    tok = *loaded;
    load_ms.push_back(Ms(t1 - t0));
    // First encode on a fresh tokenizer (empty piece cache), then a warm one.
    const auto t2 = std::chrono::steady_clock::now();
    n_ids = tok->Encode(*text).size();
    const auto t3 = std::chrono::steady_clock::now();
    cold_ms.push_back(Ms(t3 - t2));
    const auto t4 = std::chrono::steady_clock::now();
    n_ids = tok->Encode(*text).size();
    encode_ms.push_back(Ms(std::chrono::steady_clock::now() - t4));
  }
  const double mb = static_cast<double>(text->size()) / 1e6;
  const Stats load = Summarize(load_ms), cold = Summarize(cold_ms), warm = Summarize(encode_ms);
  std::printf(
      "{\"bytes\": %zu, \"tokens\": %zu, \"reps\": %d,\n"
      " \"load_ms\": {\"min\": %.1f, \"median\": %.1f, \"max\": %.1f},\n"
      " \"encode_cold_mb_s\": {\"min\": %.2f, \"median\": %.2f, \"max\": %.2f},\n"
      " \"encode_warm_mb_s\": {\"min\": %.2f, \"median\": %.2f, \"max\": %.2f},\n"
      " \"encode_warm_tokens_s\": %.0f}\n",
      text->size(), n_ids, reps, load.min, load.median, load.max, mb / cold.max * 1e3, mb / cold.median * 1e3,
      mb / cold.min * 1e3, mb / warm.max * 1e3, mb / warm.median * 1e3, mb / warm.min * 1e3,
      static_cast<double>(n_ids) / warm.median * 1e3);
  return 0;
}
