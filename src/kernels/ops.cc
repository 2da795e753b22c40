#include "kernels/ops.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <functional>

#include <fmt/format.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/low_rank.h"
#include "kernels/ref/ref_ops.h"
#include "tensor/dequantize.h"

namespace qb::kernels {

namespace {

void CheckCpu(const Tensor& t, const char* op) {
  QB_CHECK(t.device() == Device::kCpu, "{}: {} tensors have no implementation in this build", op,
           DeviceName(t.device()));
}

void CheckF32(const Tensor& t, const char* op, const char* name) {
  CheckCpu(t, op);
  QB_CHECK(t.dtype() == DType::kF32, "{}: {} must be f32, is {}", op, name, Name(t.dtype()));
}

// fn over [0, n) on ctx's threads, or here when it has none.
void Split(const ExecContext& ctx, int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (ctx.pool != nullptr)
    ctx.pool->ParallelFor(n, fn, grain);
  else if (n > 0)
    fn(0, n);
}

// d floats into `cache` (IsKvDType) from element `at` on: f16 through the SIMD conversion off
// the reference ISA, every other type (and the reference) through QuantizeRow.
void StoreKv(const ExecContext& ctx, const float* src, int64_t d, Tensor& cache, int64_t at) {
  uint8_t* dst = static_cast<uint8_t*>(cache.mutable_raw()) + RowBytes(cache.dtype(), at);
  if (cache.dtype() == DType::kF16 && ctx.isa != Isa::kReference)
    cpu::ToF16(ctx, src, d, reinterpret_cast<uint16_t*>(dst));
  else
    QuantizeRow(cache.dtype(), src, dst, d);
}

// Row r of a cache of slot rows (ScatterRows).
void StoreKvRow(const ExecContext& ctx, const float* src, int64_t d, Tensor& cache, int64_t r) {
  StoreKv(ctx, src, d, cache, r * cache.cols());
}

// Token row `src` (kv_dim floats, head after head) into pool slot `slot`, head by head.
void StoreKvSlot(const ExecContext& ctx, const float* src, Tensor& cache, int64_t slot, int64_t head_dim,
                 int64_t block_size) {
  const int64_t n_kv = cache.cols() / head_dim;
  for (int64_t h = 0; h < n_kv; ++h)
    StoreKv(ctx, src + h * head_dim, head_dim, cache, KvHeadElement(slot, h, head_dim, n_kv, block_size));
}

void CheckKvPool(const Tensor& cache, int64_t head_dim, int64_t block_size, const char* op) {
  CheckCpu(cache, op);
  QB_CHECK(head_dim > 0 && CheckKvDType(cache.dtype(), head_dim).ok() && cache.rank() == 2 &&
               cache.cols() % head_dim == 0 && block_size > 0 && cache.rows() % block_size == 0,
           "{}: pool {} {} with head_dim {} and blocks of {}", op, Name(cache.dtype()), ShapeToString(cache.shape()),
           head_dim, block_size);
}

void CheckKvRows(std::span<const int32_t> rows, const Tensor& cache, const char* op) {
  for (const int32_t r : rows) QB_CHECK(r >= 0 && r < cache.rows(), "{}: row {} of {}", op, r, cache.rows());
}

}  // namespace

void Linear(const ExecContext& ctx, const Tensor& x_in, const Tensor& w, const Tensor* bias, Tensor& y,
            const Tensor* perm) {
  Tensor gathered;
  if (perm != nullptr && perm->defined()) {
    CheckCpu(*perm, "Linear");
    QB_CHECK(perm->dtype() == DType::kI32 && perm->numel() == x_in.cols(), "Linear: perm {} for {} inputs",
             ShapeToString(perm->shape()), x_in.cols());
    gathered = Tensor::Empty(DType::kF32, x_in.shape());
    const int32_t* p = perm->data<int32_t>();
    for (int64_t t = 0; t < x_in.rows(); ++t) {
      const float* src = x_in.data<float>() + t * x_in.cols();
      float* dst = gathered.mutable_data<float>() + t * x_in.cols();
      for (int64_t i = 0; i < x_in.cols(); ++i) dst[i] = src[p[i]];
    }
  }
  const Tensor& x = gathered.defined() ? gathered : x_in;
  CheckF32(x, "Linear", "x");
  CheckF32(y, "Linear", "y");
  CheckCpu(w, "Linear");
  QB_CHECK(w.rank() == 2 && x.cols() == w.dim(1) && y.cols() == w.dim(0) && x.rows() == y.rows(),
           "Linear: x {} w {} y {}", ShapeToString(x.shape()), ShapeToString(w.shape()),
           ShapeToString(y.shape()));
  if (bias != nullptr) {
    CheckF32(*bias, "Linear", "bias");
    QB_CHECK(bias->numel() == w.dim(0), "Linear: bias {} for {} outputs", bias->numel(), w.dim(0));
  }
  const float* b = bias ? bias->data<float>() : nullptr;
  if (ctx.isa == Isa::kReference)
    ref::Linear(x.data<float>(), x.rows(), x.cols(), w.raw(), w.dtype(), w.dim(0), b, y.mutable_data<float>());
  else
    cpu::Linear(ctx, x.data<float>(), x.rows(), x.cols(), w.raw(), w.dtype(), w.dim(0), b, y.mutable_data<float>());
}

void RmsNorm(const ExecContext& ctx, const Tensor& x, const Tensor& weight, float eps, Tensor& y) {
  CheckF32(x, "RmsNorm", "x");
  CheckF32(weight, "RmsNorm", "weight");
  CheckF32(y, "RmsNorm", "y");
  QB_CHECK(weight.numel() == x.cols() && y.shape() == x.shape(), "RmsNorm: x {} weight {} y {}",
           ShapeToString(x.shape()), ShapeToString(weight.shape()), ShapeToString(y.shape()));
  if (ctx.isa == Isa::kReference)
    ref::RmsNorm(x.data<float>(), x.rows(), x.cols(), weight.data<float>(), eps, y.mutable_data<float>());
  else
    cpu::RmsNorm(ctx, x.data<float>(), x.rows(), x.cols(), weight.data<float>(), eps, y.mutable_data<float>());
}

void AddRmsNorm(const ExecContext& ctx, Tensor& x, const Tensor& delta, const Tensor& weight, float eps, Tensor& y) {
  CheckF32(x, "AddRmsNorm", "x");
  CheckF32(delta, "AddRmsNorm", "delta");
  CheckF32(weight, "AddRmsNorm", "weight");
  CheckF32(y, "AddRmsNorm", "y");
  QB_CHECK(delta.shape() == x.shape() && y.shape() == x.shape() && weight.numel() == x.cols() &&
               y.raw() != x.raw() && y.raw() != delta.raw(),
           "AddRmsNorm: x {} delta {} weight {} y {}", ShapeToString(x.shape()), ShapeToString(delta.shape()),
           ShapeToString(weight.shape()), ShapeToString(y.shape()));
  if (ctx.isa == Isa::kReference) {
    AddInPlace(ctx, x, delta);
    RmsNorm(ctx, x, weight, eps, y);
    return;
  }
  cpu::AddRmsNorm(ctx, x.mutable_data<float>(), delta.data<float>(), x.rows(), x.cols(), weight.data<float>(), eps,
                  y.mutable_data<float>());
}

namespace {
void CheckRope(const Tensor& x, int64_t head_dim, std::span<const int32_t> positions, const RopeTable& rope) {
  CheckF32(x, "Rope", "x");
  QB_CHECK(head_dim % 2 == 0 && x.cols() % head_dim == 0 &&
               static_cast<int64_t>(rope.inv_freq.size()) == head_dim / 2 &&
               static_cast<int64_t>(positions.size()) == x.rows(),
           "Rope: x {} head_dim {} positions {}", ShapeToString(x.shape()), head_dim, positions.size());
}
}  // namespace

void Rope(const ExecContext& ctx, Tensor& x, int64_t head_dim, std::span<const int32_t> positions, const RopeTable& rope) {
  CheckRope(x, head_dim, positions, rope);
  if (ctx.isa == Isa::kReference)
    ref::Rope(x.mutable_data<float>(), x.rows(), x.cols() / head_dim, head_dim, positions.data(), rope.inv_freq.data(),
              rope.attention_scale);
  else
    cpu::Rope(ctx, x.mutable_data<float>(), x.cols() / head_dim, nullptr, 0, x.rows(), head_dim, positions.data(),
              rope.inv_freq.data(), rope.attention_scale);
}

void Rope(const ExecContext& ctx, Tensor& q, Tensor& k, int64_t head_dim, std::span<const int32_t> positions,
          const RopeTable& rope) {
  if (ctx.isa == Isa::kReference) {
    Rope(ctx, q, head_dim, positions, rope);
    Rope(ctx, k, head_dim, positions, rope);
    return;
  }
  CheckRope(q, head_dim, positions, rope);
  CheckRope(k, head_dim, positions, rope);
  cpu::Rope(ctx, q.mutable_data<float>(), q.cols() / head_dim, k.mutable_data<float>(), k.cols() / head_dim, q.rows(),
            head_dim, positions.data(), rope.inv_freq.data(), rope.attention_scale);
}

void SiluMul(const ExecContext& ctx, const Tensor& gate, const Tensor& up, Tensor& out) {
  CheckF32(gate, "SiluMul", "gate");
  CheckF32(up, "SiluMul", "up");
  CheckF32(out, "SiluMul", "out");
  QB_CHECK(gate.shape() == up.shape() && out.shape() == gate.shape(), "SiluMul shapes");
  if (ctx.isa == Isa::kReference)
    ref::SiluMul(gate.data<float>(), up.data<float>(), gate.numel(), out.mutable_data<float>());
  else
    cpu::SiluMul(ctx, gate.data<float>(), up.data<float>(), gate.numel(), out.mutable_data<float>());
}

void SiluMulJoined(const ExecContext& ctx, const Tensor& gate_up, Tensor& out) {
  CheckF32(gate_up, "SiluMulJoined", "gate_up");
  CheckF32(out, "SiluMulJoined", "out");
  QB_CHECK(gate_up.rank() == 2 && out.rank() == 2 && gate_up.rows() == out.rows() && gate_up.cols() == 2 * out.cols(),
           "SiluMulJoined: gate_up {} out {}", ShapeToString(gate_up.shape()), ShapeToString(out.shape()));
  const int64_t n = out.rows(), d = out.cols();
  const float* gu = gate_up.data<float>();
  float* o = out.mutable_data<float>();
  if (ctx.isa == Isa::kReference) {
    for (int64_t t = 0; t < n; ++t) ref::SiluMul(gu + t * 2 * d, gu + t * 2 * d + d, d, o + t * d);
    return;
  }
  cpu::SiluMulJoined(ctx, gu, n, d, o);
}

void SplitColumns(const ExecContext& ctx, const Tensor& x, std::span<Tensor* const> parts) {
  CheckF32(x, "SplitColumns", "x");
  int64_t width = 0;
  for (const Tensor* p : parts) {
    CheckF32(*p, "SplitColumns", "part");
    QB_CHECK(p->rank() == 2 && p->rows() == x.rows(), "SplitColumns: part {} of x {}", ShapeToString(p->shape()),
             ShapeToString(x.shape()));
    width += p->cols();
  }
  QB_CHECK(x.rank() == 2 && width == x.cols(), "SplitColumns: parts {} wide, x {}", width, ShapeToString(x.shape()));
  Split(ctx, x.rows(), 4, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const float* src = x.data<float>() + t * width;
      for (Tensor* p : parts) {
        std::memcpy(p->mutable_data<float>() + t * p->cols(), src, static_cast<size_t>(p->cols()) * sizeof(float));
        src += p->cols();
      }
    }
  });
}

