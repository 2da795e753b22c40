// The fast CPU kernels (every ISA path this machine runs, scalar included) against the
// reference ops. Quantized weights meet 8-bit activations there, so the bound on the
// difference is derived from the activation rounding error; float weights must agree to float
// rounding. The SIMD paths must also agree with the portable path on the same arithmetic.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/linear_kernels.h"
#include "kernels/ops.h"
#include "tensor/dequantize.h"
#include "tensor/interleave.h"
#include "util/half.h"
#include "util/thread_pool.h"

namespace qb::kernels {
namespace {

std::vector<Isa> FastIsas() {
  std::vector<Isa> v = {Isa::kScalar};
  if (DetectIsa() >= Isa::kAvx2) v.push_back(Isa::kAvx2);
  if (DetectIsa() >= Isa::kAvx512Vnni) v.push_back(Isa::kAvx512Vnni);
  if (DetectIsa() >= Isa::kAvx512Bf16) v.push_back(Isa::kAvx512Bf16);
  return v;
}

Tensor RandomF32(Shape shape, uint32_t seed, float scale = 1.0f) {
  Tensor t = Tensor::Empty(DType::kF32, std::move(shape));
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = d(rng);
  return t;
}

// Random weights of any type: random bytes for the quantized payloads, sane scales.
Tensor RandomWeights(DType type, int64_t rows, int64_t cols, uint32_t seed) {
  Tensor t = Tensor::Empty(type, {rows, cols});
  std::mt19937 rng(seed);
  auto* bytes = static_cast<uint8_t*>(t.mutable_raw());
  for (size_t i = 0; i < t.nbytes(); ++i) bytes[i] = static_cast<uint8_t>(rng());
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::uniform_real_distribution<float> ud(0.001f, 0.01f);
  const int64_t nb = rows * cols / Info(type).block_size;
  switch (type) {
    case DType::kF32:
      for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = nd(rng);
      break;
    case DType::kF16:
      for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<uint16_t>()[i] = F32ToF16(nd(rng));
      break;
    case DType::kBF16:
      for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<uint16_t>()[i] = F32ToBF16(nd(rng));
      break;
    case DType::kQ8_0:
      for (int64_t b = 0; b < nb; ++b) t.mutable_data<BlockQ8_0>()[b].d = F32ToF16(ud(rng) * 0.1f);
      break;
    case DType::kQ4_0:
      for (int64_t b = 0; b < nb; ++b) t.mutable_data<BlockQ4_0>()[b].d = F32ToF16(ud(rng));
      break;
    case DType::kQ4Z:
      for (int64_t b = 0; b < nb; ++b) {
        t.mutable_data<BlockQ4Z>()[b].d = F32ToF16(ud(rng));
        t.mutable_data<BlockQ4Z>()[b].z = static_cast<uint8_t>(rng() & 15);
      }
      break;
    case DType::kQ4_K:
      for (int64_t b = 0; b < nb; ++b) {
        t.mutable_data<BlockQ4_K>()[b].d = F32ToF16(ud(rng) * 0.1f);
        t.mutable_data<BlockQ4_K>()[b].dmin = F32ToF16(ud(rng) * 0.1f);
      }
      break;
    case DType::kQ6_K:
      for (int64_t b = 0; b < nb; ++b) t.mutable_data<BlockQ6_K>()[b].d = F32ToF16(ud(rng) * 0.01f);
      break;
    case DType::kQ4_1:
      for (int64_t b = 0; b < nb; ++b) {
        t.mutable_data<BlockQ4_1>()[b].d = F32ToF16(ud(rng));
        t.mutable_data<BlockQ4_1>()[b].m = F32ToF16(-8.f * ud(rng));
      }
      break;
    case DType::kQ5_0:
      for (int64_t b = 0; b < nb; ++b) t.mutable_data<BlockQ5_0>()[b].d = F32ToF16(ud(rng) * 0.5f);
      break;
    case DType::kQ5_1:
      for (int64_t b = 0; b < nb; ++b) {
        t.mutable_data<BlockQ5_1>()[b].d = F32ToF16(ud(rng) * 0.5f);
        t.mutable_data<BlockQ5_1>()[b].m = F32ToF16(-8.f * ud(rng));
      }
      break;
    case DType::kIq4Nl:
      for (int64_t b = 0; b < nb; ++b) t.mutable_data<BlockIq4Nl>()[b].d = F32ToF16(ud(rng) * 0.1f);
      break;
    case DType::kQ2_K:
      for (int64_t b = 0; b < nb; ++b) {
        t.mutable_data<BlockQ2_K>()[b].d = F32ToF16(ud(rng) * 0.5f);
        t.mutable_data<BlockQ2_K>()[b].dmin = F32ToF16(ud(rng) * 0.5f);
      }
      break;
    case DType::kQ3_K:
      for (int64_t b = 0; b < nb; ++b) t.mutable_data<BlockQ3_K>()[b].d = F32ToF16(ud(rng) * 0.1f);
      break;
    case DType::kQ5_K:
      for (int64_t b = 0; b < nb; ++b) {
        t.mutable_data<BlockQ5_K>()[b].d = F32ToF16(ud(rng) * 0.05f);
        t.mutable_data<BlockQ5_K>()[b].dmin = F32ToF16(ud(rng) * 0.1f);
      }
      break;
    default: break;
  }
  return t;
}

struct LinearCase {
  DType type;
  int64_t in;
  int64_t out = 37;  // the interleaved types need whole groups of 8 rows
};

class FastLinearTest : public ::testing::TestWithParam<LinearCase> {};

TEST_P(FastLinearTest, MatchesReferenceWithinActivationRounding) {
  const auto [type, in, out] = GetParam();
  const bool interleaved = Info(type).row_group > 1;
  DType file_type = type;  // the file type the interleaved layout is made from
  for (DType t : {DType::kQ4_0, DType::kQ8_0, DType::kQ5_0, DType::kQ5_1, DType::kIq4Nl, DType::kQ2_K, DType::kQ3_K,
                  DType::kQ4_K, DType::kQ5_K, DType::kQ6_K})
    if (InterleavedType(t) == type) file_type = t;
  Tensor w = interleaved ? Interleave(RandomWeights(file_type, out, in, 11)) : RandomWeights(type, out, in, 11);
  Tensor bias = RandomF32({out}, 12);
  std::vector<float> deq(static_cast<size_t>(in));
  for (int64_t n : {1, 3, 4, 9}) {
    Tensor x = RandomF32({n, in}, static_cast<uint32_t>(13 + n));
    Tensor want = Tensor::Empty(DType::kF32, {n, out});
    Linear(ExecContext::Reference(), x, w, &bias, want);
    // Bound per output: sum over blocks of sum|w| * (block amax / 254), the activation rounding;
    // activation blocks are 256 values for the K-quants, 32 otherwise.
    const int64_t act_block = Info(type).block_size == 256 ? 256 : 32;
    std::vector<double> bound(static_cast<size_t>(n * out), 0.0), mags(static_cast<size_t>(n * out), 0.0);
    for (int64_t r = 0; r < out; ++r) {
      DequantizeMatrixRow(w.raw(), type, in, r, deq.data());
      for (int64_t t = 0; t < n; ++t) {
        double b = 0, mag = 0;
        for (int64_t k = 0; k < in; k += act_block) {
          double amax = 0, wsum = 0;
          for (int64_t i = k; i < std::min(k + act_block, in); ++i) {
            amax = std::max(amax, std::fabs(static_cast<double>(x.data<float>()[t * in + i])));
            wsum += std::fabs(deq[static_cast<size_t>(i)]);
            mag += std::fabs(deq[static_cast<size_t>(i)] * x.data<float>()[t * in + i]);
          }
          b += wsum * amax / 254.0;
        }
        const bool quantized = Info(type).is_quantized;
        bound[static_cast<size_t>(t * out + r)] = (quantized ? b * 1.001 : 0.0) + 1e-5 * mag + 1e-5;
        mags[static_cast<size_t>(t * out + r)] = mag;
      }
    }
    // The AVX512_BF16 path rounds the activations of BF16 weights to bf16 (relative error
    // <= 2^-8 each): within that of the reference, and within float rounding of the reference
    // computed on the rounded activations.
    Tensor x_bf16 = Tensor::Empty(DType::kF32, {n, in});
    for (int64_t i = 0; i < n * in; ++i) x_bf16.mutable_data<float>()[i] = BF16ToF32(F32ToBF16(x.data<float>()[i]));
    Tensor want_bf16 = Tensor::Empty(DType::kF32, {n, out});
    Linear(ExecContext::Reference(), x_bf16, w, &bias, want_bf16);
    std::vector<Tensor> results;
    for (Isa isa : FastIsas()) {
      const bool bf16_acts = type == DType::kBF16 && isa >= Isa::kAvx512Bf16 && in % 32 == 0;
      std::vector<Tensor> same_path;
      for (int threads : {1, 2}) {
        ThreadPool pool(threads);
        ExecContext ctx{&pool, isa};
        Tensor got = Tensor::Empty(DType::kF32, {n, out});
        Linear(ctx, x, w, &bias, got);
        for (int64_t i = 0; i < n * out; ++i) {
          const double mag = mags[static_cast<size_t>(i)];
          ASSERT_NEAR(got.data<float>()[i], want.data<float>()[i], bound[static_cast<size_t>(i)] + (bf16_acts ? mag / 256 * 1.001 : 0))
              << Name(type) << " isa " << IsaName(isa) << " threads " << threads << " n " << n << " i " << i;
          if (bf16_acts) {
            ASSERT_NEAR(got.data<float>()[i], want_bf16.data<float>()[i], 1e-5 * mag + 1e-5)
                << Name(type) << " isa " << IsaName(isa) << " threads " << threads << " n " << n << " i " << i;
          }
        }
        (bf16_acts ? same_path : results).push_back(std::move(got));
      }
      for (size_t k = 1; k < same_path.size(); ++k)  // threads never change a result
        for (int64_t i = 0; i < n * out; ++i) ASSERT_EQ(same_path[k].data<float>()[i], same_path[0].data<float>()[i]);
    }
    // All fast paths on f32 or 8-bit activations compute the same arithmetic: they agree to
    // float summation order.
    for (size_t k = 1; k < results.size(); ++k)
      for (int64_t i = 0; i < n * out; ++i)
        ASSERT_NEAR(results[k].data<float>()[i], results[0].data<float>()[i],
                    1e-5 + 1e-5 * std::fabs(results[0].data<float>()[i]))
            << Name(type) << " path " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllWeightTypes, FastLinearTest,
    // Float weights go in tiles of 3 rows: 37 rows end with one left over, 38 with two.
    // Float rows of 40 and 56 end in a partial 16-lane chunk (masked on the AVX-512 path).
    ::testing::Values(LinearCase{DType::kF32, 72}, LinearCase{DType::kF32, 64, 38}, LinearCase{DType::kF16, 96},
                      LinearCase{DType::kF16, 40}, LinearCase{DType::kBF16, 56, 38},
                      LinearCase{DType::kF16, 64, 38}, LinearCase{DType::kBF16, 64},
                      LinearCase{DType::kBF16, 96, 38}, LinearCase{DType::kQ8_0, 128}, LinearCase{DType::kQ4_0, 96},
                      LinearCase{DType::kQ4_0x8, 128, 40}, LinearCase{DType::kQ8_0x8, 64, 40}, LinearCase{DType::kQ4Z, 96},
                      LinearCase{DType::kQ4_K, 512}, LinearCase{DType::kQ6_K, 256},
                      // The GGUF types qwenbox reads but never writes.
                      LinearCase{DType::kQ4_1, 96}, LinearCase{DType::kQ5_0, 128}, LinearCase{DType::kQ5_1, 96},
                      LinearCase{DType::kIq4Nl, 96}, LinearCase{DType::kQ2_K, 512}, LinearCase{DType::kQ3_K, 256},
                      LinearCase{DType::kQ5_K, 512}, LinearCase{DType::kQ5_0x8, 96, 40},
                      LinearCase{DType::kQ5_1x8, 64, 40}, LinearCase{DType::kIq4Nlx8, 96, 40},
                      LinearCase{DType::kQ4_Kx8, 512, 40}, LinearCase{DType::kQ5_Kx8, 768, 32},
                      LinearCase{DType::kQ6_Kx8, 768, 24}, LinearCase{DType::kQ2_Kx8, 512, 16},
                      LinearCase{DType::kQ3_Kx8, 512, 40},
                      // More rows than one tile of a prefill (72 rows of Q6_K at 256 columns).
                      LinearCase{DType::kQ6_Kx8, 256, 136}),
    [](const auto& p) {
      return std::string(Name(p.param.type)) + "_" + std::to_string(p.param.in) + "x" + std::to_string(p.param.out);
    });

// A token's outputs do not depend on what else is in the batch (the serving engine's greedy
// output alone == batched rests on it): every float and quantized path gives each token the
// bit-identical result alone (n = 1) and in batches whose micro-kernel calls take 1-4 tokens,
// matrices ending with 1 or 2 leftover rows of a float tile.
TEST(FastLinearTest, TokenResultsDoNotDependOnTheBatch) {
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ4_1,
                     DType::kQ5_0, DType::kQ5_1, DType::kIq4Nl, DType::kQ2_K, DType::kQ3_K, DType::kQ5_K, DType::kQ6_K}) {
    for (const int64_t in : {int64_t{512}, int64_t{504}, int64_t{488}}) {  // float rows ending in a full + a partial chunk, a partial one alone
      if (in % Info(type).block_size != 0) continue;
      for (int64_t out : {37, 38, 40}) {
        Tensor w = RandomWeights(type, out, in, 51);
        if (out == 40) {  // whole groups of 8 rows: the interleaved layout where there is one
          if (!CanInterleave(w)) continue;
          w = Interleave(w);
        }
        for (Isa isa : FastIsas()) {
          ThreadPool pool(2);
          const ExecContext ctx{&pool, isa};
          for (int64_t n : {2, 3, 6, 9}) {
            Tensor x = RandomF32({n, in}, static_cast<uint32_t>(60 + n));
            Tensor batched = Tensor::Empty(DType::kF32, {n, out});
            Linear(ctx, x, w, nullptr, batched);
            for (int64_t t = 0; t < n; ++t) {
              Tensor one = Tensor::Empty(DType::kF32, {1, in}), alone = Tensor::Empty(DType::kF32, {1, out});
              std::copy_n(x.data<float>() + t * in, in, one.mutable_data<float>());
              Linear(ctx, one, w, nullptr, alone);
              for (int64_t o = 0; o < out; ++o)
                ASSERT_EQ(batched.data<float>()[t * out + o], alone.data<float>()[o])
                    << Name(type) << " " << IsaName(isa) << " n " << n << " token " << t << " row " << o;
            }
          }
        }
      }
    }
  }
}

// The interleaved kernels add int8 x code products in int16 before widening them: at the
// extremes (every code byte 0x00, 0xFF, 0x7F or 0x81, every activation +-127) nothing saturates,
// on every path, alone and for 4 tokens.
TEST(FastLinearTest, InterleavedKernelsHaveHeadroomAtTheExtremes) {
  const int64_t in = 256, out = 16;
  for (DType type : {DType::kQ4_0, DType::kQ5_0, DType::kQ5_1, DType::kIq4Nl, DType::kQ8_0, DType::kQ2_K, DType::kQ3_K,
                     DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    for (uint8_t fill : {0x00, 0xFF, 0x7F, 0x81}) {
      Tensor w = Tensor::Empty(type, {out, in});
      auto* bytes = static_cast<uint8_t*>(w.mutable_raw());
      std::memset(bytes, fill, w.nbytes());
      const int64_t block_bytes = Info(type).block_bytes;
      for (int64_t b = 0; b < out * in / Info(type).block_size; ++b) {
        // The scale leads these blocks but Q6_K's and Q3_K's (last) and Q2_K's (d, dmin last);
        // Q5_1's min and Q4_K's / Q5_K's dmin follow it.
        const bool k_min = type == DType::kQ4_K || type == DType::kQ5_K;
        const uint16_t d = F32ToF16(0.01f), m = F32ToF16(k_min || type == DType::kQ2_K ? 0.1f : -0.1f);
        const bool last = type == DType::kQ6_K || type == DType::kQ3_K;
        uint8_t* block = bytes + b * block_bytes;
        if (type == DType::kQ2_K) {
          std::memcpy(block + block_bytes - 4, &d, 2);
          std::memcpy(block + block_bytes - 2, &m, 2);
        } else {
          std::memcpy(block + (last ? block_bytes - 2 : 0), &d, 2);
        }
        if (type == DType::kQ5_1 || k_min) std::memcpy(block + 2, &m, 2);
      }
      const Tensor wi = Interleave(w);
      for (int64_t n : {1, 4}) {
        Tensor x = Tensor::Empty(DType::kF32, {n, in});
        for (int64_t i = 0; i < n * in; ++i) x.mutable_data<float>()[i] = (i / in) % 2 == 0 ? 1.f : -1.f;
        Tensor want = Tensor::Empty(DType::kF32, {n, out});
        Linear(ExecContext::Reference(), x, w, nullptr, want);
        for (Isa isa : FastIsas()) {
          ThreadPool pool(1);
          Tensor got = Tensor::Empty(DType::kF32, {n, out});
          Linear(ExecContext{&pool, isa}, x, wi, nullptr, got);
          for (int64_t i = 0; i < n * out; ++i)
            ASSERT_NEAR(got.data<float>()[i], want.data<float>()[i], 1e-3 * std::fabs(want.data<float>()[i]) + 1e-3)
                << Name(type) << " fill " << int{fill} << " " << IsaName(isa) << " n " << n;
        }
      }
    }
  }
}

// The AVX-512 VNNI kernels (interleaved Q4_0 / Q8_0) compute the same integer sums as the AVX2
// ones and the same float operations in the same order: bit-identical results, for the 8-row
// kernels of both tables and for the 512-bit 32-row form (four groups a call), which must equal
// the 8-row kernel on each group, or a token's logits would depend on its batch. 25 blocks a
// row: odd, so no kernel can pair blocks up unnoticed. Runs only on a CPU with AVX-512 VNNI.
TEST(Avx512VnniTest, InterleavedKernelsAreBitIdenticalToAvx2) {
  if (DetectIsa() < Isa::kAvx512Vnni) GTEST_SKIP() << "this CPU has no AVX-512 VNNI (best path: " << IsaName(DetectIsa()) << ")";
  const cpu::CpuKernels &avx2 = cpu::Avx2CpuKernels(), &k256 = cpu::Avx512VnniCpuKernels(false),
                        &k512 = cpu::Avx512VnniCpuKernels(true);
  ASSERT_EQ(k256.q8_0x32, nullptr);  // the 256-bit table has no 512-bit kernels
  for (DType file_type : {DType::kQ4_0, DType::kQ8_0}) {
    const int64_t in = 25 * 32;
    Tensor w = Interleave(RandomWeights(file_type, 32, in, 31));
    const int64_t group_bytes = 8 * w.row_bytes();
    const bool q8 = file_type == DType::kQ8_0;
    for (int nt = 1; nt <= cpu::kMaxTokens; ++nt) {
      Tensor x = RandomF32({nt, in}, static_cast<uint32_t>(40 + nt));
      std::vector<cpu::ActBlock> acts(static_cast<size_t>(nt * in / 32));
      const cpu::ActBlock* ptrs[cpu::kMaxTokens];
      for (int t = 0; t < nt; ++t) {
        avx2.quantize(x.data<float>() + t * in, in, acts.data() + t * in / 32);
        ptrs[t] = acts.data() + t * in / 32;
      }
      float r_avx2[4][32], r256[4][32], r512[4][32], r32[4 * 32];
      for (int g = 0; g < 4; ++g) {
        const void* group = static_cast<const uint8_t*>(w.raw()) + g * group_bytes;
        (q8 ? avx2.q8_0x8 : avx2.q4_0x8)(group, ptrs, nt, in, r_avx2[g]);
        (q8 ? k256.q8_0x8 : k256.q4_0x8)(group, ptrs, nt, in, r256[g]);
        (q8 ? k512.q8_0x8 : k512.q4_0x8)(group, ptrs, nt, in, r512[g]);
      }
      // (prefetching a line of the weights a block, as Linear does for the next tile)
      (q8 ? k512.q8_0x32 : k512.q4_0x32)(w.raw(), group_bytes, ptrs, nt, in, r32, 32, static_cast<const uint8_t*>(w.raw()), 64);
      for (int g = 0; g < 4; ++g) {
        for (int i = 0; i < nt * 8; ++i) {
          const float a = r_avx2[g][i];
          ASSERT_NE(a, 0.f);
          ASSERT_EQ(r256[g][i], a) << Name(file_type) << " nt " << nt << " g " << g << " i " << i;
          ASSERT_EQ(r512[g][i], a) << Name(file_type) << " nt " << nt << " g " << g << " i " << i;
          ASSERT_EQ(r32[(i / 8) * 32 + g * 8 + i % 8], a) << Name(file_type) << " nt " << nt << " g " << g << " i " << i;
        }
      }
    }
  }
}

// Linear on the AVX-512 path: 32-row calls, matrices that end in 8, 16 or 24 rows (8-row calls),
// token counts past one micro-kernel call; bit-identical to the AVX2 path.
TEST(Avx512VnniTest, LinearIsBitIdenticalToAvx2) {
  if (DetectIsa() < Isa::kAvx512Vnni) GTEST_SKIP() << "this CPU has no AVX-512 VNNI (best path: " << IsaName(DetectIsa()) << ")";
  ThreadPool pool(2);
  for (DType file_type : {DType::kQ4_0, DType::kQ8_0}) {
    for (int64_t out : {40, 48, 56, 64, 96}) {
      const int64_t in = 256;
      Tensor w = Interleave(RandomWeights(file_type, out, in, 31));
      // (5 tokens and more: several passes over each tile, the next tile prefetched meanwhile;
      // on two threads each walks its own range of tiles and steals from the other's)
      for (int64_t n : {0, 1, 2, 3, 4, 5, 7, 9, 33}) {
        Tensor x = RandomF32({n, in}, static_cast<uint32_t>(40 + n));
        Tensor avx2 = Tensor::Empty(DType::kF32, {n, out}), vnni = Tensor::Empty(DType::kF32, {n, out});
        Tensor pooled = Tensor::Empty(DType::kF32, {n, out});
        Linear(ExecContext{nullptr, Isa::kAvx2}, x, w, nullptr, avx2);
        Linear(ExecContext{nullptr, Isa::kAvx512Vnni}, x, w, nullptr, vnni);
        Linear(ExecContext{&pool, Isa::kAvx512Vnni}, x, w, nullptr, pooled);
        for (int64_t i = 0; i < n * out; ++i) {
          ASSERT_EQ(vnni.data<float>()[i], avx2.data<float>()[i]) << Name(file_type) << " out " << out << " n " << n << " i " << i;
          ASSERT_EQ(pooled.data<float>()[i], avx2.data<float>()[i]) << Name(file_type) << " out " << out << " n " << n << " i " << i;
        }
      }
    }
  }
}

class FastOpsTest : public ::testing::TestWithParam<int64_t> {};

// head_dim 16 takes the generic path; 64 and 128 (Qwen2.5's) the register-blocked one; 9 keys
// leave a remainder after the groups of four.
TEST_P(FastOpsTest, ElementwiseAndAttentionMatchReference) {
  const int64_t hd = GetParam(), heads = 4, kv = 2, n_keys = 9;
  Tensor q = RandomF32({3, heads * hd}, 21);
  // One block of n_keys slots (the keys drawn as slot rows, then laid out as the pool keeps them).
  const Tensor k_rows = RandomF32({n_keys, kv * hd}, 22), v_rows = RandomF32({n_keys, kv * hd}, 23);
  const Tensor k = KvPoolFromSlotRows(k_rows, hd, n_keys), v = KvPoolFromSlotRows(v_rows, hd, n_keys);
  const std::vector<int32_t> pos = {6, 7, 8};
  Tensor want = Tensor::Empty(DType::kF32, {3, heads * hd});
  static const int32_t kZero[1] = {0};
  const std::vector<std::span<const int32_t>> one(pos.size(), std::span<const int32_t>(kZero, 1));
  Attention(ExecContext::Reference(), q, k, v, hd, n_keys, pos, one, 0.25f, want);
  // The same keys in an f16 paged pool (blocks of 4: 2, 0, 1), for the f16 path.
  const std::vector<int32_t> block_table = {2, 0, 1};
  std::vector<int32_t> slots;
  for (int32_t j = 0; j < n_keys; ++j) slots.push_back(block_table[static_cast<size_t>(j / 4)] * 4 + j % 4);
  Tensor kh = Tensor::Empty(DType::kF16, {12, kv * hd}), vh = Tensor::Empty(DType::kF16, {12, kv * hd});
  ScatterKv(ExecContext::Reference(), k_rows, slots, kh, hd, 4);
  ScatterKv(ExecContext::Reference(), v_rows, slots, vh, hd, 4);
  const std::vector<std::span<const int32_t>> paged(pos.size(), std::span<const int32_t>(block_table));
  Tensor want16 = Tensor::Empty(DType::kF32, {3, heads * hd});
  Attention(ExecContext::Reference(), q, kh, vh, hd, 4, pos, paged, 0.25f, want16);
  RopeTable table;
  for (int i = 0; i < hd / 2; ++i) table.inv_freq.push_back(std::pow(10000.f, -2.f * i / hd));
  Tensor nw = RandomF32({heads * hd}, 24);
  for (Isa isa : FastIsas()) {
    ThreadPool pool(2);
    ExecContext ctx{&pool, isa};
    Tensor got = Tensor::Empty(DType::kF32, {3, heads * hd});
    Attention(ctx, q, k, v, hd, n_keys, pos, one, 0.25f, got);
    for (int64_t i = 0; i < got.numel(); ++i) ASSERT_NEAR(got.data<float>()[i], want.data<float>()[i], 1e-5);
    Attention(ctx, q, kh, vh, hd, 4, pos, paged, 0.25f, got);
    for (int64_t i = 0; i < got.numel(); ++i) ASSERT_NEAR(got.data<float>()[i], want16.data<float>()[i], 1e-5);
    Tensor a = q.Copy(), b = q.Copy();
    Rope(ctx, a, hd, pos, table);
    Rope(ExecContext::Reference(), b, hd, pos, table);
    for (int64_t i = 0; i < a.numel(); ++i) ASSERT_NEAR(a.data<float>()[i], b.data<float>()[i], 1e-5);
    // Queries and keys rotated in one call: each exactly as alone.
    Tensor qa = q.Copy(), ka = Tensor::Empty(DType::kF32, {3, kv * hd});
    for (int64_t i = 0; i < ka.numel(); ++i) ka.mutable_data<float>()[i] = q.data<float>()[i];
    Tensor kb = ka.Copy();
    Rope(ctx, qa, ka, hd, pos, table);
    Rope(ctx, kb, hd, pos, table);
    for (int64_t i = 0; i < qa.numel(); ++i) ASSERT_EQ(qa.data<float>()[i], a.data<float>()[i]);
    for (int64_t i = 0; i < ka.numel(); ++i) ASSERT_EQ(ka.data<float>()[i], kb.data<float>()[i]);
    Tensor r1 = Tensor::Empty(DType::kF32, q.shape()), r2 = Tensor::Empty(DType::kF32, q.shape());
    RmsNorm(ctx, q, nw, 1e-6f, r1);
    RmsNorm(ExecContext::Reference(), q, nw, 1e-6f, r2);
    for (int64_t i = 0; i < r1.numel(); ++i) ASSERT_NEAR(r1.data<float>()[i], r2.data<float>()[i], 1e-5);
    Tensor s1 = Tensor::Empty(DType::kF32, q.shape()), s2 = Tensor::Empty(DType::kF32, q.shape());
    Tensor up = RandomF32(q.shape(), 25);
    SiluMul(ctx, q, up, s1);
    SiluMul(ExecContext::Reference(), q, up, s2);
    for (int64_t i = 0; i < s1.numel(); ++i) ASSERT_NEAR(s1.data<float>()[i], s2.data<float>()[i], 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(HeadDims, FastOpsTest, ::testing::Values(16, 64, 128));

// SiLU-mul on every length from 1 to 40 (the vector kernels' masked or scalar tails).
TEST(FastOpsTest, SiluMulMatchesReferenceAtEveryLength) {
  for (int64_t n = 1; n <= 40; ++n) {
    Tensor g = RandomF32({n}, static_cast<uint32_t>(60 + n), 4.f), u = RandomF32({n}, static_cast<uint32_t>(100 + n));
    Tensor want = Tensor::Empty(DType::kF32, {n});
    SiluMul(ExecContext::Reference(), g, u, want);
    for (Isa isa : FastIsas()) {
      Tensor got = Tensor::Empty(DType::kF32, {n});
      SiluMul(ExecContext{nullptr, isa}, g, u, got);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_NEAR(got.data<float>()[i], want.data<float>()[i], 1e-5f * (1.f + std::fabs(want.data<float>()[i])))
            << IsaName(isa) << " n " << n << " i " << i;
    }
  }
}

// Writes into an f16 cache round exactly as F32ToF16 on every path: ties to even, values that
// round up to the next binade or to infinity, subnormals, and zero's sign; rows of 13 values
// leave every vector kernel a tail.
TEST(FastOpsTest, F16CacheWritesRoundLikeTheScalarConversion) {
  std::vector<float> values = {0.f, -0.f, 1.f, -2.5f, 65504.f, 65519.f, 65520.f, -70000.f, 1e-8f, -3e-6f, 6.1e-5f,
                               5.9604645e-8f, 2.9802322e-8f, 1.00048828125f, 1.000244140625f, 1.000732421875f};
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits(0, 0xffffffffu);
  while (values.size() < 13 * 40) {
    const float f = std::bit_cast<float>(bits(rng));
    if (!std::isnan(f)) values.push_back(f);
  }
  const int64_t d = 13, n = static_cast<int64_t>(values.size()) / d;
  Tensor src = Tensor::Empty(DType::kF32, {n, d});
  std::copy(values.begin(), values.end(), src.mutable_data<float>());
  std::vector<int32_t> rows(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) rows[static_cast<size_t>(t)] = static_cast<int32_t>(n - 1 - t);
  for (Isa isa : FastIsas()) {
    ThreadPool pool(2);
    Tensor dst = Tensor::Empty(DType::kF16, {n, d});
    ScatterRows(ExecContext{&pool, isa}, src, rows, dst);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < d; ++i) {
        const float f = values[static_cast<size_t>(t * d + i)];
        ASSERT_EQ(dst.data<uint16_t>()[(n - 1 - t) * d + i], F32ToF16(f)) << IsaName(isa) << " value " << f;
      }
  }
}

// The fused ops of a decode step give the bits of the separate ops they replace, on every ISA
// and the reference, threaded: add + RmsNorm, and split + RoPE + two KV writes (every KV type,
// slots in shuffled order).
TEST(FastOpsTest, FusedOpsAreBitIdenticalToTheSeparateOps) {
  const int64_t n = 13, hd = 64, heads = 4, kv_heads = 2, d = heads * hd, kv = kv_heads * hd;
  RopeTable table;
  for (int64_t i = 0; i < hd / 2; ++i)
    table.inv_freq.push_back(static_cast<float>(std::pow(10000.0, -2.0 * static_cast<double>(i) / hd)));
  std::vector<int32_t> pos(static_cast<size_t>(n)), slots(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) {
    pos[static_cast<size_t>(t)] = static_cast<int32_t>(3 + 97 * t);
    slots[static_cast<size_t>(t)] = static_cast<int32_t>((7 * t + 5) % 17);
  }
  const Tensor x0 = RandomF32({n, d}, 61, 3.f), delta = RandomF32({n, d}, 62), w = RandomF32({d}, 63);
  const Tensor qkv = RandomF32({n, d + 2 * kv}, 64, 2.f);
  std::vector<ExecContext> contexts = {ExecContext::Reference()};
  ThreadPool pool(2);
  for (Isa isa : FastIsas()) contexts.push_back(ExecContext{&pool, isa});
  for (const ExecContext& ctx : contexts) {
    const std::string where(IsaName(ctx.isa));
    Tensor xa = x0.Copy(), xb = x0.Copy();
    Tensor ya = Tensor::Empty(DType::kF32, {n, d}), yb = Tensor::Empty(DType::kF32, {n, d});
    AddRmsNorm(ctx, xa, delta, w, 1e-6f, ya);
    AddInPlace(ctx, xb, delta);
    RmsNorm(ctx, xb, w, 1e-6f, yb);
    ASSERT_EQ(std::memcmp(xa.raw(), xb.raw(), xa.nbytes()), 0) << where;
    ASSERT_EQ(std::memcmp(ya.raw(), yb.raw(), ya.nbytes()), 0) << where;
    for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0}) {
      Tensor qa = Tensor::Empty(DType::kF32, {n, d}), qb = Tensor::Empty(DType::kF32, {n, d});
      Tensor ka = Tensor::Empty(type, {20, kv}), va = Tensor::Empty(type, {20, kv});
      Tensor kb = Tensor::Empty(type, {20, kv}), vb = Tensor::Empty(type, {20, kv});
      SplitRopeScatter(ctx, qkv, hd, 4, pos, table, slots, qa, ka, va);
      Tensor k = Tensor::Empty(DType::kF32, {n, kv}), v = Tensor::Empty(DType::kF32, {n, kv});
      Tensor* const parts[] = {&qb, &k, &v};
      SplitColumns(ctx, qkv, parts);
      Rope(ctx, qb, k, hd, pos, table);
      ScatterKv(ctx, k, slots, kb, hd, 4);
      ScatterKv(ctx, v, slots, vb, hd, 4);
      ASSERT_EQ(std::memcmp(qa.raw(), qb.raw(), qa.nbytes()), 0) << where << " " << Name(type);
      ASSERT_EQ(std::memcmp(ka.raw(), kb.raw(), ka.nbytes()), 0) << where << " " << Name(type);
      ASSERT_EQ(std::memcmp(va.raw(), vb.raw(), va.nbytes()), 0) << where << " " << Name(type);
    }
  }
}

TEST(ThreadPoolTest, ParallelForCoversTheRangeOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 5, 64, 1000}) {
      for (int64_t grain : {1, 8}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        pool.ParallelFor(n, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
        }, grain);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << threads << " " << n;
      }
    }
    for (int64_t n : {0, 1, 7, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.ParallelForDynamic(n, [&](int64_t i) { hits[static_cast<size_t>(i)]++; });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << threads << " " << n;
    }
    std::atomic<int> ran{0};
    for (int rep = 0; rep < 200; ++rep) pool.Run([&](int) { ran++; });
    EXPECT_EQ(ran.load(), 200 * threads);
  }
}

