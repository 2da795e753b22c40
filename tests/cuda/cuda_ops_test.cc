// Row and elementwise CUDA ops against the CPU reference kernels (kernels/ref via
// ExecContext::Reference()) on fresh random inputs, outputs poisoned with NaN before each op.
// These ops compute in f32 on both sides: tolerance 1e-5 relative.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "cuda/cuda_test_util.h"
#include "kernels/ops.h"
#include "tensor/dequantize.h"

namespace qb {
namespace {

using test::Poisoned;
using test::RelError;
using test::ToDevice;
using test::ToHost;
namespace k = kernels;

constexpr double kF32Tol = 1e-5;

const k::ExecContext& Ref() { return k::ExecContext::Reference(); }

Tensor F32(const std::vector<float>& v, Shape shape) {
  Tensor t = Tensor::Empty(DType::kF32, std::move(shape));
  std::copy(v.begin(), v.end(), t.mutable_data<float>());
  return t;
}

class CudaEmbeddingTest : public ::testing::TestWithParam<DType> {};

TEST_P(CudaEmbeddingTest, MatchesReference) {
  QB_REQUIRE_CUDA();
  const int64_t vocab = 300, d = 96;
  const Tensor table = test::RandomTensor(GetParam(), {vocab, d}, 1);
  const std::vector<int32_t> ids = {0, 299, 17, 17, 150, 3, 298};
  const auto n = static_cast<int64_t>(ids.size());
  Tensor ref = Tensor::Empty(DType::kF32, {n, d});
  k::Embedding(ids, table, ref);
  auto dt = ToDevice(table);
  auto di = ToDevice(ids);
  auto out = Poisoned(static_cast<size_t>(n * d));
  cuda::Embedding(di.as<int32_t>(), n, dt.get(), GetParam(), d, out.as<float>());
  EXPECT_EQ(RelError(ToHost(out, static_cast<size_t>(n * d)), test::ToVector(ref)), 0.0);  // exact conversions
}

INSTANTIATE_TEST_SUITE_P(Tables, CudaEmbeddingTest, ::testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                         [](const auto& p) { return std::string(Name(p.param)); });

TEST(CudaOpsTest, RmsNormMatchesReference) {
  QB_REQUIRE_CUDA();
  for (int64_t d : {64, 256, 3584, 5000}) {
    const int64_t n = 5;
    const auto x = test::RandomFloats(static_cast<size_t>(n * d), 2, -3.f, 3.f);
    const auto w = test::RandomFloats(static_cast<size_t>(d), 3, 0.5f, 1.5f);
    Tensor ref = Tensor::Empty(DType::kF32, {n, d});
    k::RmsNorm(Ref(), F32(x, {n, d}), F32(w, {d}), 1e-6f, ref);
    auto dx = ToDevice(x);
    auto dw = ToDevice(w);
    auto out = Poisoned(static_cast<size_t>(n * d));
    cuda::RmsNorm(dx.as<float>(), n, d, dw.as<float>(), 1e-6f, out.as<float>());
    EXPECT_LE(RelError(ToHost(out, static_cast<size_t>(n * d)), test::ToVector(ref)), kF32Tol) << d;
    // In place (y aliases x), as the model's final norm does.
    cuda::RmsNorm(dx.as<float>(), n, d, dw.as<float>(), 1e-6f, dx.as<float>());
    EXPECT_LE(RelError(ToHost(dx, static_cast<size_t>(n * d)), test::ToVector(ref)), kF32Tol) << d << " in place";
  }
}

// Fused residual add + RMSNorm: x must become exactly x + delta, y rmsnorm(x + delta).
TEST(CudaOpsTest, AddRmsNormMatchesAddThenRmsNorm) {
  QB_REQUIRE_CUDA();
  for (int64_t d : {64, 256, 3584, 5000}) {
    const int64_t n = 5;
    const auto x = test::RandomFloats(static_cast<size_t>(n * d), 30, -3.f, 3.f);
    const auto delta = test::RandomFloats(static_cast<size_t>(n * d), 31, -3.f, 3.f);
    const auto w = test::RandomFloats(static_cast<size_t>(d), 32, 0.5f, 1.5f);
    Tensor sum = F32(x, {n, d});
    k::AddInPlace(sum, F32(delta, {n, d}));
    Tensor ref = Tensor::Empty(DType::kF32, {n, d});
    k::RmsNorm(Ref(), sum, F32(w, {d}), 1e-6f, ref);
    auto dx = ToDevice(x);
    auto dd = ToDevice(delta);
    auto dw = ToDevice(w);
    auto out = Poisoned(static_cast<size_t>(n * d));
    cuda::AddRmsNorm(dx.as<float>(), dd.as<float>(), n, d, dw.as<float>(), 1e-6f, out.as<float>());
    EXPECT_EQ(RelError(ToHost(dx, static_cast<size_t>(n * d)), test::ToVector(sum)), 0.0) << d;
    EXPECT_LE(RelError(ToHost(out, static_cast<size_t>(n * d)), test::ToVector(ref)), kF32Tol) << d;
  }
}

TEST(CudaOpsTest, RopeMatchesReferenceOnStridedRows) {
  QB_REQUIRE_CUDA();
  for (int64_t head_dim : {16, 64, 128}) {
    const int64_t n = 6, heads = 5, ld = heads * head_dim + 40;  // rows wider than the heads
    const std::vector<int32_t> pos = {0, 1, 7, 100, 4095, 30000};
    k::RopeTable rope;
    for (int64_t i = 0; i < head_dim / 2; ++i)
      rope.inv_freq.push_back(static_cast<float>(std::pow(1e6, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim))));
    rope.attention_scale = 1.1f;  // as YaRN sets it
    const auto x = test::RandomFloats(static_cast<size_t>(n * ld), 4);
    // Reference on the packed heads.
    std::vector<float> packed(static_cast<size_t>(n * heads * head_dim));
    for (int64_t t = 0; t < n; ++t)
      std::copy(x.begin() + t * ld, x.begin() + t * ld + heads * head_dim, packed.begin() + t * heads * head_dim);
    Tensor ref = F32(packed, {n, heads * head_dim});
    k::Rope(Ref(), ref, head_dim, pos, rope);
    auto dx = ToDevice(x);
    auto dp = ToDevice(pos);
    auto df = ToDevice(rope.inv_freq);
    cuda::Rope(dx.as<float>(), n, heads, head_dim, ld, dp.as<int32_t>(), df.as<float>(), rope.attention_scale);
    const auto got = ToHost(dx, static_cast<size_t>(n * ld));
    std::vector<float> got_packed(packed.size());
    for (int64_t t = 0; t < n; ++t) {
      std::copy(got.begin() + t * ld, got.begin() + t * ld + heads * head_dim, got_packed.begin() + t * heads * head_dim);
      for (int64_t c = heads * head_dim; c < ld; ++c)  // columns past the heads are untouched
        ASSERT_EQ(got[static_cast<size_t>(t * ld + c)], x[static_cast<size_t>(t * ld + c)]);
    }
    EXPECT_LE(RelError(got_packed, test::ToVector(ref)), kF32Tol) << head_dim;
  }
}

TEST(CudaOpsTest, SiluMulMatchesReferenceOnFusedRows) {
  QB_REQUIRE_CUDA();
  const int64_t n = 7, d = 768;
  const auto gu = test::RandomFloats(static_cast<size_t>(n * 2 * d), 5, -6.f, 6.f);  // [gate | up] rows
  std::vector<float> g(static_cast<size_t>(n * d)), u(g.size());
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < d; ++i) {
      g[static_cast<size_t>(t * d + i)] = gu[static_cast<size_t>(t * 2 * d + i)];
      u[static_cast<size_t>(t * d + i)] = gu[static_cast<size_t>(t * 2 * d + d + i)];
    }
  Tensor ref = Tensor::Empty(DType::kF32, {n, d});
  k::SiluMul(Ref(), F32(g, {n, d}), F32(u, {n, d}), ref);
  auto dgu = ToDevice(gu);
  auto out = Poisoned(static_cast<size_t>(n * d));
  cuda::SiluMul(dgu.as<float>(), dgu.as<float>() + d, n, d, 2 * d, out.as<float>(), d);
  EXPECT_LE(RelError(ToHost(out, static_cast<size_t>(n * d)), test::ToVector(ref)), kF32Tol);
}