void SplitRopeScatter(const ExecContext& ctx, const Tensor& qkv, int64_t head_dim, int64_t block_size,
                      std::span<const int32_t> positions, const RopeTable& rope, std::span<const int32_t> slots,
                      Tensor& q, Tensor& k_cache, Tensor& v_cache) {
  CheckF32(qkv, "SplitRopeScatter", "qkv");
  CheckRope(q, head_dim, positions, rope);
  CheckKvPool(k_cache, head_dim, block_size, "SplitRopeScatter");
  CheckKvPool(v_cache, head_dim, block_size, "SplitRopeScatter");
  const int64_t n = qkv.rows(), kv_dim = k_cache.cols();
  QB_CHECK(qkv.rank() == 2 && q.rows() == n && qkv.cols() == q.cols() + 2 * kv_dim && v_cache.cols() == kv_dim &&
               kv_dim % head_dim == 0 && k_cache.dtype() == v_cache.dtype() && IsKvDType(k_cache.dtype()) &&
               static_cast<int64_t>(slots.size()) == n,
           "SplitRopeScatter: qkv {} q {} caches {} {}", ShapeToString(qkv.shape()), ShapeToString(q.shape()),
           ShapeToString(k_cache.shape()), ShapeToString(v_cache.shape()));
  if (ctx.isa == Isa::kReference) {
    Tensor k = Tensor::Uninitialized(DType::kF32, {n, kv_dim}), v = Tensor::Uninitialized(DType::kF32, {n, kv_dim});
    Tensor* const parts[] = {&q, &k, &v};
    SplitColumns(ctx, qkv, parts);
    Rope(ctx, q, k, head_dim, positions, rope);
    ScatterKv(ctx, k, slots, k_cache, head_dim, block_size);
    ScatterKv(ctx, v, slots, v_cache, head_dim, block_size);
    return;
  }
  CheckKvRows(slots, k_cache, "SplitRopeScatter");
  CheckKvRows(slots, v_cache, "SplitRopeScatter");
  cpu::SplitRopeKv(ctx, qkv.data<float>(), n, q.cols() / head_dim, kv_dim / head_dim, head_dim, positions.data(),
                   rope.inv_freq.data(), rope.attention_scale, q.mutable_data<float>(),
                   [&](int64_t t, const float* k, const float* v) {
                     const int64_t slot = slots[static_cast<size_t>(t)];
                     StoreKvSlot(ctx, k, k_cache, slot, head_dim, block_size);
                     StoreKvSlot(ctx, v, v_cache, slot, head_dim, block_size);
                   });
}