// A GQA group of 7 query heads over 70 keys (several key tiles and a remainder) in f16, bf16
// and q8_0 paged pools: matches the reference, and each head's output is bit-identical to running that
// head alone (the grouped kernel shares converted key/value tiles, not arithmetic).
TEST(FastAttentionTest, GroupedHeadsOverManyKeysMatchReferenceAndSingleHeads) {
  const int64_t hd = 64, heads = 7, n_keys = 70, block = 16, n_blocks = 5;
  Tensor q = RandomF32({2, heads * hd}, 31), k = RandomF32({n_keys, hd}, 32), v = RandomF32({n_keys, hd}, 33);
  const std::vector<int32_t> pos = {40, 69};
  const std::vector<int32_t> table = {3, 0, 4, 1, 2};
  std::vector<int32_t> slots;
  for (int32_t j = 0; j < n_keys; ++j) slots.push_back(table[static_cast<size_t>(j / block)] * block + j % block);
  const std::vector<std::span<const int32_t>> tables(pos.size(), std::span<const int32_t>(table));
  for (DType kv_type : {DType::kF16, DType::kBF16, DType::kQ8_0}) {
    Tensor kc = Tensor::Empty(kv_type, {n_blocks * block, hd}), vc = Tensor::Empty(kv_type, {n_blocks * block, hd});
    ScatterKv(ExecContext::Reference(), k, slots, kc, hd, block);
    ScatterKv(ExecContext::Reference(), v, slots, vc, hd, block);
    Tensor want = Tensor::Empty(DType::kF32, {2, heads * hd});
    Attention(ExecContext::Reference(), q, kc, vc, hd, block, pos, tables, 0.125f, want);
    for (Isa isa : FastIsas()) {
      ThreadPool pool(2);
      ExecContext ctx{&pool, isa};
      Tensor got = Tensor::Empty(DType::kF32, {2, heads * hd});
      Attention(ctx, q, kc, vc, hd, block, pos, tables, 0.125f, got);
      for (int64_t i = 0; i < got.numel(); ++i)
        ASSERT_NEAR(got.data<float>()[i], want.data<float>()[i], 1e-5) << Name(kv_type) << " " << IsaName(isa);
      for (int64_t h = 0; h < heads; ++h) {
        Tensor q1 = Tensor::Empty(DType::kF32, {2, hd}), o1 = Tensor::Empty(DType::kF32, {2, hd});
        for (int64_t t = 0; t < 2; ++t)
          for (int64_t d = 0; d < hd; ++d) q1.mutable_data<float>()[t * hd + d] = q.data<float>()[t * heads * hd + h * hd + d];
        Attention(ctx, q1, kc, vc, hd, block, pos, tables, 0.125f, o1);
        for (int64_t t = 0; t < 2; ++t)
          for (int64_t d = 0; d < hd; ++d)
            ASSERT_EQ(o1.data<float>()[t * hd + d], got.data<float>()[t * heads * hd + h * hd + d])
                << Name(kv_type) << " " << IsaName(isa) << " head " << h;
      }
    }
  }
}

