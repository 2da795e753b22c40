#include "model/cuda_weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "kernels/cuda/int4_repack.h"
#include "tensor/interleave.h"
#include "util/half.h"

namespace qb {

namespace {

using cuda::DeviceBuffer;
using cuda::DeviceMatrix;
using cuda::WeightFormat;

// A matrix staged on the host in its device layout, before fusion and upload.
struct HostMatrix {
  WeightFormat format = WeightFormat::kBF16;
  int64_t rows = 0, cols = 0, group_size = 0;
  std::vector<uint8_t> data;  // bf16/f16 values or int4 code words, row-major
  std::vector<uint16_t> scale_zero;
  std::vector<int32_t> perm;  // empty: identity
};

template <typename T>
const T* Put(CudaWeights& cw, const T* data, size_t count) {
  DeviceBuffer b(count * sizeof(T));
  cuda::CopyToDevice(b.get(), data, count * sizeof(T));
  const T* p = b.as<T>();
  cw.buffers.push_back(std::move(b));
  return p;
}

void Note(CudaWeights& cw, std::set<std::string>& seen, const std::string& msg) {
  if (seen.insert(msg).second) {
    spdlog::info("cuda upload: {}", msg);
    cw.notes.push_back(msg);
  }
}

HostMatrix ToBF16(const Tensor& w) {
  HostMatrix h;
  h.rows = w.dim(0);
  h.cols = w.dim(1);
  h.data.resize(static_cast<size_t>(h.rows * h.cols * 2));
  std::vector<float> row(static_cast<size_t>(h.cols));
  auto* out = reinterpret_cast<uint16_t*>(h.data.data());
  for (int64_t r = 0; r < h.rows; ++r) {
    DequantizeMatrixRow(w.raw(), w.dtype(), h.cols, r, row.data());
    for (int64_t c = 0; c < h.cols; ++c) out[r * h.cols + c] = F32ToBF16(row[static_cast<size_t>(c)]);
  }
  return h;
}

Result<HostMatrix> Stage(CudaWeights& cw, std::set<std::string>& seen, const std::string& name, const Tensor& w,
                         const Tensor& perm) {
  QB_CHECK(w.rank() == 2 && w.device() == Device::kCpu, "{}: a CPU matrix expected", name);
  HostMatrix h;
  switch (w.dtype()) {
    case DType::kBF16:
    case DType::kF16:
      h.format = w.dtype() == DType::kBF16 ? WeightFormat::kBF16 : WeightFormat::kF16;
      h.rows = w.dim(0);
      h.cols = w.dim(1);
      h.data.resize(w.nbytes());
      std::memcpy(h.data.data(), w.raw(), w.nbytes());
      break;
    case DType::kQ4Z: {
      cuda::Int4Host p = cuda::RepackQ4Z(w.raw(), w.dim(0), w.dim(1));
      h.format = WeightFormat::kInt4;
      h.rows = p.rows;
      h.cols = p.cols;
      h.group_size = p.group_size;
      h.data.resize(p.codes.size() * 4);
      std::memcpy(h.data.data(), p.codes.data(), h.data.size());
      h.scale_zero = std::move(p.scale_zero);
      Note(cw, seen, fmt::format("GPTQ/AWQ int4 weights repacked (group size {})", h.group_size));
      break;
    }
    default:
      h = ToBF16(w);
      Note(cw, seen, fmt::format("{} weights dequantized to bf16 (no {} kernels on the GPU yet)", Name(w.dtype()),
                                 Name(w.dtype())));
  }
  if (perm.defined()) {
    QB_CHECK(perm.dtype() == DType::kI32 && perm.numel() == h.cols, "{}: bad permutation", name);
    h.perm.assign(perm.data<int32_t>(), perm.data<int32_t>() + h.cols);
  }
  const int64_t align = h.format == WeightFormat::kInt4 ? 32 : 8;
  if (h.cols % align != 0)
    return Unimplemented(fmt::format("{}: {} inputs; the CUDA kernels need a multiple of {}", name, h.cols, align));
  return h;
}

// Stacks matrices by rows into one when they agree in everything but the row count.
std::vector<HostMatrix> Fuse(std::vector<HostMatrix> parts) {
  for (const HostMatrix& p : parts)
    if (p.format != parts[0].format || p.cols != parts[0].cols || p.group_size != parts[0].group_size ||
        p.perm != parts[0].perm)
      return parts;
  HostMatrix f = std::move(parts[0]);
  for (size_t i = 1; i < parts.size(); ++i) {
    f.rows += parts[i].rows;
    f.data.insert(f.data.end(), parts[i].data.begin(), parts[i].data.end());
    f.scale_zero.insert(f.scale_zero.end(), parts[i].scale_zero.begin(), parts[i].scale_zero.end());
  }
  std::vector<HostMatrix> one;
  one.push_back(std::move(f));
  return one;
}

DeviceMatrix Upload(CudaWeights& cw, const HostMatrix& h) {
  DeviceMatrix m;
  m.format = h.format;
  m.rows = h.rows;
  m.cols = h.cols;
  m.group_size = h.group_size;
  m.data = Put(cw, h.data.data(), h.data.size());
  if (!h.scale_zero.empty()) m.scale_zero = Put(cw, h.scale_zero.data(), h.scale_zero.size());
  if (!h.perm.empty()) m.perm = Put(cw, h.perm.data(), h.perm.size());
  return m;
}

CudaLinear MakeLinear(CudaWeights& cw, std::vector<HostMatrix> parts, const std::vector<const Tensor*>& biases) {
  CudaLinear lin;
  std::vector<float> bias;
  bool any_bias = false;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Tensor* b = i < biases.size() ? biases[i] : nullptr;
    if (b != nullptr && b->defined()) {
      QB_CHECK(b->dtype() == DType::kF32 && b->numel() == parts[i].rows, "bias of {} for {} rows", b->numel(),
               parts[i].rows);
      bias.insert(bias.end(), b->data<float>(), b->data<float>() + b->numel());
      any_bias = true;
    } else {
      bias.insert(bias.end(), static_cast<size_t>(parts[i].rows), 0.f);
    }
  }
  for (HostMatrix& p : Fuse(std::move(parts))) {
    lin.offsets.push_back(lin.out);
    lin.out += p.rows;
    lin.parts.push_back(Upload(cw, p));
  }
  if (any_bias) lin.bias = Put(cw, bias.data(), bias.size());
  return lin;
}

const float* PutF32(CudaWeights& cw, const Tensor& t) {
  QB_CHECK(t.dtype() == DType::kF32, "norm weights must be f32");
  return Put(cw, t.data<float>(), static_cast<size_t>(t.numel()));
}

}  // namespace