void Attention(const ExecContext& ctx, const Tensor& q, const Tensor& k, const Tensor& v, int64_t head_dim,
               int64_t block_size, std::span<const int32_t> positions,
               std::span<const std::span<const int32_t>> tables, float scale, Tensor& out) {
  CheckF32(q, "Attention", "q");
  CheckF32(out, "Attention", "out");
  CheckCpu(k, "Attention");
  CheckCpu(v, "Attention");
  QB_CHECK(k.dtype() == v.dtype() && CheckKvDType(k.dtype(), head_dim).ok(), "Attention: kv dtype {} with head_dim {}",
           Name(k.dtype()), head_dim);
  QB_CHECK(q.cols() % head_dim == 0 && k.cols() % head_dim == 0 && k.shape() == v.shape() &&
               out.shape() == q.shape() && static_cast<int64_t>(positions.size()) == q.rows() &&
               tables.size() == positions.size() && block_size > 0,
           "Attention: q {} k {} v {} out {}", ShapeToString(q.shape()), ShapeToString(k.shape()),
           ShapeToString(v.shape()), ShapeToString(out.shape()));
  const int64_t n_heads = q.cols() / head_dim, n_kv = k.cols() / head_dim;
  QB_CHECK(n_kv > 0 && n_heads % n_kv == 0, "Attention: {} heads over {} kv heads", n_heads, n_kv);
  CheckKvPool(k, head_dim, block_size, "Attention");
  QB_CHECK(k.rows() * n_kv <= INT32_MAX, "Attention: a pool of {} slots x {} kv heads", k.rows(), n_kv);
  // Where the keys are, shared by all heads: key row r (of head_dim values) of kv head h starts
  // at element r * head_dim + h * block_size * head_dim of the pool (KvHeadElement with r =
  // block * block_size * n_kv + slot in block). Tokens of one sequence at consecutive positions
  // (a prefill chunk) share one list, token t's keys being its first positions[t] + 1 entries
  // from row_start[t] on, so a chunk's list costs O(its length), not O(length^2).
  std::vector<int32_t> rows;
  std::vector<int64_t> row_start(positions.size());
  auto row_of = [&](size_t t, int64_t j) {
    const int64_t block = tables[t][static_cast<size_t>(j / block_size)];
    QB_CHECK(block >= 0 && (block + 1) * block_size <= k.rows(), "Attention: block {} of {}", block,
             k.rows() / block_size);
    return static_cast<int32_t>(block * block_size * n_kv + j % block_size);
  };
  for (size_t t = 0; t < positions.size(); ++t) {
    QB_CHECK(positions[t] >= 0 && (positions[t] / block_size) < static_cast<int64_t>(tables[t].size()),
             "Attention: position {} beyond a table of {} blocks", positions[t], tables[t].size());
    const int64_t prev_blocks = t > 0 ? positions[t - 1] / block_size + 1 : 0;
    const bool same_run = t > 0 && positions[t] == positions[t - 1] + 1 &&
                          (tables[t].data() == tables[t - 1].data() ||
                           std::equal(tables[t - 1].begin(), tables[t - 1].begin() + prev_blocks, tables[t].begin()));
    if (same_run) {
      row_start[t] = row_start[t - 1];
      rows.push_back(row_of(t, positions[t]));
    } else {  // block by block (a decode step lists every key of every sequence)
      row_start[t] = static_cast<int64_t>(rows.size());
      const int64_t n_keys = positions[t] + 1;
      rows.resize(rows.size() + static_cast<size_t>(n_keys));
      int32_t* dst = rows.data() + row_start[t];
      for (int64_t j0 = 0; j0 < n_keys; j0 += block_size) {
        const int32_t first = row_of(t, j0);
        for (int64_t j = j0; j < std::min(n_keys, j0 + block_size); ++j) *dst++ = first + static_cast<int32_t>(j - j0);
      }
    }
  }
  if (ctx.isa == Isa::kReference)
    ref::Attention(q.data<float>(), q.rows(), n_heads, n_kv, head_dim, k.raw(), v.raw(), k.dtype(), rows.data(),
                   row_start.data(), positions.data(), head_dim, block_size * head_dim, scale,
                   out.mutable_data<float>());
  else
    cpu::Attention(ctx, q.data<float>(), q.rows(), n_heads, n_kv, head_dim, k.raw(), v.raw(), k.dtype(), rows.data(),
                   row_start.data(), positions.data(), head_dim, block_size * head_dim, scale,
                   out.mutable_data<float>());
}