// A prompt's tokens computed in one call (a prefill chunk: their query heads share the key
// tiles), in a call that starts mid-prompt (a later chunk, a prefix-cache hit, a recompute after
// preemption), and one by one (decode) give every token the same bits, on every path, for each
// cache type, head size and group size; and match the reference.
TEST(FastAttentionTest, PrefillChunksGiveEachTokenTheBitsOfItsDecode) {
  for (int64_t hd : {64, 128}) {
    for (int64_t heads : {7, 2}) {
      const int64_t kv = heads == 7 ? 1 : 2, n = 75, block = 16, n_blocks = 5;
      Tensor q = RandomF32({n, heads * hd}, static_cast<uint32_t>(51 + hd + heads));
      Tensor k = RandomF32({n, kv * hd}, 52), v = RandomF32({n, kv * hd}, 53);
      const std::vector<int32_t> table = {4, 1, 3, 0, 2};
      std::vector<int32_t> slots, pos;
      for (int32_t j = 0; j < n; ++j) {
        slots.push_back(table[static_cast<size_t>(j / block)] * block + j % block);
        pos.push_back(j);
      }
      for (DType kv_type : {DType::kF16, DType::kBF16, DType::kQ8_0, DType::kF32}) {
        Tensor kc = Tensor::Empty(kv_type, {n_blocks * block, kv * hd}), vc = Tensor::Empty(kv_type, {n_blocks * block, kv * hd});
        ScatterKv(ExecContext::Reference(), k, slots, kc, hd, block);
        ScatterKv(ExecContext::Reference(), v, slots, vc, hd, block);
        auto run = [&](const ExecContext& ctx, int64_t first, int64_t count) {
          Tensor qs = Tensor::Empty(DType::kF32, {count, heads * hd}), o = Tensor::Empty(DType::kF32, {count, heads * hd});
          std::copy_n(q.data<float>() + first * heads * hd, count * heads * hd, qs.mutable_data<float>());
          const std::vector<int32_t> p(pos.begin() + first, pos.begin() + first + count);
          const std::vector<std::span<const int32_t>> tables(static_cast<size_t>(count), std::span<const int32_t>(table));
          Attention(ctx, qs, kc, vc, hd, block, p, tables, 0.125f, o);
          return o;
        };
        const Tensor want = run(ExecContext::Reference(), 0, n);
        for (Isa isa : FastIsas()) {
          ThreadPool pool(2);
          const ExecContext ctx{&pool, isa};
          const Tensor whole = run(ctx, 0, n), tail = run(ctx, 30, n - 30);
          const std::string what = std::string(Name(kv_type)) + " " + std::string(IsaName(isa)) + " hd " +
                                   std::to_string(hd) + " heads " + std::to_string(heads);
          for (int64_t i = 0; i < whole.numel(); ++i) ASSERT_NEAR(whole.data<float>()[i], want.data<float>()[i], 1e-5) << what;
          for (int64_t t = 0; t < n; ++t) {
            const Tensor alone = run(ctx, t, 1);
            for (int64_t i = 0; i < heads * hd; ++i) {
              ASSERT_EQ(alone.data<float>()[i], whole.data<float>()[t * heads * hd + i]) << what << " token " << t;
              if (t >= 30) {
                ASSERT_EQ(tail.data<float>()[(t - 30) * heads * hd + i], alone.data<float>()[i]) << what << " token " << t;
              }
            }
          }
        }
      }
    }
  }
}