namespace {

// Calls fn on every device matrix of the model (each layer's linears, then the lm_head).
template <typename Fn>
void ForEachMatrix(const CudaWeights& w, Fn&& fn) {
  auto visit = [&](const CudaLinear& l) {
    for (const auto& p : l.parts) fn(p);
  };
  for (const CudaLayer& l : w.layers) {
    visit(l.qkv);
    visit(l.o);
    visit(l.gate_up);
    visit(l.down);
  }
  visit(w.lm_head);
}

}  // namespace

int64_t CudaWeights::MatrixBytes() const {
  int64_t b = 0;
  ForEachMatrix(*this, [&](const auto& p) { b += p.bytes(); });
  return b;
}

int64_t CudaWeights::MaxInt4Elements() const {
  int64_t m = 0;
  ForEachMatrix(*this, [&](const auto& p) {
    if (p.format == WeightFormat::kInt4 || p.format == WeightFormat::kInt4Mma) m = std::max(m, p.rows * p.cols);
  });
  return m;
}

int64_t CudaWeights::MaxInputFeatures() const {
  int64_t m = 0;
  ForEachMatrix(*this, [&](const auto& p) { m = std::max(m, p.cols); });
  return m;
}

int UseInt4TensorCoreLayout(CudaWeights& w) {
  int repacked = 0;
  auto convert = [&](CudaLinear& l) {
    for (DeviceMatrix& m : l.parts) {
      if (m.format != WeightFormat::kInt4 || !cuda::Int4MmaSupported(m)) continue;
      DeviceBuffer codes(static_cast<size_t>(cuda::Int4MmaCodeBytes(m.rows, m.cols)));
      const void* old = m.data;
      m = cuda::RepackInt4ForMma(m, codes.get());
      cuda::Synchronize();  // the old codes are read until here
      auto it = std::find_if(w.buffers.begin(), w.buffers.end(), [&](const DeviceBuffer& b) { return b.get() == old; });
      if (it != w.buffers.end())
        *it = std::move(codes);  // frees the row-major codes
      else
        w.buffers.push_back(std::move(codes));
      ++repacked;
    }
  };
  for (CudaLayer& l : w.layers) {
    convert(l.qkv);
    convert(l.o);
    convert(l.gate_up);
    convert(l.down);
  }
  convert(w.lm_head);
  return repacked;
}

