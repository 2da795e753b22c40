// The ops through their public API, against direct float64 evaluations of their definitions.
#include "kernels/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "tensor/dequantize.h"
#include "util/half.h"

namespace qb::kernels {
namespace {

const ExecContext& kRef = ExecContext::Reference();

// Every token's table: the one block that is the whole contiguous K/V.
std::vector<std::span<const int32_t>> OneBlock(size_t n_tokens) {
  static const int32_t kZero[1] = {0};
  return std::vector<std::span<const int32_t>>(n_tokens, std::span<const int32_t>(kZero, 1));
}

Tensor Random(Shape shape, uint32_t seed, float scale = 1.0f) {
  Tensor t = Tensor::Empty(DType::kF32, std::move(shape));
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = d(rng);
  return t;
}

// The same values stored as `type` (quantized types round them).
Tensor Convert(const Tensor& f32, DType type) {
  Tensor out = Tensor::Empty(type, f32.shape());
  for (int64_t r = 0; r < f32.rows(); ++r) {
    const float* src = f32.data<float>() + r * f32.cols();
    auto* dst = static_cast<uint8_t*>(out.mutable_raw()) + r * out.row_bytes();
    for (int64_t i = 0; i < f32.cols(); ++i) {
      if (type == DType::kF16) reinterpret_cast<uint16_t*>(dst)[i] = F32ToF16(src[i]);
      if (type == DType::kBF16) reinterpret_cast<uint16_t*>(dst)[i] = F32ToBF16(src[i]);
    }
    if (type == DType::kQ8_0) QuantizeRowQ8_0(src, reinterpret_cast<BlockQ8_0*>(dst), f32.cols());
    if (type == DType::kQ4_0) QuantizeRowQ4_0(src, reinterpret_cast<BlockQ4_0*>(dst), f32.cols());
    if (type == DType::kF32) std::memcpy(dst, src, static_cast<size_t>(out.row_bytes()));
  }
  return out;
}

class LinearTest : public ::testing::TestWithParam<DType> {};

TEST_P(LinearTest, MatchesDequantizedDotProducts) {
  const DType type = GetParam();
  Tensor x = Random({3, 64}, 1);
  Tensor w32 = Random({5, 64}, 2, 0.1f);
  Tensor w = Convert(w32, type);
  Tensor bias = Random({5}, 3);
  Tensor y = Tensor::Empty(DType::kF32, {3, 5});
  Linear(kRef, x, w, &bias, y);
  std::vector<float> row(64);
  for (int o = 0; o < 5; ++o) {
    DequantizeRow(type, w.row(o), row.data(), 64);
    for (int t = 0; t < 3; ++t) {
      double acc = bias.data<float>()[o];
      for (int i = 0; i < 64; ++i) acc += static_cast<double>(x.data<float>()[t * 64 + i]) * row[i];
      EXPECT_NEAR(y.data<float>()[t * 5 + o], acc, 1e-5) << Name(type);
    }
  }
  Tensor y2 = Tensor::Empty(DType::kF32, {3, 5});
  Linear(kRef, x, w, nullptr, y2);
  EXPECT_NEAR(y.data<float>()[0] - y2.data<float>()[0], bias.data<float>()[0], 1e-5);
}

INSTANTIATE_TEST_SUITE_P(AllWeightTypes, LinearTest,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0),
                         [](const auto& p) { return std::string(Name(p.param)); });

TEST(RmsNormTest, MatchesDefinition) {
  Tensor x = Random({2, 16}, 4);
  Tensor w = Random({16}, 5);
  Tensor y = Tensor::Empty(DType::kF32, {2, 16});
  RmsNorm(kRef, x, w, 1e-6f, y);
  for (int t = 0; t < 2; ++t) {
    double ss = 0;
    for (int i = 0; i < 16; ++i) ss += std::pow(x.data<float>()[t * 16 + i], 2);
    const double inv = 1.0 / std::sqrt(ss / 16 + 1e-6);
    for (int i = 0; i < 16; ++i)
      EXPECT_NEAR(y.data<float>()[t * 16 + i], x.data<float>()[t * 16 + i] * inv * w.data<float>()[i], 1e-6);
  }
  RmsNorm(kRef, x, w, 1e-6f, x);  // in place gives the same
  for (int i = 0; i < 32; ++i) EXPECT_EQ(x.data<float>()[i], y.data<float>()[i]);
}

RopeTable Table(int64_t head_dim, double theta) {
  RopeTable r;
  for (int64_t i = 0; i < head_dim / 2; ++i)
    r.inv_freq.push_back(static_cast<float>(std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim))));
  return r;
}