// A q8_0 KV cache with several kv heads and head sizes (the head's blocks start at offset
// kvh * head_dim): every path matches the reference on the same cache, and the cache's rounding
// (one scale per 32 values) moves the output by about 1% of its scale, no more.
TEST(FastAttentionTest, Q8_0CacheMatchesReferenceAndStaysNearF32) {
  for (int64_t hd : {32, 64, 128}) {
    const int64_t heads = 4, kv = 2, n_keys = 37, block = 16, n_blocks = 3;
    Tensor q = RandomF32({3, heads * hd}, 41), k = RandomF32({n_keys, kv * hd}, 42), v = RandomF32({n_keys, kv * hd}, 43);
    const std::vector<int32_t> pos = {0, 20, 36};
    const std::vector<int32_t> table = {2, 0, 1};
    std::vector<int32_t> slots;
    for (int32_t j = 0; j < n_keys; ++j) slots.push_back(table[static_cast<size_t>(j / block)] * block + j % block);
    const std::vector<std::span<const int32_t>> tables(pos.size(), std::span<const int32_t>(table));
    auto run = [&](DType kv_type, const ExecContext& ctx) {
      Tensor kc = Tensor::Empty(kv_type, {n_blocks * block, kv * hd}), vc = Tensor::Empty(kv_type, {n_blocks * block, kv * hd});
      ScatterKv(ExecContext::Reference(), k, slots, kc, hd, block);
      ScatterKv(ExecContext::Reference(), v, slots, vc, hd, block);
      Tensor out = Tensor::Empty(DType::kF32, {3, heads * hd});
      Attention(ctx, q, kc, vc, hd, block, pos, tables, 0.1f, out);
      return out;
    };
    const Tensor exact = run(DType::kF32, ExecContext::Reference());
    const Tensor want = run(DType::kQ8_0, ExecContext::Reference());
    float worst = 0.f;
    for (int64_t i = 0; i < want.numel(); ++i)
      worst = std::max(worst, std::fabs(want.data<float>()[i] - exact.data<float>()[i]));
    EXPECT_GT(worst, 0.f) << hd;    // the cache really is quantized
    EXPECT_LT(worst, 0.03f) << hd;  // values ~N(0, 1): q8_0 steps are max/127 per 32
    for (Isa isa : FastIsas()) {
      ThreadPool pool(2);
      const Tensor got = run(DType::kQ8_0, ExecContext{&pool, isa});
      for (int64_t i = 0; i < got.numel(); ++i)
        ASSERT_NEAR(got.data<float>()[i], want.data<float>()[i], 1e-5) << IsaName(isa) << " head_dim " << hd;
    }
  }
}

}  // namespace
}  // namespace qb::kernels