void Embedding(std::span<const int32_t> ids, const Tensor& table, Tensor& out) {
  CheckCpu(table, "Embedding");
  CheckF32(out, "Embedding", "out");
  QB_CHECK(table.rank() == 2 && out.cols() == table.dim(1) &&
               out.rows() == static_cast<int64_t>(ids.size()),
           "Embedding: table {} out {} ids {}", ShapeToString(table.shape()), ShapeToString(out.shape()),
           ids.size());
  for (int32_t id : ids) QB_CHECK(id >= 0 && id < table.dim(0), "Embedding: id {} of {}", id, table.dim(0));
  ref::Embedding(ids.data(), static_cast<int64_t>(ids.size()), table.raw(), table.dtype(), table.dim(1),
                 out.mutable_data<float>());
}

void AddLowRank(const ExecContext& ctx, const Tensor& low, const Tensor& bt, std::span<const int32_t> rows, Tensor& y,
                int64_t offset) {
  CheckF32(low, "AddLowRank", "low");
  CheckF32(bt, "AddLowRank", "bt");
  CheckF32(y, "AddLowRank", "y");
  const int64_t m = low.rows(), r = low.cols(), out = bt.cols(), y_cols = y.cols();
  QB_CHECK(bt.rows() == r && static_cast<int64_t>(rows.size()) == m && offset >= 0 && offset + out <= y_cols,
           "AddLowRank: low {} bt {} y {} offset {}", ShapeToString(low.shape()), ShapeToString(bt.shape()),
           ShapeToString(y.shape()), offset);
  for (const int32_t row : rows) QB_CHECK(row >= 0 && row < y.rows(), "AddLowRank: row {} of {}", row, y.rows());
  const bool avx2 = ctx.isa != Isa::kReference && ctx.isa != Isa::kScalar;
  // Spans of 512 columns of each row are the units of work, so one row (a decode step) spreads
  // over the threads too; a share is about 64 K multiply-adds at least.
  constexpr int64_t kSpan = 512;
  const int64_t spans = (out + kSpan - 1) / kSpan;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, r * std::min(out, kSpan)));
  Split(ctx, m * spans, grain, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const int64_t i = u / spans, j0 = u % spans * kSpan, width = std::min(kSpan, out - j0);
      float* dst = y.mutable_data<float>() + int64_t{rows[static_cast<size_t>(i)]} * y_cols + offset + j0;
      const float* l = low.data<float>() + i * r;
      if (avx2)
        cpu::AddLowRankRowAvx2(dst, l, bt.data<float>() + j0, r, width, out);
      else
        ref::AddLowRankRow(dst, l, bt.data<float>() + j0, r, width, out);
    }
  });
}

