// Paged attention on the GPU against the CPU reference kernels::Attention: several sequences
// with shuffled (non-contiguous) block tables, GQA, head sizes 16/64/128, f32/f16/bf16 pools,
// decode (one token per sequence), prefill (whole prompts), a mixed chunked-prefill batch and
// long decodes (2000 keys); each with one block per (token, head) and with split keys.
// Both sides read the same pool values and compute in f32 (GPU) / f64 (CPU): 1e-5 relative.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "cuda/cuda_test_util.h"
#include "kernels/ops.h"

namespace qb {
namespace {

struct AttentionCase {
  DType kv;
  int64_t head_dim, n_heads, n_kv_heads, block_size;
  const char* mode;  // "decode", "prefill", "mixed", "long" (decode, up to 2000 keys)
};

std::ostream& operator<<(std::ostream& os, const AttentionCase& c) {
  return os << c.mode << " " << Name(c.kv) << " head_dim " << c.head_dim;
}

class CudaAttentionTest : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(CudaAttentionTest, MatchesReference) {
  QB_REQUIRE_CUDA();
  const AttentionCase& c = GetParam();
  // Tokens in each sequence so far ("long": decode over a few thousand keys).
  const std::vector<int64_t> lens =
      std::string(c.mode) == "long" ? std::vector<int64_t>{2000, 1, 700, 64} : std::vector<int64_t>{1, 37, 130, 16, 300};
  const int64_t num_blocks = std::string(c.mode) == "long" ? 3000 / c.block_size : 160;
  const int64_t rows = num_blocks * c.block_size, kv_dim = c.n_kv_heads * c.head_dim;
  const int64_t q_dim = c.n_heads * c.head_dim;
  // Each sequence gets blocks from a shuffled free list: tables are scattered over the pool.
  std::vector<int32_t> free_blocks(static_cast<size_t>(num_blocks));
  std::iota(free_blocks.begin(), free_blocks.end(), 0);
  std::shuffle(free_blocks.begin(), free_blocks.end(), std::mt19937(21));
  std::vector<std::vector<int32_t>> tables;
  size_t next = 0;
  for (int64_t len : lens) {
    std::vector<int32_t> t;
    for (int64_t b = 0; b < (len + c.block_size - 1) / c.block_size; ++b) t.push_back(free_blocks.at(next++));
    tables.push_back(t);
  }
  // The step's queries: which sequence and position each token is.
  std::vector<int32_t> seq, pos;
  for (size_t s = 0; s < lens.size(); ++s) {
    const int64_t len = lens[s];
    int64_t first = len - 1;  // decode: the last position only
    if (std::string(c.mode) == "prefill") first = 0;
    if (std::string(c.mode) == "mixed") first = s % 2 == 0 ? len - 1 : len / 2;  // decodes and prefill chunks
    for (int64_t p = first; p < len; ++p) {
      seq.push_back(static_cast<int32_t>(s));
      pos.push_back(static_cast<int32_t>(p));
    }
  }
  const auto n = static_cast<int64_t>(pos.size());
  const Tensor k = test::RandomTensor(c.kv, {rows, kv_dim}, 22, 2.f);
  const Tensor v = test::RandomTensor(c.kv, {rows, kv_dim}, 23, 2.f);
  const Tensor q = test::RandomTensor(DType::kF32, {n, q_dim}, 24, 2.f);
  std::vector<std::span<const int32_t>> spans;
  for (int64_t t = 0; t < n; ++t) spans.emplace_back(tables[static_cast<size_t>(seq[static_cast<size_t>(t)])]);
  const float scale = 1.f / std::sqrt(static_cast<float>(c.head_dim));
  Tensor ref = Tensor::Empty(DType::kF32, {n, q_dim});
  // The GPU pool keeps slot rows; the CPU reference reads its own layout of the same values.
  kernels::Attention(kernels::ExecContext::Reference(), q, kernels::KvPoolFromSlotRows(k, c.head_dim, c.block_size),
                     kernels::KvPoolFromSlotRows(v, c.head_dim, c.block_size), c.head_dim, c.block_size, pos, spans,
                     scale, ref);