TEST(CudaOpsTest, AddMatchesReference) {
  QB_REQUIRE_CUDA();
  const int64_t count = 100003;
  const auto a = test::RandomFloats(static_cast<size_t>(count), 6), b = test::RandomFloats(static_cast<size_t>(count), 7);
  Tensor ref = F32(a, {count});
  k::AddInPlace(ref, F32(b, {count}));
  auto da = ToDevice(a);
  auto db = ToDevice(b);
  cuda::Add(da.as<float>(), db.as<float>(), count);
  EXPECT_EQ(RelError(ToHost(da, static_cast<size_t>(count)), test::ToVector(ref)), 0.0);
}

// Fused RoPE + KV scatter on [q | k | v] rows: the same bits as Rope followed by two
// ScatterRows (rows and pools), and q/k within 1e-5 of the CPU reference RoPE.
class CudaRopeScatterTest : public ::testing::TestWithParam<DType> {};

TEST_P(CudaRopeScatterTest, MatchesRopeThenScatter) {
  QB_REQUIRE_CUDA();
  const DType pool_type = GetParam();
  for (int64_t head_dim : {16, 128}) {
    const int64_t n = 5, n_heads = 7, n_kv = 2, kvd = n_kv * head_dim, qd = n_heads * head_dim;
    const int64_t ld = qd + 2 * kvd + 24, pool_rows = 40;
    const std::vector<int32_t> pos = {0, 3, 100, 4095, 30000};
    const std::vector<int32_t> slots = {39, 0, 17, 18, 5};
    k::RopeTable rope;
    for (int64_t i = 0; i < head_dim / 2; ++i)
      rope.inv_freq.push_back(
          static_cast<float>(std::pow(1e6, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim))));
    rope.attention_scale = 1.1f;
    const auto x = test::RandomFloats(static_cast<size_t>(n * ld), 33, -2.f, 2.f);
    const Tensor pool0 = test::RandomTensor(pool_type, {pool_rows, kvd}, 34);
    auto dp = ToDevice(pos);
    auto ds = ToDevice(slots);
    auto df = ToDevice(rope.inv_freq);
    // Unfused on the device.
    auto ux = ToDevice(x);
    auto uk = ToDevice(pool0);
    auto uv = ToDevice(pool0);
    cuda::Rope(ux.as<float>(), n, n_heads + n_kv, head_dim, ld, dp.as<int32_t>(), df.as<float>(),
               rope.attention_scale);
    cuda::ScatterRows(ux.as<float>() + qd, n, kvd, ld, ds.as<int32_t>(), uk.get(), pool_type);
    cuda::ScatterRows(ux.as<float>() + qd + kvd, n, kvd, ld, ds.as<int32_t>(), uv.get(), pool_type);
    // Fused.
    auto fx = ToDevice(x);
    auto fk = ToDevice(pool0);
    auto fv = ToDevice(pool0);
    cuda::RopeScatterKV(fx.as<float>(), n, n_heads, n_kv, head_dim, ld, dp.as<int32_t>(), df.as<float>(),
                        rope.attention_scale, ds.as<int32_t>(), fk.get(), fv.get(), pool_type);
    const auto urows = ToHost(ux, static_cast<size_t>(n * ld)), frows = ToHost(fx, static_cast<size_t>(n * ld));
    ASSERT_EQ(0, std::memcmp(urows.data(), frows.data(), urows.size() * sizeof(float))) << head_dim;
    std::vector<uint8_t> a(pool0.nbytes()), b(pool0.nbytes());
    cuda::CopyToHost(a.data(), uk.get(), a.size());
    cuda::CopyToHost(b.data(), fk.get(), b.size());
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size())) << "k pool, head_dim " << head_dim;
    cuda::CopyToHost(a.data(), uv.get(), a.size());
    cuda::CopyToHost(b.data(), fv.get(), b.size());
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size())) << "v pool, head_dim " << head_dim;
    EXPECT_NE(0, std::memcmp(a.data(), pool0.raw(), a.size()));  // something was written
    // q and k against the CPU reference RoPE.
    const int64_t hk = (n_heads + n_kv) * head_dim;
    std::vector<float> packed(static_cast<size_t>(n * hk)), got(packed.size());
    for (int64_t t = 0; t < n; ++t) {
      std::copy(x.begin() + t * ld, x.begin() + t * ld + hk, packed.begin() + t * hk);
      std::copy(frows.begin() + t * ld, frows.begin() + t * ld + hk, got.begin() + t * hk);
    }
    Tensor ref = F32(packed, {n, hk});
    k::Rope(Ref(), ref, head_dim, pos, rope);
    EXPECT_LE(RelError(got, test::ToVector(ref)), kF32Tol) << head_dim;
  }
}

