// CUDA decode/prefill benchmark on a random-weight Qwen2.5-7B-shape model built directly in GPU
// memory (no checkpoint file): measured HBM bandwidth (device-to-device copy), then for BF16,
// INT4 (group 128) in the CUDA-core GEMV layout ("int4") and INT4 in the tensor-core layout
// ("int4tc", what serving uses): batch-1 decode tok/s with the weight-read bandwidth it implies
// (every matrix is read once per step) and its share of the measured HBM bandwidth, with and
// without CUDA graphs; aggregate decode tok/s at 8 and 32 sequences with 512 tokens of context
// each in the paged KV cache; prefill tok/s of a 512-token prompt; a per-kernel-class profile of
// one decode step (b=1 and 8); and the linear layers per shape (GEMV, v3 for int4, cuBLAS).
// Times are medians of several runs after warm-up; a step is timed from staging its inputs to
// the end of its kernels (wall clock, synchronized), as the engine would see it.
//
//   cuda_decode_bench [--quick] [--json PATH] [--formats bf16,int4,int4tc] [--steps N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/cuda_api.h"
#include "model/presets.h"
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

// Decode attention alone, Qwen2.5-7B heads (28 over 4 KV heads of 128, bf16 pool, blocks of
// 16): one launch's share of 28 back-to-back launches over 28 layers' own pools (as in a step),
// queued behind a spinning kernel so that they run back to back, median of 5, for each split
// target (blocks per SM; "none": one block per (token, head)) and keys per warp tile ("/t4",
// "/t8"). Zeroed pools: the time does not depend on the values.
void AttentionBench(qb::Json& out) {
  constexpr int kLayers = 28, kHeads = 28, kKvHeads = 4, kHeadDim = 128, kBlock = 16, kMaxSeqs = 8, kMaxKeys = 4096;
  const int64_t kv_ld = kKvHeads * kHeadDim;
  const int64_t blocks_per_seq = kMaxKeys / kBlock, rows = kMaxSeqs * blocks_per_seq * kBlock;
  std::vector<cuda::DeviceBuffer> k, v;
  for (int l = 0; l < kLayers; ++l) {
    k.emplace_back(static_cast<size_t>(rows * kv_ld) * 2);
    v.emplace_back(static_cast<size_t>(rows * kv_ld) * 2);
    cuda::MemsetAsync(k.back().get(), 0, k.back().bytes());
    cuda::MemsetAsync(v.back().get(), 0, v.back().bytes());
  }
  cuda::DeviceBuffer q(static_cast<size_t>(kMaxSeqs * kHeads * kHeadDim) * 4), o(q.bytes());
  cuda::MemsetAsync(q.get(), 0, q.bytes());
  cuda::DeviceBuffer partial(cuda::AttentionScratchBytes(kHeadDim));
  std::vector<int32_t> tables(static_cast<size_t>(kMaxSeqs * blocks_per_seq));
  for (size_t i = 0; i < tables.size(); ++i) tables[i] = static_cast<int32_t>(i);
  cuda::DeviceBuffer d_tables(tables.size() * 4), d_pos(kMaxSeqs * 4), d_seq(kMaxSeqs * 4);
  cuda::CopyToDevice(d_tables.get(), tables.data(), tables.size() * 4);
  cuda::EventTimer timer;
  std::printf("decode attention, 7B heads, one layer (us):\n");
  for (const int batch : {1, 8}) {
    std::vector<int32_t> seq(static_cast<size_t>(batch));
    for (int b = 0; b < batch; ++b) seq[static_cast<size_t>(b)] = b;
    cuda::CopyToDevice(d_seq.get(), seq.data(), seq.size() * 4);
    for (const int keys : {512, 4096}) {
      const std::vector<int32_t> pos(static_cast<size_t>(batch), keys - 1);
      cuda::CopyToDevice(d_pos.get(), pos.data(), pos.size() * 4);
      std::printf("  attention b=%d keys=%-5d", batch, keys);
      cuda::AttentionArgs a;
      a.q = q.as<float>();
      a.q_ld = kHeads * kHeadDim;
      a.n = batch;
      a.n_heads = kHeads;
      a.n_kv_heads = kKvHeads;
      a.head_dim = kHeadDim;
      a.kv_type = qb::DType::kBF16;
      a.block_size = kBlock;
      a.positions = d_pos.as<int32_t>();
      a.seq_of_token = d_seq.as<int32_t>();
      a.tables = d_tables.as<int32_t>();
      a.table_stride = blocks_per_seq;
      a.scale = 0.088f;
      a.out = o.as<float>();
      a.out_ld = kHeads * kHeadDim;
      for (const auto& [target, tile] : std::vector<std::pair<int, int>>{
               {0, 4}, {0, 8}, {1, 4}, {1, 8}, {2, 4}, {2, 8}, {4, 4}, {4, 8}, {8, 4}, {8, 8}, {16, 4}, {16, 8}}) {
        cuda::SetAttentionKeyTile(tile);
        cuda::SetAttentionSplitBlocksPerSm(target > 0 ? target : 4);
        a.partial = target > 0 ? partial.as<float>() : nullptr;
        a.partial_bytes = target > 0 ? partial.bytes() : 0;
        std::vector<double> us;
        for (int r = 0; r < 6; ++r) {
          cuda::SpinWait(3000);  // the launches queue behind it: the events time the GPU, not the host
          timer.Start();
          for (int l = 0; l < kLayers; ++l) {
            a.k = k[static_cast<size_t>(l)].get();
            a.v = v[static_cast<size_t>(l)].get();
            cuda::Attention(a);
          }
          const double ms = timer.StopMs();
          if (r >= 1) us.push_back(ms * 1e3 / kLayers);
        }
        const double t = Median(us);
        char label[32], key[32];
        if (target > 0)
          std::snprintf(label, sizeof label, "split%d/t%d", target, tile);
        else
          std::snprintf(label, sizeof label, "none/t%d", tile);
        std::snprintf(key, sizeof key, "b%d_keys%d", batch, keys);
        std::printf("  %s %6.1f", label, t);
        out["attention"][key][std::string(label) + "_us"] = t;
      }
      std::printf("\n");
    }
  }
  cuda::SetAttentionSplitBlocksPerSm(4);
  cuda::SetAttentionKeyTile(4);
  std::printf("\n");
}