  const int64_t stride = std::max<int64_t>(80, 2000 / c.block_size + 1);  // table row width (blocks)
  std::vector<int32_t> flat(lens.size() * stride, 0);
  for (size_t s = 0; s < tables.size(); ++s) std::copy(tables[s].begin(), tables[s].end(), flat.begin() + static_cast<std::ptrdiff_t>(s * stride));
  auto dq = test::ToDevice(q);
  auto dk = test::ToDevice(k);
  auto dv = test::ToDevice(v);
  auto dpos = test::ToDevice(pos);
  auto dseq = test::ToDevice(seq);
  auto dtab = test::ToDevice(flat);
  cuda::AttentionArgs a;
  a.q = dq.as<float>();
  a.q_ld = q_dim;
  a.n = n;
  a.n_heads = c.n_heads;
  a.n_kv_heads = c.n_kv_heads;
  a.head_dim = c.head_dim;
  a.k = dk.get();
  a.v = dv.get();
  a.kv_type = c.kv;
  a.block_size = c.block_size;
  a.positions = dpos.as<int32_t>();
  a.seq_of_token = dseq.as<int32_t>();
  a.tables = dtab.as<int32_t>();
  a.table_stride = stride;
  a.scale = scale;
  a.out_ld = q_dim;
  // One block per (token, head), then split keys (flash-decoding; the scratch poisoned, so an
  // unwritten partial shows).
  const size_t partial_bytes = cuda::AttentionScratchBytes(c.head_dim);
  auto partial = test::Poisoned(partial_bytes / sizeof(float));
  // Each with 4 and 8 keys per warp tile (8: head size 128 only; the others use 4), and split
  // keys at 1 and 16 blocks per SM too.
  struct Variant {
    bool split;
    int tile, blocks_per_sm;
  };
  for (const Variant var : {Variant{false, 4, 4}, Variant{true, 4, 4}, Variant{false, 8, 4}, Variant{true, 8, 4},
                          Variant{true, 4, 1}, Variant{true, 8, 16}}) {
    cuda::SetAttentionKeyTile(var.tile);
    cuda::SetAttentionSplitBlocksPerSm(var.blocks_per_sm);
    auto out = test::Poisoned(static_cast<size_t>(n * q_dim));
    a.out = out.as<float>();
    a.partial = var.split ? partial.as<float>() : nullptr;
    a.partial_bytes = var.split ? partial_bytes : 0;
    cuda::Attention(a);
    cuda::SetAttentionKeyTile(4);
    cuda::SetAttentionSplitBlocksPerSm(4);
    const double err = test::RelError(test::ToHost(out, static_cast<size_t>(n * q_dim)), test::ToVector(ref));
    EXPECT_LE(err, 1e-5) << (var.split ? "split keys" : "one block per head") << ", tile " << var.tile << ", "
                         << var.blocks_per_sm << " blocks per SM";
    std::printf("[ attention %s %s d=%lld %lld/%lld heads, %lld queries, tile %d%s ] relative error %.3g\n", c.mode,
                std::string(Name(c.kv)).c_str(), static_cast<long long>(c.head_dim),
                static_cast<long long>(c.n_heads), static_cast<long long>(c.n_kv_heads), static_cast<long long>(n),
                var.tile, var.split ? (", split keys, " + std::to_string(var.blocks_per_sm) + "/SM").c_str() : "", err);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaAttentionTest,
    ::testing::Values(AttentionCase{DType::kBF16, 128, 28, 4, 16, "decode"}, AttentionCase{DType::kBF16, 128, 28, 4, 16, "prefill"},
                      AttentionCase{DType::kF16, 128, 8, 2, 16, "mixed"}, AttentionCase{DType::kF32, 64, 4, 2, 4, "mixed"},
                      AttentionCase{DType::kBF16, 64, 4, 2, 16, "prefill"}, AttentionCase{DType::kF32, 16, 4, 2, 8, "decode"},
                      AttentionCase{DType::kBF16, 16, 4, 4, 8, "mixed"}, AttentionCase{DType::kBF16, 128, 28, 4, 16, "long"},
                      AttentionCase{DType::kF32, 64, 8, 2, 8, "long"}),
    [](const auto& p) {
      return std::string(p.param.mode) + "_" + std::string(Name(p.param.kv)) + "_d" + std::to_string(p.param.head_dim) +
             "_h" + std::to_string(p.param.n_heads) + "_" + std::to_string(p.param.n_kv_heads) + "_bs" +
             std::to_string(p.param.block_size);
    });

}  // namespace
}  // namespace qb
