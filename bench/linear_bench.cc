// Linear kernel speed: y[n, out] = x[n, in] . W^T for one weight type, on 1..T threads.
//   build/bench/linear_bench [TYPE] [IN] [OUT] [N] [THREADS] [REPS] [ISA] [COPIES]
// (COPIES > 1: that many copies of the matrix, used in turn, so each call reads its weights from
// memory as a decode step does rather than from a cache that still holds them)
// (TYPE q4_0x8 / q8_0x8: 8-row layouts; ISA: avx512vnni, avx2, scalar; default the CPU's best)
// Prints the median time and ns per (weight block x token) and GB/s of weights read.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "tensor/dequantize.h"
#include "tensor/interleave.h"

int main(int argc, char** argv) {
  const std::string type_name = argc > 1 ? argv[1] : "q4_0";
  const int64_t in = argc > 2 ? std::atoll(argv[2]) : 896;
  const int64_t out = argc > 3 ? std::atoll(argv[3]) : 4864;
  const int64_t n = argc > 4 ? std::atoll(argv[4]) : 1;
  const int threads = argc > 5 ? std::atoi(argv[5]) : 1;
  const int reps = argc > 6 ? std::atoi(argv[6]) : 21;
  const auto isa = argc > 7 && std::string(argv[7]) != "best" ? qb::kernels::IsaFromName(argv[7]) : qb::kernels::DetectIsa();
  const int copies = argc > 8 ? std::max(1, std::atoi(argv[8])) : 1;
  if (!isa || *isa > qb::kernels::DetectIsa()) {
    std::fprintf(stderr, "ISA %s is unknown or not on this CPU (best: %s)\n", argc > 7 ? argv[7] : "",
                 std::string(qb::kernels::IsaName(qb::kernels::DetectIsa())).c_str());
    return 2;
  }
  // "q4_0x8" / "q8_0x8": quantized as q4_0 / q8_0, then repacked into the 8-row layout the
  // model loader uses for those types.
  const bool interleaved = type_name.size() > 2 && type_name.substr(type_name.size() - 2) == "x8";
  auto type = qb::DTypeFromName(interleaved ? type_name.substr(0, type_name.size() - 2) : type_name);
  if (!type) {
    std::fprintf(stderr, "unknown type %s\n", type_name.c_str());
    return 2;
  }
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 0.05f);
  qb::Tensor w = qb::Tensor::Empty(*type, {out, in});
  std::vector<float> row(static_cast<size_t>(in));
  // The GGUF types qwenbox reads but never writes (q5_k, q3_k, ...) get random bytes: the
  // kernels' speed does not depend on the values.
  const bool writable = *type == qb::DType::kF32 || *type == qb::DType::kF16 || *type == qb::DType::kBF16 ||
                        *type == qb::DType::kQ8_0 || *type == qb::DType::kQ4_0 || *type == qb::DType::kQ4_K ||
                        *type == qb::DType::kQ6_K;
  for (int64_t r = 0; r < out; ++r) {
    auto* dst = static_cast<uint8_t*>(w.mutable_raw()) + r * w.row_bytes();
    if (!writable) {
      for (int64_t i = 0; i < w.row_bytes(); ++i) dst[i] = static_cast<uint8_t>(rng());
      continue;
    }
    for (auto& v : row) v = nd(rng);
    qb::QuantizeRow(*type, row.data(), dst, in);
  }
  if (interleaved) w = qb::Interleave(w);
  std::vector<qb::Tensor> ws{w};
  for (int c = 1; c < copies; ++c) {
    qb::Tensor copy = qb::Tensor::Empty(w.dtype(), w.shape());
    std::copy_n(static_cast<const uint8_t*>(w.raw()), w.nbytes(), static_cast<uint8_t*>(copy.mutable_raw()));
    ws.push_back(std::move(copy));
  }
  qb::Tensor x = qb::Tensor::Empty(qb::DType::kF32, {n, in});
  for (int64_t i = 0; i < x.numel(); ++i) x.mutable_data<float>()[i] = nd(rng) * 20;
  qb::Tensor y = qb::Tensor::Empty(qb::DType::kF32, {n, out});
  qb::ThreadPool pool(threads);
  const qb::kernels::ExecContext ctx{&pool, *isa};
  std::vector<double> ms;
  // Enough calls per sample to take ~20 ms.
  int inner = 1;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < inner; ++i) qb::kernels::Linear(ctx, x, ws[static_cast<size_t>(i) % ws.size()], nullptr, y);
    const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if ((dt > 20 && inner >= copies) || inner > 1 << 20) break;
    inner *= 2;
  }
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < inner; ++i) qb::kernels::Linear(ctx, x, ws[static_cast<size_t>(i) % ws.size()], nullptr, y);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / inner);
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  const double blocks = static_cast<double>(out) * static_cast<double>(in) / 32.0 * static_cast<double>(n);
  std::printf("%s %lldx%lld n=%lld t=%d isa=%s: %.3f ms median (min %.3f), %.2f ns per 32-block x token, %.1f GB/s of weights\n",
              type_name.c_str(), static_cast<long long>(out), static_cast<long long>(in), static_cast<long long>(n), threads,
              std::string(qb::kernels::IsaName(ctx.isa)).c_str(), med, ms.front(), med * 1e6 / blocks,
              static_cast<double>(w.nbytes()) / (med * 1e-3) / 1e9);
  return 0;
}
