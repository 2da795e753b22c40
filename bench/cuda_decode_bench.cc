// CUDA decode/prefill benchmark on a random-weight Qwen2.5-7B-shape model built directly in GPU
// memory (no checkpoint file): measured HBM bandwidth (device-to-device copy), then for BF16 and
// INT4 (group 128) weights: batch-1 decode tok/s with the weight-read bandwidth it implies (every
// matrix is read once per step) and its share of the measured HBM bandwidth, with and without
// CUDA graphs; aggregate decode tok/s at 8 and 32 sequences with 512 tokens of context each in
// the paged KV cache; prefill tok/s of a 512-token prompt; and GEMV vs cuBLAS per matrix shape.
// Times are medians of several runs after warm-up; a step is timed from staging its inputs to
// the end of its kernels (wall clock, synchronized), as the engine would see it.
//
//   cuda_decode_bench [--quick] [--json PATH] [--formats bf16,int4] [--steps N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_api.h"
#include "model/qwen2_cuda.h"
#include "util/json.h"

namespace {

using qb::CudaModelOptions;
using qb::CudaQwen2Model;
using qb::ForwardBatch;
namespace cuda = qb::cuda;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double NowMs() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Device-to-device copy: bytes read + bytes written per second (GB/s).
double MeasureHbm(size_t bytes, int reps) {
  cuda::DeviceBuffer a(bytes), b(bytes);
  cuda::MemsetAsync(a.get(), 1, bytes);
  cuda::EventTimer timer;
  std::vector<double> gbs;
  for (int i = 0; i < reps + 2; ++i) {
    timer.Start();
    cuda::CopyDeviceToDevice(b.get(), a.get(), bytes);
    const double ms = timer.StopMs();
    if (i >= 2) gbs.push_back(2.0 * static_cast<double>(bytes) / (ms * 1e6));
  }
  return Median(gbs);
}

qb::ModelConfig Qwen7B() {
  qb::ModelConfig c;
  c.hidden_size = 3584;
  c.num_layers = 28;
  c.num_heads = 28;
  c.num_kv_heads = 4;
  c.head_dim = 128;
  c.intermediate_size = 18944;
  c.vocab_size = 152064;
  c.rope_theta = 1e6;
  c.rms_norm_eps = 1e-6;
  return c;
}

struct Seqs {
  std::vector<std::vector<int32_t>> tables;
};

// A step of `batch` sequences, each one token at position `pos` (block tables: disjoint ranges).
ForwardBatch DecodeStep(const Seqs& s, int batch, int32_t pos, int64_t block_size) {
  ForwardBatch b;
  for (int i = 0; i < batch; ++i) {
    const auto& t = s.tables[static_cast<size_t>(i)];
    b.tokens.push_back((i * 7919 + pos) % 150000);
    b.positions.push_back(pos);
    b.slots.push_back(t[static_cast<size_t>(pos / block_size)] * static_cast<int32_t>(block_size) +
                      pos % static_cast<int32_t>(block_size));
    b.tables.emplace_back(t);
    b.logit_rows.push_back(i);
  }
  return b;
}

// Median wall time of `steps` synchronized steps after `warmup`.
template <typename F>
double TimeSteps(int warmup, int steps, F step) {
  std::vector<double> ms;
  for (int i = 0; i < warmup + steps; ++i) {
    const double t0 = NowMs();
    step(i);
    cuda::Synchronize();
    if (i >= warmup) ms.push_back(NowMs() - t0);
  }
  return Median(ms);
}

void Check(const qb::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string json_path, formats = "bf16,int4";
  int steps = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else if (a == "--formats" && i + 1 < argc) {
      formats = argv[++i];
    } else if (a == "--steps" && i + 1 < argc) {
      steps = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--json PATH] [--formats bf16,int4] [--steps N]\n", argv[0]);
      return 2;
    }
  }
  if (steps <= 0) steps = quick ? 10 : 30;
  if (cuda::DeviceCount() == 0) {
    std::fprintf(stderr, "no CUDA device: %s\n", cuda::NoDeviceReason().c_str());
    return 1;
  }
  cuda::Initialize();
  qb::Json out;
  out["device"] = cuda::DeviceDescription();
  std::printf("device: %s\n", cuda::DeviceDescription().c_str());
  const double hbm = MeasureHbm(size_t{quick ? 1u : 2u} << 30, quick ? 5 : 10);
  out["hbm_copy_gbs"] = hbm;
  std::printf("HBM bandwidth (device-to-device copy, read + write): %.0f GB/s\n\n", hbm);

  const qb::ModelConfig cfg = Qwen7B();
  const int ctx = 512;
  const std::vector<int> batches = {1, 8, 32};
  CudaModelOptions o;
  o.max_tokens = 512;
  o.max_logit_rows = 32;
  o.max_seqs = 32;
  o.block_size = 16;
  o.max_blocks_per_seq = (ctx + 2 * steps + 64) / 16 + 1;
  o.num_blocks = o.max_seqs * o.max_blocks_per_seq;
  o.kv_dtype = qb::DType::kBF16;
  o.graph_max_tokens = 32;
  Seqs seqs;
  for (int i = 0; i < o.max_seqs; ++i) {
    seqs.tables.emplace_back();
    for (int64_t b = 0; b < o.max_blocks_per_seq; ++b)
      seqs.tables.back().push_back(static_cast<int32_t>(i * o.max_blocks_per_seq + b));
  }

  std::printf("%-5s %-28s %10s %10s %12s %8s\n", "fmt", "measurement", "ms/step", "tok/s", "weights GB/s", "% HBM");
  for (const std::string fmt : {"bf16", "int4"}) {
    if (formats.find(fmt) == std::string::npos) continue;
    const auto wf = fmt == "bf16" ? cuda::WeightFormat::kBF16 : cuda::WeightFormat::kInt4;
    auto created = CudaQwen2Model::CreateRandom(cfg, wf, 128, 1234, o);
    Check(created.status());
    CudaQwen2Model& m = **created;
    const double wbytes = static_cast<double>(m.weights().MatrixBytes());
    qb::Json jf;
    jf["weight_bytes_per_token"] = wbytes;
    jf["kv_pool_bytes"] = m.kv_pool_bytes();
    auto row = [&](const std::string& what, double ms, int tokens, bool bw) {
      const double tps = tokens * 1000.0 / ms;
      if (bw) {
        const double gbs = wbytes / (ms * 1e6);
        std::printf("%-5s %-28s %10.3f %10.1f %12.0f %7.1f%%\n", fmt.c_str(), what.c_str(), ms, tps, gbs, 100 * gbs / hbm);
        jf[what] = {{"ms", ms}, {"tok_s", tps}, {"weight_gbs", gbs}, {"pct_hbm", 100 * gbs / hbm}};
      } else {
        std::printf("%-5s %-28s %10.3f %10.1f %12s %8s\n", fmt.c_str(), what.c_str(), ms, tps, "", "");
        jf[what] = {{"ms", ms}, {"tok_s", tps}};
      }
    };
    // Prefill: one 512-token prompt (sequence 0), logits of its last token.
    {
      ForwardBatch b;
      for (int p = 0; p < ctx; ++p) {
        b.tokens.push_back((p * 31) % 150000);
        b.positions.push_back(p);
        b.slots.push_back(seqs.tables[0][static_cast<size_t>(p / 16)] * 16 + p % 16);
        b.tables.emplace_back(seqs.tables[0]);
      }
      b.logit_rows.push_back(ctx - 1);
      m.set_use_graphs(false);
      const double ms = TimeSteps(1, quick ? 3 : 5, [&](int) { Check(m.Enqueue(b)); });
      row("prefill 512", ms, ctx, false);
    }
    // Decode: every sequence has `ctx` tokens before the first timed step (their KV contents
    // do not change the work, so the pool is not filled first).
    for (int batch : batches) {
      for (bool graphs : {false, true}) {
        m.set_use_graphs(graphs);
        const double ms = TimeSteps(3, steps, [&](int i) {
          Check(m.Enqueue(DecodeStep(seqs, batch, static_cast<int32_t>(ctx + i), o.block_size)));
        });
        row("decode b=" + std::to_string(batch) + (graphs ? " graphs" : " no graphs"), ms, batch, batch == 1);
      }
    }
    // GEMV vs cuBLAS per matrix of layer 0 (and the lm_head), 1 and 8 tokens.
    {
      const auto& l = m.weights().layers[0];
      const std::vector<std::pair<std::string, cuda::DeviceMatrix>> mats = {
          {"qkv", l.qkv.parts[0]}, {"o", l.o.parts[0]}, {"gate_up", l.gate_up.parts[0]},
          {"down", l.down.parts[0]}, {"lm_head", m.weights().lm_head.parts[0]}};
      cuda::DeviceBuffer x(size_t{32} * 18944 * 4), y(size_t{32} * 152064 * 4);
      cuda::MemsetAsync(x.get(), 0, x.bytes());
      cuda::DeviceBuffer act(size_t{32} * 18944 * 4), wscr(size_t{37888} * 3584 * 2);
      const cuda::LinearScratch scratch{act.get(), act.bytes(), wscr.get(), wscr.bytes()};
      cuda::EventTimer timer;
      for (const auto& [name, w] : mats) {
        for (int n : {1, 4, 8}) {
          if (w.format == cuda::WeightFormat::kInt4 && n > cuda::GemvMaxTokens(w.format)) continue;
          double t_gemv = 0, t_gemm = 0;
          for (auto path : {cuda::LinearPath::kGemv, cuda::LinearPath::kGemm}) {
            std::vector<double> ms;
            for (int r = 0; r < 8; ++r) {
              timer.Start();
              cuda::Linear(x.as<float>(), n, w, nullptr, y.as<float>(), w.rows, scratch, path);
              if (r >= 2) ms.push_back(timer.StopMs());
              else timer.StopMs();
            }
            (path == cuda::LinearPath::kGemv ? t_gemv : t_gemm) = Median(ms);
          }
          std::printf("%-5s linear %-8s %6lldx%-6lld n=%d: GEMV %8.1f us (%5.0f GB/s)  cuBLAS %8.1f us\n", fmt.c_str(),
                      name.c_str(), static_cast<long long>(w.rows), static_cast<long long>(w.cols), n, t_gemv * 1e3,
                      static_cast<double>(w.bytes()) / (t_gemv * 1e6), t_gemm * 1e3);
          jf["linear"][name + "_n" + std::to_string(n)] = {{"gemv_us", t_gemv * 1e3}, {"cublas_us", t_gemm * 1e3},
                                                           {"bytes", w.bytes()}};
        }
      }
    }
    out[fmt] = jf;
    std::printf("\n");
  }
  if (out.contains("bf16") && out.contains("int4")) {
    const double r = out["int4"]["decode b=1 graphs"]["tok_s"].get<double>() /
                     out["bf16"]["decode b=1 graphs"]["tok_s"].get<double>();
    out["int4_over_bf16_b1"] = r;
    std::printf("INT4 / BF16 decode speed at batch 1 (graphs): %.2fx\n", r);
  }
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  return 0;
}