void AddInPlace(Tensor& acc, const Tensor& x) { AddInPlace(ExecContext{}, acc, x); }

void AddInPlace(const ExecContext& ctx, Tensor& acc, const Tensor& x) {
  CheckF32(acc, "AddInPlace", "acc");
  CheckF32(x, "AddInPlace", "x");
  QB_CHECK(acc.shape() == x.shape(), "AddInPlace shapes {} {}", ShapeToString(acc.shape()),
           ShapeToString(x.shape()));
  float* a = acc.mutable_data<float>();
  const float* b = x.data<float>();
  Split(ctx, acc.numel(), 4096, [&](int64_t begin, int64_t end) { ref::Add(a + begin, b + begin, end - begin); });
}

bool IsKvDType(DType t) { return Info(t).is_float || t == DType::kQ8_0; }

Status CheckKvDType(DType t, int64_t head_dim) {
  if (!IsKvDType(t)) return InvalidArgument(fmt::format("KV cache type {} (f16, bf16, f32 or q8_0)", Name(t)));
  if (head_dim % Info(t).block_size != 0)
    return InvalidArgument(fmt::format("KV cache type {} needs a head size that is a multiple of {} (the model's is {})",
                                       Name(t), Info(t).block_size, head_dim));
  return Status::Ok();
}