TEST(RopeTest, RotatesHalvesAsNeox) {
  const int64_t hd = 8, heads = 2;
  Tensor x = Random({3, heads * hd}, 6);
  Tensor orig = x.Copy();
  const std::vector<int32_t> pos = {0, 5, 1000};
  RopeTable table = Table(hd, 10000.0);
  Rope(kRef, x, hd, pos, table);
  for (int t = 0; t < 3; ++t)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < hd / 2; ++i) {
        const float* o = orig.data<float>() + (t * heads + h) * hd;
        const float* r = x.data<float>() + (t * heads + h) * hd;
        const double a = pos[t] * static_cast<double>(table.inv_freq[i]);
        EXPECT_NEAR(r[i], o[i] * std::cos(a) - o[i + hd / 2] * std::sin(a), 1e-5);
        EXPECT_NEAR(r[i + hd / 2], o[i + hd / 2] * std::cos(a) + o[i] * std::sin(a), 1e-5);
      }
  for (int i = 0; i < heads * hd; ++i) EXPECT_EQ(x.data<float>()[i], orig.data<float>()[i]);  // position 0
}

TEST(RopeTest, ScoresDependOnlyOnRelativePosition) {
  const int64_t hd = 16;
  RopeTable table = Table(hd, 1e6);
  Tensor q = Random({1, hd}, 7), k = Random({1, hd}, 8);
  auto score = [&](int32_t pq, int32_t pk) {
    Tensor a = q.Copy(), b = k.Copy();
    Rope(kRef, a, hd, std::vector<int32_t>{pq}, table);
    Rope(kRef, b, hd, std::vector<int32_t>{pk}, table);
    double s = 0;
    for (int i = 0; i < hd; ++i) s += static_cast<double>(a.data<float>()[i]) * b.data<float>()[i];
    return s;
  };
  EXPECT_NEAR(score(10, 3), score(107, 100), 1e-4);
  EXPECT_GT(std::fabs(score(10, 3) - score(10, 9)), 1e-3);
}

TEST(RopeTest, AttentionScaleMultipliesCosAndSin) {
  const int64_t hd = 4;
  RopeTable table = Table(hd, 10000.0);
  table.attention_scale = 2.0f;
  Tensor x = Random({1, hd}, 9);
  Tensor orig = x.Copy();
  Rope(kRef, x, hd, std::vector<int32_t>{0}, table);
  for (int i = 0; i < hd; ++i) EXPECT_FLOAT_EQ(x.data<float>()[i], 2.0f * orig.data<float>()[i]);
}

TEST(SiluMulTest, MatchesDefinition) {
  Tensor g = Random({4, 8}, 10, 3.0f), u = Random({4, 8}, 11);
  Tensor out = Tensor::Empty(DType::kF32, {4, 8});
  SiluMul(kRef, g, u, out);
  for (int i = 0; i < 32; ++i) {
    const double gv = g.data<float>()[i];
    EXPECT_NEAR(out.data<float>()[i], gv / (1 + std::exp(-gv)) * u.data<float>()[i], 1e-6);
  }
}

// Naive causal GQA attention for query t over keys 0..pos[t].
std::vector<double> NaiveAttention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t hd,
                                   const std::vector<int32_t>& pos, int64_t t, int64_t h) {
  const int64_t n_heads = q.cols() / hd, n_kv = k.cols() / hd, kvh = h / (n_heads / n_kv);
  std::vector<double> s;
  for (int64_t j = 0; j <= pos[static_cast<size_t>(t)]; ++j) {
    double d = 0;
    for (int64_t i = 0; i < hd; ++i)
      d += static_cast<double>(q.data<float>()[t * q.cols() + h * hd + i]) * k.data<float>()[j * k.cols() + kvh * hd + i];
    s.push_back(d / std::sqrt(static_cast<double>(hd)));
  }
  double mx = -1e300, sum = 0;
  for (double x : s) mx = std::max(mx, x);
  for (double& x : s) sum += (x = std::exp(x - mx));
  std::vector<double> out(static_cast<size_t>(hd), 0.0);
  for (size_t j = 0; j < s.size(); ++j)
    for (int64_t i = 0; i < hd; ++i)
      out[static_cast<size_t>(i)] += s[j] / sum * v.data<float>()[static_cast<int64_t>(j) * v.cols() + kvh * hd + i];
  return out;
}