// The published Qwen2.5-7B shape (model/presets.cc).
qb::ModelConfig Qwen7B() { return qb::FindPreset("qwen2.5-7b").value().config; }

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
  std::string json_path, formats = "bf16,int4,int4tc";
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
      std::fprintf(stderr, "usage: %s [--quick] [--json PATH] [--formats bf16,int4,int4tc] [--steps N]\n", argv[0]);
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
  AttentionBench(out);

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

  std::printf("%-6s %-28s %10s %10s %12s %8s\n", "fmt", "measurement", "ms/step", "tok/s", "weights GB/s", "% HBM");
  std::vector<std::string> wanted;
  for (size_t at = 0; at <= formats.size();) {
    const size_t comma = std::min(formats.find(',', at), formats.size());
    wanted.push_back(formats.substr(at, comma - at));
    at = comma + 1;
  }
  for (const std::string fmt : {"bf16", "int4", "int4tc"}) {
    if (std::find(wanted.begin(), wanted.end(), fmt) == wanted.end()) continue;
    const auto wf = fmt == "bf16" ? cuda::WeightFormat::kBF16 : cuda::WeightFormat::kInt4;
    o.int4_tensor_cores = fmt == "int4tc";
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
        std::printf("%-6s %-28s %10.3f %10.1f %12.0f %7.1f%%\n", fmt.c_str(), what.c_str(), ms, tps, gbs, 100 * gbs / hbm);
        jf[what] = {{"ms", ms}, {"tok_s", tps}, {"weight_gbs", gbs}, {"pct_hbm", 100 * gbs / hbm}};
      } else {
        std::printf("%-6s %-28s %10.3f %10.1f %12s %8s\n", fmt.c_str(), what.c_str(), ms, tps, "", "");
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
    // Decode steps with graphs under other kernel choices, for comparison on the same model.
    auto decode_with = [&](bool fused, int gemv_version, std::initializer_list<int> batches_here) {
      m.set_fused_ops(fused);
      cuda::SetGemvVersion(gemv_version);
      m.set_use_graphs(true);
      for (int batch : batches_here) {
        const double ms = TimeSteps(3, steps, [&](int i) {
          Check(m.Enqueue(DecodeStep(seqs, batch, static_cast<int32_t>(ctx + i), o.block_size)));
        });
        row("decode b=" + std::to_string(batch) + " graphs v" + std::to_string(gemv_version), ms, batch, batch == 1);
      }
    };
    if (fmt == "int4") decode_with(true, 3, {1, 4});  // the int4 GEMV candidate v3, fused ops
    if (fmt == "int4tc") {
      // Variants of the tensor-core kernel (int4_mma.cu: tiles per block, chunks loaded ahead,
      // blocks per SM) for 1-8 tokens, and one 16-row tile per block instead of two for 9-32.
      m.set_use_graphs(true);
      for (int v = 1; v < cuda::kInt4MmaVariants; ++v) {
        cuda::SetInt4MmaVariant(v);
        const double ms = TimeSteps(3, steps, [&](int i) {
          Check(m.Enqueue(DecodeStep(seqs, 1, static_cast<int32_t>(ctx + i), o.block_size)));
        });
        row("decode b=1 graphs variant " + std::to_string(v), ms, 1, true);
      }
      // The lean kernel (variants 5-7) serves 9-32 tokens too: batches 8 and 32 with it.
      cuda::SetInt4MmaVariant(5);
      for (int batch : {8, 32}) {
        const double ms = TimeSteps(3, steps, [&](int i) {
          Check(m.Enqueue(DecodeStep(seqs, batch, static_cast<int32_t>(ctx + i), o.block_size)));
        });
        row("decode b=" + std::to_string(batch) + " graphs lean", ms, batch, false);
      }
      cuda::SetInt4MmaVariant(0);
      cuda::SetInt4MmaTiles(1);
      for (int batch : {16, 32}) {
        const double ms = TimeSteps(3, steps, [&](int i) {
          Check(m.Enqueue(DecodeStep(seqs, batch, static_cast<int32_t>(ctx + i), o.block_size)));
        });
        row("decode b=" + std::to_string(batch) + " graphs 1-tile", ms, batch, false);
      }
      cuda::SetInt4MmaTiles(2);
      const double ms = TimeSteps(3, steps, [&](int i) {
        Check(m.Enqueue(DecodeStep(seqs, 16, static_cast<int32_t>(ctx + i), o.block_size)));
      });
      row("decode b=16 graphs", ms, 16, false);
    }
    // Where a decode step's time goes: each kernel class's device time (all its launches of
    // one step, run back to back behind a spinning kernel), median of 3 steps, with the fused
    // kernels + GEMV v2 (the first version's kernels were profiled in runs 1-3).
    for (int batch : {1, 8}) {
      for (const bool v2 : {true}) {
        m.set_fused_ops(v2);
        cuda::SetGemvVersion(v2 ? 2 : 1);
        cuda::EventList events;
        m.set_profiler(&events);
        std::map<std::string, std::vector<double>> per_class;
        std::map<std::string, int> launches;
        std::vector<double> totals;
        for (int rep = 0; rep < 4; ++rep) {
          Check(m.Enqueue(DecodeStep(seqs, batch, static_cast<int32_t>(ctx + rep), o.block_size)));
          events.Finish();
          if (rep == 0) continue;  // warm-up
          std::map<std::string, double> sum;
          double total = 0;
          for (const auto& [label, ms] : events.Intervals()) {
            sum[label] += ms;
            total += ms;
            if (rep == 1) ++launches[label];
          }
          for (const auto& [label, ms] : sum) per_class[label].push_back(ms);
          totals.push_back(total);
        }
        m.set_profiler(nullptr);
        const std::string tag = std::string("profile b=") + std::to_string(batch) + (v2 ? " v2" : " v1");
        const double total = Median(totals);
        std::printf("%-6s %s (%s): %.3f ms of kernels per step\n", fmt.c_str(), tag.c_str(),
                    fmt == "int4tc" ? "fused ops, tensor-core int4" : v2 ? "fused ops, GEMV v2" : "unfused ops, GEMV v1", total);
        std::vector<std::pair<double, std::string>> order;
        for (const auto& [label, v] : per_class) order.emplace_back(Median(v), label);
        std::sort(order.rbegin(), order.rend());
        for (const auto& [ms, label] : order) {
          const int count = launches[label];
          std::printf("%-6s   %-12s %3dx %8.1f us = %7.3f ms %5.1f%%\n", fmt.c_str(), label.c_str(), count,
                      ms * 1e3 / std::max(count, 1), ms, 100 * ms / total);
          jf[tag][label] = {{"ms", ms}, {"count", count}};
        }
        jf[tag]["total_ms"] = total;
      }
    }
    m.set_fused_ops(true);
    cuda::SetGemvVersion(2);
    // GEMV (v2 and v1) vs cuBLAS per matrix shape at 1, 2, 4 and 8 tokens. Each time is one
    // launch's share of 28 back-to-back launches over the 28 layers' matrices (the lm_head:
    // 4 launches on its one matrix, 1 GB), so that neither the host's launch latency nor the
    // 50 MB L2 (which would hold one 25-33 MB matrix read twice in a row) flatters it.
    {
      const auto& ls = m.weights().layers;
      const std::vector<std::string> names = {"qkv", "o", "gate_up", "down", "lm_head"};
      cuda::DeviceBuffer x(size_t{32} * 18944 * 4), y(size_t{32} * 152064 * 4);
      cuda::MemsetAsync(x.get(), 0, x.bytes());
      cuda::DeviceBuffer act(size_t{32} * 18944 * 4), wscr(size_t{37888} * 3584 * 2);
      const cuda::LinearScratch scratch{act.get(), act.bytes(), wscr.get(), wscr.bytes()};
      cuda::EventTimer timer;
      for (const std::string& name : names) {
        std::vector<cuda::DeviceMatrix> mats;
        if (name == "lm_head") {
          mats.assign(4, m.weights().lm_head.parts[0]);
        } else {
          for (const auto& l : ls)
            mats.push_back(name == "qkv" ? l.qkv.parts[0]
                                         : name == "o" ? l.o.parts[0]
                                                       : name == "gate_up" ? l.gate_up.parts[0] : l.down.parts[0]);
        }
        const cuda::DeviceMatrix& w = mats[0];
        const bool tc = w.format == cuda::WeightFormat::kInt4Mma;
        for (int n : tc ? std::vector<int>{1, 2, 4, 8, 16, 32} : std::vector<int>{1, 2, 4, 8}) {
          auto time_path = [&](cuda::LinearPath path, int version) {
            cuda::SetGemvVersion(version);
            std::vector<double> us;
            for (int r = 0; r < 4; ++r) {
              timer.Start();
              for (const auto& mat : mats) cuda::Linear(x.as<float>(), n, mat, nullptr, y.as<float>(), mat.rows, scratch, path);
              const double ms = timer.StopMs();
              if (r >= 1) us.push_back(ms * 1e3 / static_cast<double>(mats.size()));
            }
            return Median(us);
          };
          const double t_v2 = time_path(cuda::LinearPath::kGemv, 2);
          // v3 (the pipelined int4 candidate) where it applies: int4, up to 4 tokens.
          const bool has_v3 = w.format == cuda::WeightFormat::kInt4 && n <= 4;
          const double t_v3 = has_v3 ? time_path(cuda::LinearPath::kGemv, 3) : 0.0;
          const double t_gemm = time_path(cuda::LinearPath::kGemm, 2);
          double t_tile1 = 0;
          std::vector<double> t_variant;
          if (tc && n > 8) {
            cuda::SetInt4MmaTiles(1);
            t_tile1 = time_path(cuda::LinearPath::kGemv, 2);
            cuda::SetInt4MmaTiles(2);
          }
          if (tc && (n == 1 || n == 8 || n == 32)) {  // (at 32 only 5-7, the lean kernel, differ)
            for (int v = 1; v < cuda::kInt4MmaVariants; ++v) {
              cuda::SetInt4MmaVariant(v);
              t_variant.push_back(time_path(cuda::LinearPath::kGemv, 2));
            }
            cuda::SetInt4MmaVariant(0);
          }
          cuda::SetGemvVersion(2);
          const double bytes = static_cast<double>(w.bytes());
          std::printf("%-6s linear %-8s %6lldx%-6lld n=%2d: GEMV %8.1f us (%5.0f GB/s)  cuBLAS %8.1f us", fmt.c_str(),
                      name.c_str(), static_cast<long long>(w.rows), static_cast<long long>(w.cols), n, t_v2,
                      bytes / (t_v2 * 1e3), t_gemm);
          if (has_v3) std::printf("  v3 %8.1f us (%5.0f GB/s)", t_v3, bytes / (t_v3 * 1e3));
          if (t_tile1 > 0) std::printf("  1-tile %8.1f us (%5.0f GB/s)", t_tile1, bytes / (t_tile1 * 1e3));
          for (size_t v = 0; v < t_variant.size(); ++v) std::printf("  variant %zu %6.1f us", v + 1, t_variant[v]);
          std::printf("\n");
          jf["linear"][name + "_n" + std::to_string(n)] = {
              {"gemv_us", t_v2}, {"cublas_us", t_gemm}, {"bytes", w.bytes()}};
          if (has_v3) jf["linear"][name + "_n" + std::to_string(n)]["gemv_v3_us"] = t_v3;
          if (t_tile1 > 0) jf["linear"][name + "_n" + std::to_string(n)]["gemv_1tile_us"] = t_tile1;
          for (size_t v = 0; v < t_variant.size(); ++v)
            jf["linear"][name + "_n" + std::to_string(n)]["gemv_variant" + std::to_string(v + 1) + "_us"] = t_variant[v];
        }
      }
    }
    out[fmt] = jf;
    std::printf("\n");
  }
  for (const std::string fmt : {"int4", "int4tc"}) {
    if (!out.contains("bf16") || !out.contains(fmt)) continue;
    for (const int b : {1, 8, 32}) {
      const std::string key = "decode b=" + std::to_string(b) + " graphs";
      const double r = out[fmt][key]["tok_s"].get<double>() / out["bf16"][key]["tok_s"].get<double>();
      out[fmt + "_over_bf16_b" + std::to_string(b)] = r;
      std::printf("%s / BF16 decode speed at batch %d (graphs): %.2fx\n", fmt == "int4" ? "INT4 (CUDA-core GEMV)"
                                                                                      : "INT4 (tensor cores)", b, r);
    }
  }
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  return 0;
}
