// Decode attention speed: S sequences of C cached tokens each, one query token per sequence,
// over every layer's own K/V pool (blocks of 16 handed out round-robin to the sequences, as
// the engine's block pool does when they decode side by side), so the keys come from memory
// as they do in a decode step and not from a cache warmed by the previous call.
//   build/bench/attention_bench [SEQS] [CONTEXT] [LAYERS] [THREADS] [KV_TYPE] [REPS] [ISA] [BLOCK]
//                               [decode|prefill] [0.5b|7b]
// With "prefill", every one of a sequence's CONTEXT tokens is a query (a whole prompt in one
// step, each token over the keys up to its own). "7b": Qwen2.5-7B's heads (28 over 4 KV heads
// of 128) instead of qwen2.5-0.5b's (14 over 2 of 64).
// Defaults: the 0.5b shape, 32 x 96 tokens, 24 layers, 1 thread, f16. Prints the median time of one layer's call and GB/s of K/V read.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "tensor/dequantize.h"

int main(int argc, char** argv) {
  const int64_t seqs = argc > 1 ? std::atoll(argv[1]) : 32;
  const int64_t context = argc > 2 ? std::atoll(argv[2]) : 96;
  const int64_t layers = argc > 3 ? std::atoll(argv[3]) : 24;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 1;
  const auto kv_type = qb::DTypeFromName(argc > 5 ? argv[5] : "f16");
  const int reps = argc > 6 ? std::atoi(argv[6]) : 11;
  const auto isa = argc > 7 ? qb::kernels::IsaFromName(argv[7]) : qb::kernels::DetectIsa();
  const int64_t kBlock = argc > 8 ? std::atoll(argv[8]) : 16;
  const std::string mode = argc > 9 ? argv[9] : "decode", shape = argc > 10 ? argv[10] : "0.5b";
  const bool prefill = mode == "prefill";
  if (!kv_type || !isa || *isa > qb::kernels::DetectIsa() || seqs < 1 || context < 1 || layers < 1 || kBlock < 1 ||
      (mode != "decode" && !prefill) || (shape != "0.5b" && shape != "7b")) {
    std::fprintf(stderr, "usage: attention_bench [SEQS] [CONTEXT] [LAYERS] [THREADS] [f16|bf16|q8_0|f32] [REPS] [ISA] [BLOCK] "
                         "[decode|prefill] [0.5b|7b]\n");
    return 2;
  }
  const bool big = shape == "7b";
  const int64_t kHeads = big ? 28 : 14, kKvHeads = big ? 4 : 2, kHeadDim = big ? 128 : 64;
  const int64_t blocks_per_seq = (context + kBlock - 1) / kBlock, blocks = seqs * blocks_per_seq;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> row(kKvHeads * kHeadDim);
  // One random pool, copied for every layer's K and V (each layer still its own memory): drawing
  // every layer's values took most of the run.
  const qb::Tensor random_pool = [&] {
    qb::Tensor t = qb::Tensor::EmptyLongLived(*kv_type, {blocks * kBlock, kKvHeads * kHeadDim});
    for (int64_t r = 0; r < t.rows(); ++r) {
      for (auto& v : row) v = nd(rng);
      qb::QuantizeRow(*kv_type, row.data(), static_cast<uint8_t*>(t.mutable_raw()) + r * t.row_bytes(), t.cols());
    }
    return t;
  }();
  auto copy_pool = [&] {
    qb::Tensor t = qb::Tensor::EmptyLongLived(*kv_type, {blocks * kBlock, kKvHeads * kHeadDim});
    std::memcpy(t.mutable_raw(), random_pool.raw(), static_cast<size_t>(t.rows() * t.row_bytes()));
    return t;
  };
  std::vector<qb::Tensor> k, v;
  for (int64_t l = 0; l < layers; ++l) {
    k.push_back(copy_pool());
    v.push_back(copy_pool());
  }
  // Block b of sequence s is pool block b * seqs + s.
  std::vector<std::vector<int32_t>> tables(static_cast<size_t>(seqs));
  for (int64_t s = 0; s < seqs; ++s)
    for (int64_t b = 0; b < blocks_per_seq; ++b) tables[static_cast<size_t>(s)].push_back(static_cast<int32_t>(b * seqs + s));
  std::vector<std::span<const int32_t>> table_spans(tables.begin(), tables.end());
  std::vector<int32_t> positions;
  std::vector<std::span<const int32_t>> token_tables;
  for (int64_t s = 0; s < seqs; ++s)
    for (int64_t p = prefill ? 0 : context - 1; p < context; ++p) {
      positions.push_back(static_cast<int32_t>(p));
      token_tables.push_back(table_spans[static_cast<size_t>(s)]);
    }
  const auto n_tokens = static_cast<int64_t>(positions.size());
  qb::Tensor q = qb::Tensor::Empty(qb::DType::kF32, {n_tokens, kHeads * kHeadDim});
  for (int64_t i = 0; i < q.numel(); ++i) q.mutable_data<float>()[i] = nd(rng);
  qb::Tensor out = qb::Tensor::Empty(qb::DType::kF32, {n_tokens, kHeads * kHeadDim});
  qb::ThreadPool pool(threads);
  const qb::kernels::ExecContext ctx{&pool, *isa};
  // CPU time beside wall time: on a shared VM a rep's wall time includes what other guests took.
  auto cpu_ms = [] {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
  };
  std::vector<double> ms, cpu;
  for (int r = 0; r <= reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_ms();
    for (int64_t l = 0; l < layers; ++l)
      qb::kernels::Attention(ctx, q, k[static_cast<size_t>(l)], v[static_cast<size_t>(l)], kHeadDim, kBlock, positions,
                             token_tables, 1.f / std::sqrt(static_cast<float>(kHeadDim)), out);
    const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) {  // the first pass pages the pools in
      ms.push_back(dt / static_cast<double>(layers));
      cpu.push_back((cpu_ms() - c0) / static_cast<double>(layers));
    }
  }
  std::sort(ms.begin(), ms.end());
  std::sort(cpu.begin(), cpu.end());
  const double med = ms[ms.size() / 2];
  const double bytes = 2.0 * static_cast<double>(seqs * context) * static_cast<double>(k[0].row_bytes());
  std::printf("attention %s %s %lld seqs x %lld tokens, %lld layers, t=%d kv=%s isa=%s: %.1f us per layer median (min "
              "%.1f; CPU time %.1f us), %.2f GB/s of K/V\n", shape.c_str(), prefill ? "prefill" : "decode",
              static_cast<long long>(seqs), static_cast<long long>(context), static_cast<long long>(layers), threads,
              std::string(qb::Name(*kv_type)).c_str(), std::string(qb::kernels::IsaName(ctx.isa)).c_str(), med * 1e3,
              ms.front() * 1e3, cpu[cpu.size() / 2] * 1e3, bytes / (med * 1e-3) / 1e9);
  return 0;
}
