#include "model/int4_checkpoint.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include "tensor/quant_blocks.h"
#include "util/half.h"

namespace qb {

namespace {

// AWQ packs 8 output columns per int32 in this nibble order: column 8c + kAwqOrder[i] is nibble i.
constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

Result<Tensor> Get(const TensorSource& src, const std::string& name, DType dtype, const Shape& shape) {
  QB_ASSIGN_OR_RETURN(Tensor t, src.Get(name));
  if (t.dtype() != dtype || t.shape() != shape)
    return InvalidArgument(fmt::format("{}: tensor {} is {} {}, expected {} {}", src.FileOf(name), name, Name(t.dtype()),
                                       ShapeToString(t.shape()), Name(dtype), ShapeToString(shape)));
  return t;
}

uint32_t Word(const Tensor& t, int64_t r, int64_t c) {
  return static_cast<uint32_t>(t.data<int32_t>()[r * t.cols() + c]);
}

// Builds Q4Z [out, in] from accessors of code q(k, n), group g(k), zero z(g, n), fp16 scale.
template <typename Code, typename Zero>
Result<Int4Matrix> Pack(int64_t in, int64_t out, const std::vector<int32_t>& g_idx, const Tensor& scales, Code code,
                        Zero zero, const std::string& prefix) {
  Int4Matrix m;
  // Inputs sorted by group (stable): each 32-input block must then lie in one group.
  std::vector<int32_t> order(static_cast<size_t>(in));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return g_idx[a] < g_idx[b]; });
  bool identity = true;
  for (int64_t p = 0; p < in; ++p) identity = identity && order[static_cast<size_t>(p)] == p;
  for (int64_t b = 0; b < in / 32; ++b)
    for (int64_t p = 32 * b; p < 32 * b + 32; ++p)
      if (g_idx[static_cast<size_t>(order[static_cast<size_t>(p)])] != g_idx[static_cast<size_t>(order[static_cast<size_t>(32 * b)])])
        return Unimplemented(fmt::format("{}: quantization groups are not whole blocks of 32 inputs", prefix));
  m.weight = Tensor::Empty(DType::kQ4Z, {out, in});
  auto* blocks = m.weight.mutable_data<BlockQ4Z>();
  const int64_t nb = in / 32;
  for (int64_t n = 0; n < out; ++n)
    for (int64_t b = 0; b < nb; ++b) {
      BlockQ4Z& blk = blocks[n * nb + b];
      const int32_t g = g_idx[static_cast<size_t>(order[static_cast<size_t>(32 * b)])];
      blk.d = scales.data<uint16_t>()[g * scales.cols() + n];
      blk.z = static_cast<uint8_t>(zero(g, n));
      for (int j = 0; j < 16; ++j) {
        const int lo = code(order[static_cast<size_t>(32 * b + j)], n), hi = code(order[static_cast<size_t>(32 * b + 16 + j)], n);
        blk.qs[j] = static_cast<uint8_t>(lo | (hi << 4));
      }
    }
  if (!identity) {
    m.perm = Tensor::Empty(DType::kI32, {in});
    std::copy(order.begin(), order.end(), m.perm.mutable_data<int32_t>());
  }
  return m;
}

}  // namespace

Status CheckInt4Config(const QuantizationConfig& q, const std::string& what) {
  if (q.method != "gptq" && q.method != "awq")
    return Unimplemented(fmt::format("{}: quant_method \"{}\" is not supported (gptq and awq are)", what, q.method));
  if (q.bits != 4) return Unimplemented(fmt::format("{}: {}-bit {} is not supported (4-bit is)", what, q.bits, q.method));
  if (q.group_size != -1 && (q.group_size <= 0 || q.group_size % 32 != 0))
    return Unimplemented(fmt::format("{}: group_size {} is not supported (multiples of 32, or -1)", what, q.group_size));
  if (q.method == "gptq" && !q.version.empty() && q.version != "gptq" && q.version != "gptq_v2")
    return Unimplemented(fmt::format("{}: GPTQ checkpoint_format \"{}\" is not supported (gptq, gptq_v2)", what, q.version));
  if (q.method == "awq") {
    if (!q.version.empty() && q.version != "gemm")
      return Unimplemented(fmt::format("{}: AWQ version \"{}\" is not supported (gemm is)", what, q.version));
    if (!q.zero_point) return Unimplemented(what + ": AWQ with zero_point false is not supported");
  }
  return Status::Ok();
}

