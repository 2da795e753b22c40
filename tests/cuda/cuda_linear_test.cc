// CUDA Linear (GEMV and cuBLAS paths) against the CPU reference Linear for bf16, f16 and int4
// (Q4Z as the GPTQ/AWQ loader makes it, repacked; with and without an act-order permutation),
// for 1-33 tokens, with bias, writing a column slice of a wider, NaN-poisoned output; every GEMV
// generation (v1, v2, v3, see cuda_api.h) and the int4 tensor-core layout (kInt4Mma).
// Tolerances: the GEMV keeps f32 activations and exact weights (1e-5 relative); the tensor-core
// int4 kernel rounds activations to f16 (2e-3); the GEMM rounds activations (and int4 weights)
// to bf16/f16 (1e-2).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "cuda/cuda_test_util.h"
#include "kernels/cuda/int4_repack.h"
#include "kernels/ops.h"
#include "tensor/interleave.h"
#include "tensor/quant_blocks.h"
#include "util/half.h"

namespace qb {
namespace {

using cuda::LinearPath;
using cuda::WeightFormat;

// Q4Z [rows, cols] with one random scale and zero per group of `group` inputs.
Tensor RandomQ4Z(int64_t rows, int64_t cols, int64_t group, uint32_t seed) {
  std::mt19937 rng(seed);
  Tensor t = Tensor::Empty(DType::kQ4Z, {rows, cols});
  auto* blk = t.mutable_data<BlockQ4Z>();
  const int64_t nb = cols / 32, per = group / 32;
  uint16_t d = 0;
  uint8_t z = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < nb; ++b) {
      if (b % per == 0) {
        d = F32ToF16(0.004f + 0.02f * static_cast<float>(rng() % 1000) / 1000.f);
        z = static_cast<uint8_t>(rng() % 16);
      }
      BlockQ4Z& q = blk[r * nb + b];
      q.d = d;
      q.z = z;
      for (auto& byte : q.qs) byte = static_cast<uint8_t>(rng() & 0xff);
    }
  return t;
}

struct Weights {
  Tensor cpu;
  Tensor perm;
  std::vector<cuda::DeviceBuffer> bufs;
  cuda::DeviceMatrix m;
};

Weights Make(const std::string& kind, int64_t rows, int64_t cols) {
  Weights w;
  w.m.rows = rows;
  w.m.cols = cols;
  if (kind == "bf16" || kind == "f16") {
    w.cpu = test::RandomTensor(kind == "bf16" ? DType::kBF16 : DType::kF16, {rows, cols}, 11, 0.1f);
    w.m.format = kind == "bf16" ? WeightFormat::kBF16 : WeightFormat::kF16;
    w.bufs.push_back(test::ToDevice(w.cpu));
    w.m.data = w.bufs[0].get();
    return w;
  }
  const bool mma = kind.rfind("int4mma", 0) == 0;
  const int64_t group = kind == "int4_g128" || kind == "int4mma_g128" ? 128 : 32;
  w.cpu = RandomQ4Z(rows, cols, group, 12);
  const cuda::Int4Host h = cuda::RepackQ4Z(w.cpu.raw(), rows, cols);
  EXPECT_EQ(h.group_size, group);
  w.m.format = WeightFormat::kInt4;
  w.m.group_size = h.group_size;
  w.bufs.push_back(test::ToDevice(h.codes));
  w.bufs.push_back(test::ToDevice(h.scale_zero));
  w.m.data = w.bufs[0].get();
  w.m.scale_zero = w.bufs[1].get();
  if (mma) {
    w.bufs.emplace_back(static_cast<size_t>(cuda::Int4MmaCodeBytes(rows, cols)));
    EXPECT_TRUE(cuda::Int4MmaSupported(w.m));
    w.m = cuda::RepackInt4ForMma(w.m, w.bufs.back().get());
    EXPECT_EQ(w.m.format, WeightFormat::kInt4Mma);
  }
  if (kind == "int4_g32_perm" || kind == "int4mma_g32_perm") {
    std::vector<int32_t> p(static_cast<size_t>(cols));
    std::iota(p.begin(), p.end(), 0);
    std::shuffle(p.begin(), p.end(), std::mt19937(13));
    w.perm = Tensor::Empty(DType::kI32, {cols});
    std::copy(p.begin(), p.end(), w.perm.mutable_data<int32_t>());
    w.bufs.push_back(test::ToDevice(p));
    w.m.perm = w.bufs.back().as<int32_t>();
  }
  return w;
}

struct Case {
  std::string kind;
  int64_t rows, cols;
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.kind << " " << c.rows << "x" << c.cols; }

class CudaLinearTest : public ::testing::TestWithParam<Case> {};

// Every (GEMV generation, path) pair.
std::vector<std::pair<int, LinearPath>> Paths() {
  std::vector<std::pair<int, LinearPath>> p;
  for (const int version : {1, 2, 3})
    for (LinearPath path : {LinearPath::kGemv, LinearPath::kGemm, LinearPath::kAuto}) p.emplace_back(version, path);
  return p;
}

TEST_P(CudaLinearTest, MatchesReference) {
  QB_REQUIRE_CUDA();
  const Case& c = GetParam();
  Weights w = Make(c.kind, c.rows, c.cols);
  const auto bias = test::RandomFloats(static_cast<size_t>(c.rows), 14);
  Tensor bias_t = Tensor::Empty(DType::kF32, {c.rows});
  std::copy(bias.begin(), bias.end(), bias_t.mutable_data<float>());
  auto dbias = test::ToDevice(bias);
  const int64_t max_n = 33, col0 = 8, ldy = c.rows + 24;
  cuda::DeviceBuffer act(static_cast<size_t>(max_n * c.cols) * 4), wscr(static_cast<size_t>(c.rows * c.cols) * 2);
  const cuda::LinearScratch scratch{act.get(), act.bytes(), wscr.get(), wscr.bytes()};
  double worst_gemv = 0, worst_gemm = 0;
  for (int64_t n : {1, 2, 3, 4, 5, 8, 9, 17, 32, 33}) {
    Tensor x = test::RandomTensor(DType::kF32, {n, c.cols}, static_cast<uint32_t>(15 + n), 2.f);
    Tensor ref = Tensor::Empty(DType::kF32, {n, c.rows});
    kernels::Linear(kernels::ExecContext::Reference(), x, w.cpu, &bias_t, ref, w.perm.defined() ? &w.perm : nullptr);
    auto dx = test::ToDevice(x);
    for (const auto& [version, path] : Paths()) {
      cuda::SetGemvVersion(version);
      auto y = test::Poisoned(static_cast<size_t>(n * ldy));
      cuda::Linear(dx.as<float>(), n, w.m, dbias.as<float>(), y.as<float>() + col0, ldy, scratch, path);
      const auto all = test::ToHost(y, static_cast<size_t>(n * ldy));
      std::vector<float> got(static_cast<size_t>(n * c.rows));
      for (int64_t t = 0; t < n; ++t)
        for (int64_t o = 0; o < ldy; ++o) {
          const float v = all[static_cast<size_t>(t * ldy + o)];
          if (o >= col0 && o < col0 + c.rows)
            got[static_cast<size_t>(t * c.rows + o - col0)] = v;
          else
            ASSERT_TRUE(std::isnan(v)) << "wrote outside its columns: token " << t << " column " << o;
        }
      const double err = test::RelError(got, test::ToVector(ref));
      const bool gemv = path == LinearPath::kGemv ||
                        (path == LinearPath::kAuto && n <= cuda::GemvMaxTokens(w.m.format));
      (gemv ? worst_gemv : worst_gemm) = std::max(gemv ? worst_gemv : worst_gemm, err);
      const double gemv_tol = w.m.format == WeightFormat::kInt4Mma ? 2e-3 : 1e-5;
      if (w.m.format == WeightFormat::kInt4Mma && path == LinearPath::kGemv && version == 2) {
        // Every shape variant of the tensor-core kernel (benchmarks compare them) sums in the
        // same order: the same bits as the default.
        for (int variant = 1; variant < cuda::kInt4MmaVariants; ++variant)
          for (int tiles : {1, 2}) {
            cuda::SetInt4MmaVariant(variant);
            cuda::SetInt4MmaTiles(tiles);
            auto y2 = test::Poisoned(static_cast<size_t>(n * ldy));
            cuda::Linear(dx.as<float>(), n, w.m, dbias.as<float>(), y2.as<float>() + col0, ldy, scratch, path);
            cuda::SetInt4MmaVariant(0);
            cuda::SetInt4MmaTiles(2);
            const auto all2 = test::ToHost(y2, static_cast<size_t>(n * ldy));
            size_t diff = 0;
            for (size_t i = 0; i < all.size(); ++i)
              diff += std::memcmp(&all[i], &all2[i], sizeof(float)) != 0;
            EXPECT_EQ(diff, 0u) << c.kind << " n=" << n << " variant " << variant << " tiles " << tiles;
          }
      }
      EXPECT_LE(err, gemv ? gemv_tol : 1e-2) << c.kind << " n=" << n << " path=" << static_cast<int>(path)
                                          << " GEMV v" << version;
    }
  }
  cuda::SetGemvVersion(2);
  std::printf("[ %s %lldx%lld ] relative error: GEMV %.3g, GEMM %.3g\n", c.kind.c_str(),
              static_cast<long long>(c.rows), static_cast<long long>(c.cols), worst_gemv, worst_gemm);
}

INSTANTIATE_TEST_SUITE_P(Formats, CudaLinearTest,
                         ::testing::Values(Case{"bf16", 200, 512}, Case{"f16", 200, 512}, Case{"bf16", 77, 1024},
                                           Case{"int4_g128", 200, 512}, Case{"int4_g32_perm", 200, 512},
                                           Case{"int4_g128", 77, 1024}, Case{"bf16", 300, 3584},
                                           Case{"int4_g128", 333, 3584}, Case{"int4mma_g128", 200, 512},
                                           Case{"int4mma_g32_perm", 200, 512}, Case{"int4mma_g128", 77, 1024},
                                           Case{"int4mma_g128", 333, 3584}, Case{"int4mma_g32", 64, 256}),
                         [](const auto& p) {
                           return p.param.kind + "_" + std::to_string(p.param.rows) + "x" + std::to_string(p.param.cols);
                         });

TEST(CudaInt4Test, DequantizeMatchesTheCpuValues) {
  QB_REQUIRE_CUDA();
  const int64_t rows = 24, cols = 256;
  Weights w = Make("int4_g128", rows, cols);
  cuda::DeviceBuffer out(static_cast<size_t>(rows * cols) * 2);
  cuda::DequantizeInt4ToBF16(w.m, out.get());
  std::vector<uint16_t> got(static_cast<size_t>(rows * cols));
  cuda::CopyToHost(got.data(), out.get(), got.size() * 2);
  std::vector<float> g(got.size()), ref(got.size());
  for (size_t i = 0; i < got.size(); ++i) g[i] = BF16ToF32(got[i]);
  for (int64_t r = 0; r < rows; ++r) DequantizeMatrixRow(w.cpu.raw(), DType::kQ4Z, cols, r, ref.data() + r * cols);
  EXPECT_LE(test::RelError(g, ref), 4e-3);  // one bf16 rounding
}

// The tensor-core layout holds the same codes: dequantized, bit for bit the row-major layout's
// values (rows not a multiple of 16, groups of 32 and 128).
TEST(CudaInt4Test, MmaLayoutDequantizesToTheSameValues) {
  QB_REQUIRE_CUDA();
  for (const std::string kind : {"int4_g128", "int4_g32"}) {
    const int64_t rows = 40, cols = 256;
    Weights row_major = Make(kind, rows, cols), mma = Make(kind == "int4_g128" ? "int4mma_g128" : "int4mma_g32", rows, cols);
    std::vector<uint16_t> a(static_cast<size_t>(rows * cols)), b(a.size());
    cuda::DeviceBuffer out(a.size() * 2);
    cuda::DequantizeInt4ToBF16(row_major.m, out.get());
    cuda::CopyToHost(a.data(), out.get(), a.size() * 2);
    cuda::MemsetAsync(out.get(), 0xff, a.size() * 2);
    cuda::DequantizeInt4ToBF16(mma.m, out.get());
    cuda::CopyToHost(b.data(), out.get(), b.size() * 2);
    size_t first_diff = a.size();
    for (size_t i = 0; i < a.size() && first_diff == a.size(); ++i)
      if (a[i] != b[i]) first_diff = i;
    EXPECT_EQ(first_diff, a.size()) << kind << ": first difference at row " << first_diff / cols << " column "
                                    << first_diff % cols;
  }
}

}  // namespace
}  // namespace qb