Result<CudaWeights> UploadWeights(const ModelConfig& c, const Qwen2Weights& w) {
  cuda::Initialize();
  CudaWeights cw;
  std::set<std::string> seen;
  auto stage = [&](const std::string& name, const Tensor& t, const Tensor& perm) { return Stage(cw, seen, name, t, perm); };

  // Embedding: looked up row by row, so any float type works as is; others become bf16.
  const Tensor& emb = w.token_embedding;
  const bool tied = w.lm_head.raw() == emb.raw();
  const bool emb_native = emb.dtype() == DType::kBF16 || emb.dtype() == DType::kF16 ||
                          (emb.dtype() == DType::kF32 && !tied);
  if (emb_native) {
    cw.embedding = Put(cw, static_cast<const uint8_t*>(emb.raw()), emb.nbytes());
    cw.embedding_type = emb.dtype();
  } else {
    QB_ASSIGN_OR_RETURN(HostMatrix h, stage("token_embedding", emb, Tensor()));
    if (h.format == WeightFormat::kInt4) h = ToBF16(emb);
    cw.embedding = Put(cw, h.data.data(), h.data.size());
    cw.embedding_type = h.format == WeightFormat::kF16 ? DType::kF16 : DType::kBF16;
    Note(cw, seen, fmt::format("{} embedding stored as {}", Name(emb.dtype()), Name(cw.embedding_type)));
  }
  if (tied) {
    // The lm_head reads the embedding table itself (now bf16 or f16).
    DeviceMatrix m;
    m.format = cw.embedding_type == DType::kF16 ? WeightFormat::kF16 : WeightFormat::kBF16;
    m.rows = emb.dim(0);
    m.cols = emb.dim(1);
    m.data = cw.embedding;
    cw.lm_head.parts.push_back(m);
    cw.lm_head.offsets.push_back(0);
    cw.lm_head.out = m.rows;
  } else {
    QB_ASSIGN_OR_RETURN(HostMatrix h, stage("lm_head", w.lm_head, Tensor()));
    std::vector<HostMatrix> v;
    v.push_back(std::move(h));
    cw.lm_head = MakeLinear(cw, std::move(v), {});
  }

  for (size_t i = 0; i < w.layers.size(); ++i) {
    const LayerWeights& l = w.layers[i];
    const std::string p = fmt::format("layer {} ", i);
    CudaLayer cl;
    cl.attn_norm = PutF32(cw, l.attn_norm);
    cl.ffn_norm = PutF32(cw, l.ffn_norm);
    std::vector<HostMatrix> qkv, o, gu, down;
    QB_ASSIGN_OR_RETURN(HostMatrix q, stage(p + "q_proj", l.wq, l.wq_perm));
    QB_ASSIGN_OR_RETURN(HostMatrix k, stage(p + "k_proj", l.wk, l.wk_perm));
    QB_ASSIGN_OR_RETURN(HostMatrix v, stage(p + "v_proj", l.wv, l.wv_perm));
    QB_ASSIGN_OR_RETURN(HostMatrix wo, stage(p + "o_proj", l.wo, l.wo_perm));
    QB_ASSIGN_OR_RETURN(HostMatrix g, stage(p + "gate_proj", l.w_gate, l.gate_perm));
    QB_ASSIGN_OR_RETURN(HostMatrix u, stage(p + "up_proj", l.w_up, l.up_perm));
    QB_ASSIGN_OR_RETURN(HostMatrix d, stage(p + "down_proj", l.w_down, l.down_perm));
    qkv.push_back(std::move(q));
    qkv.push_back(std::move(k));
    qkv.push_back(std::move(v));
    o.push_back(std::move(wo));
    gu.push_back(std::move(g));
    gu.push_back(std::move(u));
    down.push_back(std::move(d));
    cl.qkv = MakeLinear(cw, std::move(qkv), {&l.bq, &l.bk, &l.bv});
    cl.o = MakeLinear(cw, std::move(o), {});
    cl.gate_up = MakeLinear(cw, std::move(gu), {});
    cl.down = MakeLinear(cw, std::move(down), {});
    if (cl.qkv.out != c.q_dim() + 2 * c.kv_dim() || cl.gate_up.out != 2 * c.intermediate_size)
      return InvalidArgument(fmt::format("{}: matrix shapes do not match the config", p));
    cw.layers.push_back(std::move(cl));
  }
  cw.final_norm = PutF32(cw, w.final_norm);
  cuda::Synchronize();
  return cw;
}

