// Time to first token with and without the prefix cache: two requests that share a long prefix
// (a system prompt, a document) and differ in their last tokens, sent one after the other.
//   build/bench/prefix_cache_bench MODEL [PREFIX_TOKENS] [THREADS]
#include <cstdio>
#include <cstdlib>
#include <random>

#include "engine/engine.h"
#include "model/loader.h"
#include "util/thread_pool.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL [PREFIX_TOKENS] [THREADS]\n", argv[0]);
    return 2;
  }
  const int prefix = argc > 2 ? std::atoi(argv[2]) : 1000;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  qb::ThreadPool pool(threads);
  auto loaded = qb::LoadModel(argv[1]);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", loaded.status().ToString().c_str());
    return 1;
  }
  qb::EngineConfig c;
  c.kv_blocks = (prefix + 64) / 16 * 3;
  c.scheduler.max_batch_tokens = 512;
  qb::Engine engine(loaded->model, nullptr, c, qb::kernels::ExecContext{&pool, qb::kernels::DetectIsa()});
  std::mt19937 rng(5);
  std::vector<int32_t> shared(static_cast<size_t>(prefix));
  for (auto& t : shared) t = static_cast<int32_t>(rng() % 150000);
  double ttft[2];
  int64_t cached[2];
  for (int i = 0; i < 2; ++i) {
    qb::GenerationRequest r;
    r.prompt = shared;
    for (int k = 0; k < 8; ++k) r.prompt.push_back(static_cast<int32_t>(1000 * (i + 1) + k));
    r.max_tokens = 1;
    r.ignore_eos = true;
    auto s = engine.Submit(r);
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.status().ToString().c_str());
      return 1;
    }
    qb::StreamEvent ev;
    while ((*s)->Next(&ev) && ev.kind != qb::StreamEvent::Kind::kFinished) {
    }
    ttft[i] = ev.timing.ttft_s;
    cached[i] = ev.cached_tokens;
  }
  std::printf("{\"prefix_tokens\": %d, \"first_ttft_ms\": %.1f, \"second_ttft_ms\": %.1f, \"speedup\": %.1f, "
              "\"second_cached_tokens\": %lld}\n",
              prefix, ttft[0] * 1e3, ttft[1] * 1e3, ttft[0] / ttft[1], static_cast<long long>(cached[1]));
  return 0;
}