TEST(AttentionTest, CausalGroupedQueryAttention) {
  const int64_t hd = 8, n_heads = 4, n_kv = 2, n_keys = 6;
  Tensor q = Random({3, n_heads * hd}, 12), k = Random({n_keys, n_kv * hd}, 13), v = Random({n_keys, n_kv * hd}, 14);
  const std::vector<int32_t> pos = {3, 4, 5};  // three new tokens after three cached ones
  Tensor out = Tensor::Empty(DType::kF32, {3, n_heads * hd});
  // The naive loop reads slot rows (all heads of a key in one row); the pool keeps heads in blocks.
  Attention(kRef, q, KvPoolFromSlotRows(k, hd, n_keys), KvPoolFromSlotRows(v, hd, n_keys), hd, n_keys, pos,
            OneBlock(pos.size()), 1.0f / std::sqrt(static_cast<float>(hd)), out);
  for (int64_t t = 0; t < 3; ++t)
    for (int64_t h = 0; h < n_heads; ++h) {
      const auto want = NaiveAttention(q, k, v, hd, pos, t, h);
      for (int64_t i = 0; i < hd; ++i) EXPECT_NEAR(out.data<float>()[t * n_heads * hd + h * hd + i], want[static_cast<size_t>(i)], 1e-5);
    }
}

TEST(AttentionTest, FirstPositionSeesOnlyItself) {
  const int64_t hd = 4;
  Tensor q = Random({1, hd}, 15), k = Random({3, hd}, 16), v = Random({3, hd}, 17);
  Tensor out = Tensor::Empty(DType::kF32, {1, hd});
  Attention(kRef, q, k, v, hd, 3, std::vector<int32_t>{0}, OneBlock(1), 0.5f, out);
  for (int i = 0; i < hd; ++i) EXPECT_FLOAT_EQ(out.data<float>()[i], v.data<float>()[i]);
}

TEST(AttentionTest, PagedLayoutGivesTheSameResult) {
  // 11 keys in blocks of 4 scattered over a pool of 6 blocks, in the order 5, 0, 3; two kv heads,
  // so each block holds two runs of 4 key rows.
  const int64_t hd = 8, heads = 4, kv = 2, bs = 4, n_keys = 11;
  Tensor q = Random({2, heads * hd}, 30), k = Random({n_keys, kv * hd}, 31), v = Random({n_keys, kv * hd}, 32);
  const std::vector<int32_t> table = {5, 0, 3};
  Tensor kp = Tensor::Empty(DType::kF32, {6 * bs, kv * hd}), vp = Tensor::Empty(DType::kF32, {6 * bs, kv * hd});
  std::vector<int32_t> slots;
  for (int32_t j = 0; j < n_keys; ++j) slots.push_back(table[static_cast<size_t>(j / bs)] * bs + j % bs);
  ScatterKv(kRef, k, slots, kp, hd, bs);
  ScatterKv(kRef, v, slots, vp, hd, bs);
  const std::vector<int32_t> pos = {7, 10};
  Tensor want = Tensor::Empty(DType::kF32, q.shape()), got = Tensor::Empty(DType::kF32, q.shape());
  Attention(kRef, q, KvPoolFromSlotRows(k, hd, n_keys), KvPoolFromSlotRows(v, hd, n_keys), hd, n_keys, pos,
            OneBlock(2), 0.3f, want);
  const std::vector<std::span<const int32_t>> tables(2, std::span<const int32_t>(table));
  Attention(kRef, q, kp, vp, hd, bs, pos, tables, 0.3f, got);
  for (int64_t i = 0; i < got.numel(); ++i) EXPECT_EQ(got.data<float>()[i], want.data<float>()[i]);
  // The same in an f16 pool: within f16 rounding of K and V.
  Tensor kh = Tensor::Empty(DType::kF16, kp.shape()), vh = Tensor::Empty(DType::kF16, vp.shape());
  ScatterKv(kRef, k, slots, kh, hd, bs);
  ScatterKv(kRef, v, slots, vh, hd, bs);
  Attention(kRef, q, kh, vh, hd, bs, pos, tables, 0.3f, got);
  for (int64_t i = 0; i < got.numel(); ++i) EXPECT_NEAR(got.data<float>()[i], want.data<float>()[i], 5e-3);
}