CudaWeights RandomWeights(const ModelConfig& c, WeightFormat format, int64_t group_size, uint64_t seed) {
  cuda::Initialize();
  CudaWeights cw;
  uint64_t next = seed;
  auto alloc = [&](size_t bytes) {
    cw.buffers.emplace_back(bytes);
    return cw.buffers.back().get();
  };
  auto matrix = [&](WeightFormat f, int64_t rows, int64_t cols) {
    DeviceMatrix m;
    m.format = f;
    m.rows = rows;
    m.cols = cols;
    if (f == WeightFormat::kInt4) {
      m.group_size = group_size;
      void* codes = alloc(static_cast<size_t>(rows * cols / 2));
      void* sz = alloc(static_cast<size_t>(rows * (cols / group_size) * 4));
      cuda::FillRandomInt4(static_cast<uint32_t*>(codes), rows * cols / 8, ++next);
      // w = s (q - 8): E[(q - 8)^2] = 21.5 and s averages 0.75 of `scale`.
      cuda::FillInt4ScaleZero(sz, rows * (cols / group_size), 1.f / (0.75f * 4.64f * std::sqrt(float(cols))), ++next);
      m.data = codes;
      m.scale_zero = sz;
    } else {
      void* p = alloc(static_cast<size_t>(rows * cols * 2));
      cuda::FillRandom(p, f == WeightFormat::kF16 ? DType::kF16 : DType::kBF16, rows * cols,
                       std::sqrt(3.f / float(cols)), ++next);
      m.data = p;
    }
    return m;
  };
  auto linear = [&](WeightFormat f, int64_t rows, int64_t cols, bool bias) {
    CudaLinear l;
    l.parts.push_back(matrix(f, rows, cols));
    l.offsets.push_back(0);
    l.out = rows;
    if (bias) {
      auto* b = static_cast<float*>(alloc(static_cast<size_t>(rows) * 4));
      cuda::FillConstant(b, rows, 0.f);
      l.bias = b;
    }
    return l;
  };
  auto ones = [&](int64_t n) {
    auto* p = static_cast<float*>(alloc(static_cast<size_t>(n) * 4));
    cuda::FillConstant(p, n, 1.f);
    return p;
  };
  void* emb = alloc(static_cast<size_t>(c.vocab_size * c.hidden_size * 2));
  cuda::FillRandom(emb, DType::kBF16, c.vocab_size * c.hidden_size, 1.f, ++next);
  cw.embedding = emb;
  cw.embedding_type = DType::kBF16;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    CudaLayer l;
    l.attn_norm = ones(c.hidden_size);
    l.ffn_norm = ones(c.hidden_size);
    l.qkv = linear(format, c.q_dim() + 2 * c.kv_dim(), c.hidden_size, true);
    l.o = linear(format, c.hidden_size, c.q_dim(), false);
    l.gate_up = linear(format, 2 * c.intermediate_size, c.hidden_size, false);
    l.down = linear(format, c.hidden_size, c.intermediate_size, false);
    cw.layers.push_back(std::move(l));
  }
  cw.final_norm = ones(c.hidden_size);
  cw.lm_head = linear(format == WeightFormat::kF16 ? WeightFormat::kF16 : WeightFormat::kBF16, c.vocab_size,
                      c.hidden_size, false);
  cuda::Synchronize();
  return cw;
}

}  // namespace qb