void ScatterKv(const ExecContext& ctx, const Tensor& src, std::span<const int32_t> slots, Tensor& cache,
               int64_t head_dim, int64_t block_size) {
  CheckF32(src, "ScatterKv", "src");
  CheckKvPool(cache, head_dim, block_size, "ScatterKv");
  QB_CHECK(src.cols() == cache.cols() && src.rows() == static_cast<int64_t>(slots.size()), "ScatterKv: src {} pool {}",
           ShapeToString(src.shape()), ShapeToString(cache.shape()));
  CheckKvRows(slots, cache, "ScatterKv");
  const int64_t d = src.cols();
  Split(ctx, static_cast<int64_t>(slots.size()), 4, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t)
      StoreKvSlot(ctx, src.data<float>() + t * d, cache, slots[static_cast<size_t>(t)], head_dim, block_size);
  });
}

Tensor KvPoolFromSlotRows(const Tensor& slot_rows, int64_t head_dim, int64_t block_size) {
  CheckKvPool(slot_rows, head_dim, block_size, "KvPoolFromSlotRows");
  Tensor pool = Tensor::Empty(slot_rows.dtype(), slot_rows.shape());
  const int64_t n_kv = slot_rows.cols() / head_dim, head_bytes = RowBytes(slot_rows.dtype(), head_dim);
  const auto* src = static_cast<const uint8_t*>(slot_rows.raw());
  auto* dst = static_cast<uint8_t*>(pool.mutable_raw());
  for (int64_t r = 0; r < slot_rows.rows(); ++r)
    for (int64_t h = 0; h < n_kv; ++h)
      std::memcpy(dst + RowBytes(pool.dtype(), KvHeadElement(r, h, head_dim, n_kv, block_size)),
                  src + r * slot_rows.row_bytes() + h * head_bytes, static_cast<size_t>(head_bytes));
  return pool;
}

void ScatterRows(const Tensor& src, std::span<const int32_t> rows, Tensor& dst) {
  ScatterRows(ExecContext{}, src, rows, dst);
}

void ScatterRows(const ExecContext& ctx, const Tensor& src, std::span<const int32_t> rows, Tensor& dst) {
  CheckF32(src, "ScatterRows", "src");
  CheckCpu(dst, "ScatterRows");
  QB_CHECK(IsKvDType(dst.dtype()) && src.cols() == dst.cols() && src.rows() == static_cast<int64_t>(rows.size()),
           "ScatterRows: src {} dst {} {}", ShapeToString(src.shape()), Name(dst.dtype()), ShapeToString(dst.shape()));
  CheckKvRows(rows, dst, "ScatterRows");
  const int64_t d = src.cols();
  Split(ctx, static_cast<int64_t>(rows.size()), 4, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) StoreKvRow(ctx, src.data<float>() + t * d, d, dst, rows[static_cast<size_t>(t)]);
  });
}

}  // namespace qb::kernels