INSTANTIATE_TEST_SUITE_P(Pools, CudaRopeScatterTest, ::testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                         [](const auto& p) { return std::string(Name(p.param)); });

class CudaScatterTest : public ::testing::TestWithParam<DType> {};

TEST_P(CudaScatterTest, MatchesReferenceBitForBit) {
  QB_REQUIRE_CUDA();
  const DType pool_type = GetParam();
  const int64_t rows = 64, d = 128, n = 5, ld = 3 * d;
  const std::vector<int32_t> slots = {63, 0, 17, 18, 40};
  const auto src = test::RandomFloats(static_cast<size_t>(n * ld), 8, -4.f, 4.f);
  std::vector<float> packed(static_cast<size_t>(n * d));
  for (int64_t t = 0; t < n; ++t)
    std::copy(src.begin() + t * ld + d, src.begin() + t * ld + 2 * d, packed.begin() + t * d);  // column slice d..2d
  Tensor pool = test::RandomTensor(pool_type, {rows, d}, 9);
  auto dpool = ToDevice(pool);
  k::ScatterRows(F32(packed, {n, d}), slots, pool);
  auto dsrc = ToDevice(src);
  auto ds = ToDevice(slots);
  cuda::ScatterRows(dsrc.as<float>() + d, n, d, ld, ds.as<int32_t>(), dpool.get(), pool_type);
  std::vector<uint8_t> got(pool.nbytes());
  cuda::CopyToHost(got.data(), dpool.get(), got.size());
  EXPECT_EQ(0, std::memcmp(got.data(), pool.raw(), got.size()));  // same rounding, untouched rows kept
}

INSTANTIATE_TEST_SUITE_P(Pools, CudaScatterTest, ::testing::Values(DType::kF32, DType::kF16, DType::kBF16),
                         [](const auto& p) { return std::string(Name(p.param)); });

TEST(CudaOpsTest, GatherRowsPicksRows) {
  QB_REQUIRE_CUDA();
  const int64_t n = 9, d = 40;
  const auto x = test::RandomFloats(static_cast<size_t>(n * d), 10);
  const std::vector<int32_t> rows = {8, 0, 3};
  auto dx = ToDevice(x);
  auto dr = ToDevice(rows);
  auto out = Poisoned(rows.size() * d);
  cuda::GatherRows(dx.as<float>(), d, dr.as<int32_t>(), static_cast<int64_t>(rows.size()), out.as<float>());
  const auto got = ToHost(out, rows.size() * d);
  for (size_t i = 0; i < rows.size(); ++i)
    for (int64_t c = 0; c < d; ++c)
      ASSERT_EQ(got[i * d + static_cast<size_t>(c)], x[static_cast<size_t>(rows[i] * d + c)]);
}

}  // namespace
}  // namespace qb
