#include "model/qwen2_cuda.h"

#include <cmath>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "model/rope.h"

namespace qb {

namespace {

Status CheckShapes(const ModelConfig& c, const CudaModelOptions& o) {
  if (!cuda::AttentionSupportsHeadDim(c.head_dim))
    return Unimplemented(fmt::format("CUDA attention does not support head_dim {}", c.head_dim));
  if (c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0)
    return InvalidArgument(fmt::format("{} heads over {} kv heads", c.num_heads, c.num_kv_heads));
  if (o.max_tokens <= 0 || o.max_logit_rows <= 0 || o.max_logit_rows > o.max_tokens || o.max_seqs <= 0 ||
      o.max_blocks_per_seq <= 0 || o.num_blocks <= 0 || o.block_size <= 0)
    return InvalidArgument("CUDA model options: sizes must be positive (and max_logit_rows <= max_tokens)");
  if (o.kv_dtype != DType::kBF16 && o.kv_dtype != DType::kF16 && o.kv_dtype != DType::kF32)
    return InvalidArgument(fmt::format("KV cache dtype {} (bf16, f16 or f32)", Name(o.kv_dtype)));
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<CudaQwen2Model>> CudaQwen2Model::Create(const ModelConfig& config, const Qwen2Weights& weights,
                                                               const CudaModelOptions& options) {
  QB_RETURN_IF_ERROR(CheckShapes(config, options));
  QB_ASSIGN_OR_RETURN(CudaWeights w, UploadWeights(config, weights));
  return std::unique_ptr<CudaQwen2Model>(new CudaQwen2Model(config, std::move(w), options));
}

Result<std::unique_ptr<CudaQwen2Model>> CudaQwen2Model::CreateRandom(const ModelConfig& config, cuda::WeightFormat format,
                                                                     int64_t group_size, uint64_t seed,
                                                                     const CudaModelOptions& options) {
  QB_RETURN_IF_ERROR(CheckShapes(config, options));
  if (format == cuda::WeightFormat::kInt4 &&
      (group_size <= 0 || group_size % 32 != 0 || config.hidden_size % group_size != 0 ||
       config.intermediate_size % group_size != 0 || config.q_dim() % group_size != 0))
    return InvalidArgument(fmt::format("int4 group size {} does not divide the model's widths", group_size));
  return std::unique_ptr<CudaQwen2Model>(
      new CudaQwen2Model(config, RandomWeights(config, format, group_size, seed), options));
}

Result<std::unique_ptr<CudaQwen2Model>> CudaQwen2Model::FromWeights(const ModelConfig& config, CudaWeights weights,
                                                                    const CudaModelOptions& options) {
  QB_RETURN_IF_ERROR(CheckShapes(config, options));
  return std::unique_ptr<CudaQwen2Model>(new CudaQwen2Model(config, std::move(weights), options));
}

CudaWeights CudaQwen2Model::TakeWeights() {
  cuda::Synchronize();
  graphs_.clear();
  return std::move(weights_);
}

CudaQwen2Model::CudaQwen2Model(ModelConfig config, CudaWeights weights, const CudaModelOptions& options)
    : config_(std::move(config)), weights_(std::move(weights)), options_(options) {
  if (options_.int4_tensor_cores) {
    const int repacked = UseInt4TensorCoreLayout(weights_);
    if (repacked > 0) spdlog::info("cuda: {} int4 matrices in the tensor-core layout", repacked);
  }
  AllocateState();
}

CudaQwen2Model::~CudaQwen2Model() {
  graphs_.clear();
  cuda::Synchronize();  // nothing may still read the buffers freed below
  cuda::FreeHost(host_in_);
}

int64_t CudaQwen2Model::kv_pool_bytes() const {
  return 2 * config_.num_layers * options_.num_blocks * options_.block_size *
         RowBytes(options_.kv_dtype, config_.kv_dim());
}

void CudaQwen2Model::AllocateState() {
  const ModelConfig& c = config_;
  const CudaModelOptions& o = options_;
  auto alloc = [&](size_t bytes) {
    state_.emplace_back(bytes);
    cuda::MemsetAsync(state_.back().get(), 0, bytes);
    return state_.back().get();
  };
  auto floats = [&](int64_t rows, int64_t cols) {
    return static_cast<float*>(alloc(static_cast<size_t>(rows * cols) * sizeof(float)));
  };
  const size_t pool_bytes =
      static_cast<size_t>(o.num_blocks * o.block_size * RowBytes(o.kv_dtype, c.kv_dim()));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    k_pool_.push_back(alloc(pool_bytes));
    v_pool_.push_back(alloc(pool_bytes));
  }
  const kernels::RopeTable rope = MakeRopeTable(c);
  rope_scale_ = rope.attention_scale;
  auto* inv = floats(1, static_cast<int64_t>(rope.inv_freq.size()));
  cuda::CopyToDevice(inv, rope.inv_freq.data(), rope.inv_freq.size() * sizeof(float));
  inv_freq_ = inv;

  const int64_t t = o.max_tokens;
  x_ = floats(t, c.hidden_size);
  h_ = floats(t, c.hidden_size);
  qkv_ = floats(t, c.q_dim() + 2 * c.kv_dim());
  attn_ = floats(t, c.q_dim());
  proj_ = floats(t, c.hidden_size);
  gu_ = floats(t, 2 * c.intermediate_size);
  act_ = floats(t, c.intermediate_size);
  last_ = floats(o.max_logit_rows, c.hidden_size);
  logits_ = floats(o.max_logit_rows, c.vocab_size);

  scratch_.act_bytes = static_cast<size_t>(t * weights_.MaxInputFeatures()) * sizeof(float);
  scratch_.act = alloc(scratch_.act_bytes);
  const int64_t int4 = weights_.MaxInt4Elements();
  // GEMV v1 takes int4 up to 4 tokens, v2 up to 8, and the version can change at run time.
  if (int4 > 0 && (t > 4 || o.linear_path == cuda::LinearPath::kGemm)) {
    scratch_.weight_bytes = static_cast<size_t>(int4) * 2;
    scratch_.weights = alloc(scratch_.weight_bytes);
  }

  attn_partial_bytes_ = cuda::AttentionScratchBytes(c.head_dim);
  attn_partial_ = static_cast<float*>(alloc(attn_partial_bytes_));

  off_tokens_ = 0;
  off_pos_ = t;
  off_slots_ = 2 * t;
  off_seq_ = 3 * t;
  off_rows_ = 4 * t;
  off_tables_ = 4 * t + o.max_logit_rows;
  staged_ints_ = off_tables_ + o.max_seqs * o.max_blocks_per_seq;
  dev_in_ = static_cast<int32_t*>(alloc(static_cast<size_t>(staged_ints_) * sizeof(int32_t)));
  host_in_ = static_cast<int32_t*>(cuda::MallocHost(static_cast<size_t>(staged_ints_) * sizeof(int32_t)));
  std::memset(host_in_, 0, static_cast<size_t>(staged_ints_) * sizeof(int32_t));
  cuda::Synchronize();
}

Status CudaQwen2Model::Stage(const ForwardBatch& b) {
  const ModelConfig& c = config_;
  const CudaModelOptions& o = options_;
  const auto n = static_cast<int64_t>(b.tokens.size());
  const auto m = static_cast<int64_t>(b.logit_rows.size());
  if (n == 0) return InvalidArgument("no tokens to run");
  if (b.positions.size() != b.tokens.size() || b.slots.size() != b.tokens.size() || b.tables.size() != b.tokens.size())
    return InvalidArgument("ForwardBatch: inconsistent sizes");
  if (n > o.max_tokens || m > o.max_logit_rows)
    return InvalidArgument(fmt::format("{} tokens / {} logit rows exceed the CUDA model's {} / {}", n, m, o.max_tokens,
                                       o.max_logit_rows));
  // The previous step's input copy must have left the staging buffer before it is rewritten.
  cuda::Synchronize();
  const int64_t slots = o.num_blocks * o.block_size;
  std::vector<std::pair<const int32_t*, size_t>> seqs;
  for (int64_t t = 0; t < n; ++t) {
    const auto i = static_cast<size_t>(t);
    const int32_t id = b.tokens[i], pos = b.positions[i], slot = b.slots[i];
    if (id < 0 || id >= c.vocab_size)
      return InvalidArgument(fmt::format("token id {} is outside the vocabulary (0..{})", id, c.vocab_size - 1));
    const std::span<const int32_t> table = b.tables[i];
    if (pos < 0 || pos / o.block_size >= static_cast<int64_t>(table.size()))
      return InvalidArgument(fmt::format("position {} beyond a table of {} blocks", pos, table.size()));
    if (slot < 0 || slot >= slots) return InvalidArgument(fmt::format("KV slot {} of {}", slot, slots));
    const std::pair<const int32_t*, size_t> key{table.data(), table.size()};
    size_t s = 0;
    while (s < seqs.size() && seqs[s] != key) ++s;
    if (s == seqs.size()) {
      if (static_cast<int64_t>(s) >= o.max_seqs) return InvalidArgument(fmt::format("more than {} sequences", o.max_seqs));
      if (static_cast<int64_t>(table.size()) > o.max_blocks_per_seq)
        return InvalidArgument(fmt::format("a table of {} blocks (at most {})", table.size(), o.max_blocks_per_seq));
      int32_t* row = host_in_ + off_tables_ + static_cast<int64_t>(s) * o.max_blocks_per_seq;
      std::fill(row, row + o.max_blocks_per_seq, 0);
      for (size_t j = 0; j < table.size(); ++j) {
        if (table[j] < 0 || table[j] >= o.num_blocks)
          return InvalidArgument(fmt::format("block {} of {}", table[j], o.num_blocks));
        row[j] = table[j];
      }
      seqs.push_back(key);
    }
    host_in_[off_tokens_ + t] = id;
    host_in_[off_pos_ + t] = pos;
    host_in_[off_slots_ + t] = slot;
    host_in_[off_seq_ + t] = static_cast<int32_t>(s);
  }
  for (int64_t r = 0; r < m; ++r) {
    const int32_t row = b.logit_rows[static_cast<size_t>(r)];
    if (row < 0 || row >= n) return InvalidArgument(fmt::format("logit row {} of {}", row, n));
    host_in_[off_rows_ + r] = row;
  }
  const int64_t ints = off_tables_ + static_cast<int64_t>(seqs.size()) * o.max_blocks_per_seq;
  cuda::CopyToDeviceAsync(dev_in_, host_in_, static_cast<size_t>(ints) * sizeof(int32_t));
  return Status::Ok();
}

void CudaQwen2Model::RunLinear(const float* x, int64_t n, const CudaLinear& lin, float* y) {
  for (size_t i = 0; i < lin.parts.size(); ++i) {
    const int64_t off = lin.offsets[i];
    cuda::Linear(x, n, lin.parts[i], lin.bias != nullptr ? lin.bias + off : nullptr, y + off, lin.out, scratch_,
                 options_.linear_path);
  }
}

void CudaQwen2Model::set_fused_ops(bool on) {
  if (on == options_.fused_ops) return;
  options_.fused_ops = on;
  cuda::Synchronize();
  graphs_.clear();
}

void CudaQwen2Model::RunLayers(int64_t n, int64_t m) {
  const ModelConfig& c = config_;
  const int64_t hd = c.hidden_size, inter = c.intermediate_size, qd = c.q_dim(), kvd = c.kv_dim();
  const int64_t qkvd = qd + 2 * kvd;
  const auto eps = static_cast<float>(c.rms_norm_eps);
  const bool fused = options_.fused_ops;
  const int32_t* in = dev_in_;
  cuda::Embedding(in + off_tokens_, n, weights_.embedding, weights_.embedding_type, hd, x_);
  Mark("embedding");
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const CudaLayer& w = weights_.layers[static_cast<size_t>(l)];
    void* k_pool = k_pool_[static_cast<size_t>(l)];
    void* v_pool = v_pool_[static_cast<size_t>(l)];
    // Attention block: x += o_proj(attention(rope(q), rope(k), v)) over rmsnorm(x). Fused, the
    // norm of layers after the first ran with the previous layer's residual add.
    if (!fused || l == 0) {
      cuda::RmsNorm(x_, n, hd, w.attn_norm, eps, h_);
      Mark("norm");
    }
    RunLinear(h_, n, w.qkv, qkv_);
    Mark("qkv");
    if (fused) {
      cuda::RopeScatterKV(qkv_, n, c.num_heads, c.num_kv_heads, c.head_dim, qkvd, in + off_pos_, inv_freq_,
                          rope_scale_, in + off_slots_, k_pool, v_pool, options_.kv_dtype);
    } else {
      // q and k heads are adjacent in each qkv row: one RoPE launch covers both.
      cuda::Rope(qkv_, n, c.num_heads + c.num_kv_heads, c.head_dim, qkvd, in + off_pos_, inv_freq_, rope_scale_);
      cuda::ScatterRows(qkv_ + qd, n, kvd, qkvd, in + off_slots_, k_pool, options_.kv_dtype);
      cuda::ScatterRows(qkv_ + qd + kvd, n, kvd, qkvd, in + off_slots_, v_pool, options_.kv_dtype);
    }
    Mark("rope+kv");
    cuda::AttentionArgs a;
    a.q = qkv_;
    a.q_ld = qkvd;
    a.n = n;
    a.n_heads = c.num_heads;
    a.n_kv_heads = c.num_kv_heads;
    a.head_dim = c.head_dim;
    a.k = k_pool;
    a.v = v_pool;
    a.kv_type = options_.kv_dtype;
    a.block_size = options_.block_size;
    a.positions = in + off_pos_;
    a.seq_of_token = in + off_seq_;
    a.tables = in + off_tables_;
    a.table_stride = options_.max_blocks_per_seq;
    a.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    a.out = attn_;
    a.out_ld = qd;
    if (fused) {
      a.partial = attn_partial_;
      a.partial_bytes = attn_partial_bytes_;
    }
    cuda::Attention(a);
    Mark("attention");
    RunLinear(attn_, n, w.o, proj_);
    Mark("o");
    // MLP block: x += down(silu(gate(m)) * up(m)), m = rmsnorm(x).
    if (fused) {
      cuda::AddRmsNorm(x_, proj_, n, hd, w.ffn_norm, eps, h_);
      Mark("add+norm");
    } else {
      cuda::Add(x_, proj_, n * hd);
      Mark("add");
      cuda::RmsNorm(x_, n, hd, w.ffn_norm, eps, h_);
      Mark("norm");
    }
    RunLinear(h_, n, w.gate_up, gu_);
    Mark("gate_up");
    cuda::SiluMul(gu_, gu_ + inter, n, inter, 2 * inter, act_, inter);
    Mark("silu");
    RunLinear(act_, n, w.down, proj_);
    Mark("down");
    if (fused && l + 1 < c.num_layers) {
      cuda::AddRmsNorm(x_, proj_, n, hd, weights_.layers[static_cast<size_t>(l + 1)].attn_norm, eps, h_);
      Mark("add+norm");
    } else {
      cuda::Add(x_, proj_, n * hd);
      Mark("add");
    }
  }
  if (m == 0) return;
  // Final norm and lm_head only for the rows that need logits.
  cuda::GatherRows(x_, hd, in + off_rows_, m, last_);
  cuda::RmsNorm(last_, m, hd, weights_.final_norm, eps, last_);
  Mark("final norm");
  RunLinear(last_, m, weights_.lm_head, logits_);
  Mark("lm_head");
}

Status CudaQwen2Model::Enqueue(const ForwardBatch& batch) {
  QB_RETURN_IF_ERROR(Stage(batch));
  const auto n = static_cast<int64_t>(batch.tokens.size());
  const auto m = static_cast<int64_t>(batch.logit_rows.size());
  if (profiler_ != nullptr) {
    // Hold the stream while the step is enqueued, so its kernels then run back to back and
    // the marks time the GPU's work, not the host's launch rate.
    cuda::SpinWait(20000);
    profiler_->Begin();
    RunLayers(n, m);
    return Status::Ok();
  }
  if (options_.use_graphs && profiler_ == nullptr && n <= options_.graph_max_tokens) {
    // The kernel choices a graph captures (programmatic launch, the attention's key tile and
    // split target, the GEMV generation, the int4 tensor-core variant): when they change, the
    // captured kernels would be stale.
    const int kernels = (cuda::ProgrammaticLaunch() ? 1000000 : 0) + cuda::AttentionKeyTile() * 100000 +
                        cuda::AttentionSplitBlocksPerSm() * 1000 + cuda::GemvVersion() * 100 +
                        cuda::Int4MmaTiles() * 10 + cuda::Int4MmaVariant();
    if (graphs_kernels_ != kernels) {
      cuda::Synchronize();
      graphs_.clear();
      graphs_kernels_ = kernels;
    }
    std::unique_ptr<cuda::Graph>& g = graphs_[{n, m}];
    if (!g) {
      g = std::make_unique<cuda::Graph>();
      g->BeginCapture();
      RunLayers(n, m);
      g->EndCapture();
    }
    g->Launch();
  } else {
    RunLayers(n, m);
  }
  return Status::Ok();
}

Result<Tensor> CudaQwen2Model::Forward(const ForwardBatch& batch) {
  QB_RETURN_IF_ERROR(Enqueue(batch));
  const auto m = static_cast<int64_t>(batch.logit_rows.size());
  Tensor logits = Tensor::Empty(DType::kF32, {m, config_.vocab_size});
  cuda::CopyToHost(logits.mutable_raw(), logits_, logits.nbytes());
  return logits;
}

}  // namespace qb