Result<Int4Matrix> ReadInt4Linear(const TensorSource& src, const QuantizationConfig& q, const std::string& prefix,
                                  int64_t in, int64_t out) {
  if (in % 32 != 0 || out % 8 != 0)
    return Unimplemented(fmt::format("{}: {}x{} is not a multiple of 32 inputs and 8 outputs", prefix, out, in));
  const int64_t gs = q.group_size == -1 ? in : q.group_size;
  if (in % gs != 0) return InvalidArgument(fmt::format("{}: {} inputs are not whole groups of {}", prefix, in, gs));
  const int64_t groups = in / gs;
  QB_ASSIGN_OR_RETURN(Tensor scales, src.Get(prefix + ".scales"));
  if ((scales.dtype() != DType::kF16) || scales.shape() != Shape{groups, out})
    return InvalidArgument(fmt::format("{}: {}.scales is {} {}, expected f16 [{}, {}]", src.FileOf(prefix + ".scales"),
                                       prefix, Name(scales.dtype()), ShapeToString(scales.shape()), groups, out));
  if (q.method == "gptq") {
    QB_ASSIGN_OR_RETURN(Tensor qweight, Get(src, prefix + ".qweight", DType::kI32, {in / 8, out}));
    QB_ASSIGN_OR_RETURN(Tensor qzeros, Get(src, prefix + ".qzeros", DType::kI32, {groups, out / 8}));
    std::vector<int32_t> g_idx(static_cast<size_t>(in));
    if (src.Has(prefix + ".g_idx")) {
      QB_ASSIGN_OR_RETURN(Tensor gi, Get(src, prefix + ".g_idx", DType::kI32, {in}));
      for (int64_t k = 0; k < in; ++k) {
        g_idx[static_cast<size_t>(k)] = gi.data<int32_t>()[k];
        if (g_idx[static_cast<size_t>(k)] < 0 || g_idx[static_cast<size_t>(k)] >= groups)
          return InvalidArgument(fmt::format("{}: g_idx[{}] = {} is not a group (0..{})", prefix, k, g_idx[static_cast<size_t>(k)], groups - 1));
      }
    } else {
      for (int64_t k = 0; k < in; ++k) g_idx[static_cast<size_t>(k)] = static_cast<int32_t>(k / gs);
    }
    const int zero_offset = q.version == "gptq_v2" ? 0 : 1;  // v1 stores zero - 1
    auto code = [&](int64_t k, int64_t n) { return static_cast<int>((Word(qweight, k / 8, n) >> (4 * (k % 8))) & 15u); };
    auto zero = [&](int64_t g, int64_t n) {
      return std::min(15, static_cast<int>((Word(qzeros, g, n / 8) >> (4 * (n % 8))) & 15u) + zero_offset);
    };
    return Pack(in, out, g_idx, scales, code, zero, prefix);
  }
  QB_ASSIGN_OR_RETURN(Tensor qweight, Get(src, prefix + ".qweight", DType::kI32, {in, out / 8}));
  QB_ASSIGN_OR_RETURN(Tensor qzeros, Get(src, prefix + ".qzeros", DType::kI32, {groups, out / 8}));
  int nibble_of[8];
  for (int i = 0; i < 8; ++i) nibble_of[kAwqOrder[i]] = i;
  std::vector<int32_t> g_idx(static_cast<size_t>(in));
  for (int64_t k = 0; k < in; ++k) g_idx[static_cast<size_t>(k)] = static_cast<int32_t>(k / gs);
  auto code = [&](int64_t k, int64_t n) {
    return static_cast<int>((Word(qweight, k, n / 8) >> (4 * nibble_of[n % 8])) & 15u);
  };
  auto zero = [&](int64_t g, int64_t n) {
    return static_cast<int>((Word(qzeros, g, n / 8) >> (4 * nibble_of[n % 8])) & 15u);
  };
  return Pack(in, out, g_idx, scales, code, zero, prefix);
}

}  // namespace qb