// The pool's layout, spelled out: head h of slot s at ((s / bs) * n_kv + h) * bs * hd + (s % bs)
// * hd; ScatterKv writes there, and KvPoolFromSlotRows moves a slot-row pool's bytes there.
TEST(KvPoolTest, HeadsAreContiguousWithinABlock) {
  EXPECT_EQ(KvHeadElement(0, 0, 64, 2, 16), 0);
  EXPECT_EQ(KvHeadElement(1, 0, 64, 2, 16), 64);
  EXPECT_EQ(KvHeadElement(0, 1, 64, 2, 16), 16 * 64);
  EXPECT_EQ(KvHeadElement(17, 1, 64, 2, 16), (2 + 1) * 16 * 64 + 64);
  const int64_t hd = 32, n_kv = 3, bs = 4, rows = 5 * bs;
  const Tensor src = Random({6, n_kv * hd}, 40);
  const std::vector<int32_t> slots = {19, 0, 5, 6, 7, 12};
  for (const DType t : {DType::kF32, DType::kF16, DType::kQ8_0}) {
    Tensor by_rows = Tensor::Empty(t, {rows, n_kv * hd}), pool = Tensor::Empty(t, {rows, n_kv * hd});
    ScatterRows(src, slots, by_rows);
    ScatterKv(kRef, src, slots, pool, hd, bs);
    const Tensor converted = KvPoolFromSlotRows(by_rows, hd, bs);
    ASSERT_EQ(converted.nbytes(), pool.nbytes());
    EXPECT_EQ(0, std::memcmp(converted.raw(), pool.raw(), pool.nbytes())) << Name(t);
    // Slot 5's head 2 is where KvHeadElement says, and holds src row 2's last head.
    std::vector<float> got(static_cast<size_t>(hd)), want(static_cast<size_t>(hd));
    DequantizeRow(t, static_cast<const uint8_t*>(pool.raw()) + RowBytes(t, KvHeadElement(5, 2, hd, n_kv, bs)),
                  got.data(), hd);
    DequantizeRow(t, static_cast<const uint8_t*>(by_rows.row(5)) + RowBytes(t, 2 * hd), want.data(), hd);
    EXPECT_EQ(got, want) << Name(t);
    EXPECT_NE(0.f, want[0]);
  }
}

TEST(EmbeddingTest, LooksUpAndDequantizesRows) {
  Tensor table32 = Random({10, 32}, 18);
  Tensor table = Convert(table32, DType::kQ8_0);
  Tensor out = Tensor::Empty(DType::kF32, {2, 32});
  const std::vector<int32_t> ids = {7, 2};
  Embedding(ids, table, out);
  std::vector<float> row(32);
  DequantizeRow(DType::kQ8_0, table.row(7), row.data(), 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(out.data<float>()[i], row[i]);
}

TEST(ElementwiseTest, AddAndScatter) {
  Tensor a = Random({2, 3}, 19), b = Random({2, 3}, 20);
  Tensor a0 = a.Copy();
  AddInPlace(a, b);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(a.data<float>()[i], a0.data<float>()[i] + b.data<float>()[i]);
  Tensor dst = Tensor::Empty(DType::kF32, {5, 3});
  ScatterRows(b, std::vector<int32_t>{4, 1}, dst);
  EXPECT_EQ(dst.data<float>()[12], b.data<float>()[0]);
  EXPECT_EQ(dst.data<float>()[3], b.data<float>()[3]);
  EXPECT_EQ(dst.data<float>()[0], 0.f);
}

TEST(OpsDeathTest, ShapeMismatchIsABug) {
  Tensor x = Tensor::Empty(DType::kF32, {2, 8});
  Tensor w = Tensor::Empty(DType::kF32, {4, 7});
  Tensor y = Tensor::Empty(DType::kF32, {2, 4});
  EXPECT_DEATH(Linear(kRef, x, w, nullptr, y), "Linear");
}

}  // namespace
}  // namespace qb::kernels