namespace qb::kernels {
namespace {

// AddLowRank (LoRA's second half) on every path this CPU runs, against a double-precision sum,
// for rows in any order and widths that are not a multiple of the SIMD span.
TEST(AddLowRankTest, MatchesTheSumOnEveryPath) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  ThreadPool pool(2);
  for (const int64_t m : {1, 5, 300}) {
    for (const int64_t out : {8, 37, 96, 1100}) {  // 1100: spans of 512 columns and a partial one
      const int64_t r = 6, y_cols = out + 11, offset = 3;
      Tensor low = Tensor::Empty(DType::kF32, {m, r}), bt = Tensor::Empty(DType::kF32, {r, out});
      for (int64_t i = 0; i < low.numel(); ++i) low.mutable_data<float>()[i] = u(rng);
      for (int64_t i = 0; i < bt.numel(); ++i) bt.mutable_data<float>()[i] = u(rng);
      std::vector<int32_t> rows(static_cast<size_t>(m));
      for (int64_t i = 0; i < m; ++i) rows[static_cast<size_t>(i)] = static_cast<int32_t>(m - 1 - i);
      Tensor y0 = Tensor::Empty(DType::kF32, {m, y_cols});
      for (int64_t i = 0; i < y0.numel(); ++i) y0.mutable_data<float>()[i] = u(rng);
      for (const Isa isa : {Isa::kReference, Isa::kScalar, DetectIsa()}) {
        Tensor y = Tensor::Empty(DType::kF32, {m, y_cols});
        std::memcpy(y.mutable_data<float>(), y0.data<float>(), y0.nbytes());
        AddLowRank(ExecContext{&pool, isa}, low, bt, rows, y, offset);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t c = 0; c < y_cols; ++c) {
            const int64_t row = rows[static_cast<size_t>(i)];
            double want = y0.data<float>()[row * y_cols + c];
            if (c >= offset && c < offset + out)
              for (int64_t k = 0; k < r; ++k)
                want += static_cast<double>(low.data<float>()[i * r + k]) * bt.data<float>()[k * out + c - offset];
            ASSERT_NEAR(y.data<float>()[row * y_cols + c], want, 1e-5)
                << IsaName(isa) << " m " << m << " out " << out << " row " << row << " col " << c;
          }
      }
    }
  }
}

}  // namespace
}  // namespace qb::kernels
