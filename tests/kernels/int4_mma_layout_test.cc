// The tensor-core int4 layout (kernels/cuda/int4_mma_layout.h) on the CPU: codes placed as the
// repacking kernel places them, activations taken as the CUDA kernels load them, multiplied
// through an emulation of mma.sync.m16n8k16 that follows the PTX ISA's fragment tables (written
// here from the tables, not from the layout), must give the plain matrix product. Runs in every
// build (the layout header has no CUDA dependency), so a layout change is checked on machines
// without a GPU before it reaches one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "kernels/cuda/int4_mma_layout.h"
#include "util/half.h"

namespace qb {
namespace {

namespace layout = cuda::mma_layout;

// One lane's registers of an m16n8k16 f16 mma: A (4 x 2 halves), B (2 x 2 halves), C/D (4 f32).
struct LaneFragments {
  float a[4][2];
  float b[2][2];
  float d[4];
};

// d += A B for the warp, with the fragment ownership of the PTX ISA (lane = 4 g + t):
// A: a[0] = row g, k 2t + {0,1}; a[1] = row g + 8, same k; a[2] = row g, k 2t + 8 + {0,1};
//    a[3] = row g + 8, k 2t + 8 + {0,1}.  B: b[0] = k 2t + {0,1}, column g; b[1] = k 2t + 8 + {0,1}.
// D: d[0], d[1] = row g, columns 2t, 2t + 1; d[2], d[3] = row g + 8, same columns.
void EmulateMma(std::vector<LaneFragments>& warp) {
  double A[16][16] = {}, B[16][8] = {};
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    const LaneFragments& f = warp[static_cast<size_t>(lane)];
    for (int h = 0; h < 2; ++h) {
      A[g][2 * t + h] = f.a[0][h];
      A[g + 8][2 * t + h] = f.a[1][h];
      A[g][2 * t + 8 + h] = f.a[2][h];
      A[g + 8][2 * t + 8 + h] = f.a[3][h];
      B[2 * t + h][g] = f.b[0][h];
      B[2 * t + 8 + h][g] = f.b[1][h];
    }
  }
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    LaneFragments& f = warp[static_cast<size_t>(lane)];
    for (int i = 0; i < 4; ++i) {
      const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
      double s = 0;
      for (int k = 0; k < 16; ++k) s += A[row][k] * B[k][col];
      f.d[i] += static_cast<float>(s);
    }
  }
}

TEST(Int4MmaLayoutTest, EachWordHoldsEachCodeOfItsKStepOnce) {
  std::set<std::pair<int, int>> cells;  // (row, input) of one 16 x 16 k-step tile
  for (int lane = 0; lane < 32; ++lane) {
    std::set<int> bits;
    for (int e = 0; e < 8; ++e) {
      const layout::CodeSlot s = layout::WordElement(e, lane / 4, lane % 4);
      ASSERT_GE(s.row, 0);
      ASSERT_LT(s.row, 16);
      ASSERT_GE(s.input, 0);
      ASSERT_LT(s.input, layout::kKStepInputs);
      ASSERT_EQ(s.bit % 4, 0);
      bits.insert(s.bit);
      cells.insert({s.row, s.input});
    }
    EXPECT_EQ(bits.size(), 8u) << "lane " << lane << ": two codes share bits";
  }
  EXPECT_EQ(cells.size(), 256u) << "the 32 lanes' words must cover the k-step's 16 x 16 codes once each";
}

// What the dequantizing kernel relies on: of each row a lane holds in a word, the 4 codes are
// the 4 consecutive inputs from ActivationInput(t) (one 8-byte store per row).
TEST(Int4MmaLayoutTest, ALanesCodesOfARowAreItsFourActivationInputs) {
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    for (int half = 0; half < 2; ++half) {
      std::set<int> inputs;
      for (int e = 0; e < 8; ++e) {
        const layout::CodeSlot s = layout::WordElement(e, g, t);
        if (s.row == g + 8 * half) inputs.insert(s.input - layout::ActivationInput(t));
      }
      EXPECT_EQ(inputs, (std::set<int>{0, 1, 2, 3})) << "lane " << lane << " row half " << half;
    }
  }
}

TEST(Int4MmaLayoutTest, EmulatedTensorCoreProductMatchesTheMatrixProduct) {
  constexpr int kRows = 16, kTokens = 8, kChunks = 3, kCols = kChunks * layout::kChunkInputs;
  std::mt19937 rng(7);
  std::vector<int> code(kRows * kCols), zero(kRows);
  for (int& c : code) c = static_cast<int>(rng() % 16);
  for (int& z : zero) z = static_cast<int>(rng() % 16);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> x(kTokens * kCols);  // rounded to f16 as the kernels round them
  for (float& v : x) v = F16ToF32(F32ToF16(normal(rng)));

  // The repacking: word j of lane L of chunk c (k-step 4 c + j).
  std::vector<uint32_t> words(static_cast<size_t>(kChunks * 4 * 32));
  for (int c = 0; c < kChunks; ++c)
    for (int j = 0; j < 4; ++j)
      for (int lane = 0; lane < 32; ++lane) {
        uint32_t w = 0;
        for (int e = 0; e < 8; ++e) {
          const layout::CodeSlot s = layout::WordElement(e, lane / 4, lane % 4);
          const int col = (4 * c + j) * layout::kKStepInputs + s.input;
          w |= static_cast<uint32_t>(code[s.row * kCols + col]) << s.bit;
        }
        words[static_cast<size_t>((c * 4 + j) * 32 + lane)] = w;
      }

  // The kernels' use: fragment register i's half h is the code at bit 4 i + 16 h (DecodeWord),
  // minus the row's zero; B from the 4 activations at ActivationInput(t) of the k-step.
  std::vector<LaneFragments> warp(32);
  for (LaneFragments& f : warp)
    for (float& d : f.d) d = 0.f;
  for (int step = 0; step < 4 * kChunks; ++step) {
    for (int lane = 0; lane < 32; ++lane) {
      const int g = lane / 4, t = lane % 4;
      const uint32_t w = words[static_cast<size_t>(step * 32 + lane)];
      LaneFragments& f = warp[static_cast<size_t>(lane)];
      for (int i = 0; i < 4; ++i)
        for (int h = 0; h < 2; ++h) {
          const int row = g + 8 * (i & 1);
          f.a[i][h] = static_cast<float>(static_cast<int>((w >> (4 * i + 16 * h)) & 0xfu) - zero[row]);
        }
      const float* xs = &x[static_cast<size_t>(g * kCols + step * layout::kKStepInputs + layout::ActivationInput(t))];
      f.b[0][0] = xs[0];
      f.b[0][1] = xs[1];
      f.b[1][0] = xs[2];
      f.b[1][1] = xs[3];
    }
    EmulateMma(warp);
  }

  double worst = 0;
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 4; ++i) {
      const int row = lane / 4 + 8 * (i >> 1), token = 2 * (lane % 4) + (i & 1);
      double want = 0;
      for (int k = 0; k < kCols; ++k)
        want += static_cast<double>(code[row * kCols + k] - zero[row]) * x[static_cast<size_t>(token * kCols + k)];
      const double got = warp[static_cast<size_t>(lane)].d[i];
      worst = std::max(worst, std::abs(got - want));
      EXPECT_NEAR(got, want, 1e-3 * (1 + std::abs(want))) << "row " << row << " token " << token;
    }
  std::printf("[ emulated int4 mma, 16 x %d, 8 tokens ] max |difference| %.3g\n", kCols, worst);
}

}  // namespace
}  // namespace qb
