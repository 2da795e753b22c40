// Block formats checked element by element against the layouts as documented (ggml's
// block_q8_0 / q4_0 / q4_K / q6_K), built here by independent packing code.
#include "tensor/dequantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tensor/interleave.h"
#include "tensor/tensor.h"
#include "util/half.h"

namespace qb {
namespace {

TEST(DequantizeTest, Q8_0) {
  BlockQ8_0 b{};
  b.d = F32ToF16(0.5f);
  for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j * 8 - 128);
  std::vector<float> y(32);
  DequantizeRow(DType::kQ8_0, &b, y.data(), 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.5f * static_cast<float>(j * 8 - 128)) << j;
}

TEST(DequantizeTest, Q4_0NibbleOrder) {
  BlockQ4_0 b{};
  b.d = F32ToF16(2.0f);
  // element j in the low nibble of byte j, element j+16 in the high nibble.
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>((j & 15) | ((15 - j) << 4));
  std::vector<float> y(32);
  DequantizeRow(DType::kQ4_0, &b, y.data(), 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 2.0f * static_cast<float>(j - 8));
    EXPECT_EQ(y[j + 16], 2.0f * static_cast<float>(15 - j - 8));
  }
}

// Packs 8 six-bit (scale, min) pairs the way Q4_K stores them.
void PackQ4KScales(const int sc[8], const int m[8], uint8_t out[12]) {
  for (int s = 0; s < 4; ++s) {
    out[s] = static_cast<uint8_t>((sc[s] & 63) | ((sc[s + 4] >> 4) << 6));
    out[s + 4] = static_cast<uint8_t>((m[s] & 63) | ((m[s + 4] >> 4) << 6));
    out[s + 8] = static_cast<uint8_t>((sc[s + 4] & 15) | ((m[s + 4] & 15) << 4));
  }
}

TEST(DequantizeTest, Q4_K) {
  BlockQ4_K b{};
  b.d = F32ToF16(0.25f);
  b.dmin = F32ToF16(0.125f);
  const int sc[8] = {1, 7, 13, 63, 32, 17, 50, 5};
  const int m[8] = {0, 63, 2, 40, 33, 9, 61, 16};
  PackQ4KScales(sc, m, b.scales);
  // value e (0..255): sub-block s = e / 32, q = (e * 7) % 16; sub-blocks 2g and 2g+1 share
  // bytes 32g..32g+31 (low then high nibble).
  auto q_of = [](int e) { return (e * 7) % 16; };
  for (int g = 0; g < 4; ++g)
    for (int l = 0; l < 32; ++l)
      b.qs[32 * g + l] = static_cast<uint8_t>(q_of(64 * g + l) | (q_of(64 * g + 32 + l) << 4));
  std::vector<float> y(256);
  DequantizeRow(DType::kQ4_K, &b, y.data(), 256);
  for (int e = 0; e < 256; ++e) {
    const int s = e / 32;
    const float want = 0.25f * static_cast<float>(sc[s]) * static_cast<float>(q_of(e)) - 0.125f * static_cast<float>(m[s]);
    ASSERT_FLOAT_EQ(y[e], want) << e;
  }
}

TEST(DequantizeTest, Q6_K) {
  BlockQ6_K b{};
  b.d = F32ToF16(0.5f);
  for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<int8_t>(s * 9 - 70);
  // value e: q6 = (e * 13) % 64; stored as 4 low bits in ql and 2 high bits in qh. Within each
  // half of 128: elements l, l+32, l+64, l+96 (l < 32) use ql[l] low, ql[l+32] low, ql[l] high,
  // ql[l+32] high, and bits 0-1, 2-3, 4-5, 6-7 of qh[l].
  auto q_of = [](int e) { return (e * 13) % 64; };
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const int base = 128 * h;
      const int q0 = q_of(base + l), q1 = q_of(base + l + 32), q2 = q_of(base + l + 64), q3 = q_of(base + l + 96);
      b.ql[64 * h + l] = static_cast<uint8_t>((q0 & 15) | ((q2 & 15) << 4));
      b.ql[64 * h + l + 32] = static_cast<uint8_t>((q1 & 15) | ((q3 & 15) << 4));
      b.qh[32 * h + l] = static_cast<uint8_t>((q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6));
    }
  std::vector<float> y(256);
  DequantizeRow(DType::kQ6_K, &b, y.data(), 256);
  for (int e = 0; e < 256; ++e) {
    const int s = e / 16;
    ASSERT_FLOAT_EQ(y[e], 0.5f * static_cast<float>(b.scales[s]) * static_cast<float>(q_of(e) - 32)) << e;
  }
}

TEST(DequantizeTest, PlainTypes) {
  const uint16_t h[3] = {F32ToF16(1.5f), F32ToF16(-0.25f), F32ToF16(3.0f)};
  const uint16_t bf[3] = {F32ToBF16(1.5f), F32ToBF16(-0.25f), F32ToBF16(3.0f)};
  float y[3];
  DequantizeRow(DType::kF16, h, y, 3);
  EXPECT_EQ(y[0], 1.5f);
  EXPECT_EQ(y[1], -0.25f);
  DequantizeRow(DType::kBF16, bf, y, 3);
  EXPECT_EQ(y[2], 3.0f);
  const int8_t i8[3] = {-5, 0, 7};
  DequantizeRow(DType::kI8, i8, y, 3);
  EXPECT_EQ(y[0], -5.f);
}

// Q8_0: within half a step (plus the f16 rounding of the scale). Q4_0: the value of largest
// magnitude maps to -8, so values of the other sign clamp at +7: within one step.
TEST(InterleaveTest, Q4_0x8KeepsEveryValue) {
  std::mt19937 rng(3);
  Tensor t = Tensor::Empty(DType::kQ4_0, {16, 64});
  auto* bytes = static_cast<uint8_t*>(t.mutable_raw());
  for (size_t i = 0; i < t.nbytes(); ++i) bytes[i] = static_cast<uint8_t>(rng());
  for (int64_t b = 0; b < 16 * 2; ++b) t.mutable_data<BlockQ4_0>()[b].d = F32ToF16(0.01f * static_cast<float>(b + 1));
  ASSERT_TRUE(CanInterleave(t));
  EXPECT_FALSE(CanInterleave(Tensor::Empty(DType::kQ4_0, {12, 64})));
  Tensor x = Interleave(t);
  EXPECT_EQ(x.dtype(), DType::kQ4_0x8);
  EXPECT_EQ(x.nbytes(), t.nbytes());
  std::vector<float> a(64), b(64);
  for (int64_t r = 0; r < 16; ++r) {
    DequantizeRow(DType::kQ4_0, t.row(r), a.data(), 64);
    DequantizeMatrixRow(x.raw(), DType::kQ4_0x8, 64, r, b.data());
    EXPECT_EQ(a, b) << r;
  }
}

TEST(InterleaveTest, Q5_0x8Q5_1x8AndIq4Nlx8KeepEveryValue) {
  for (DType type : {DType::kQ5_0, DType::kQ5_1, DType::kIq4Nl}) {
    std::mt19937 rng(4);
    Tensor t = Tensor::Empty(type, {16, 96});
    auto* bytes = static_cast<uint8_t*>(t.mutable_raw());
    for (size_t i = 0; i < t.nbytes(); ++i) bytes[i] = static_cast<uint8_t>(rng());
    for (int64_t b = 0; b < 16 * 3; ++b) {
      const uint16_t d = F32ToF16(0.01f * static_cast<float>(b + 1));
      if (type == DType::kQ5_0) {
        t.mutable_data<BlockQ5_0>()[b].d = d;
      } else if (type == DType::kIq4Nl) {
        t.mutable_data<BlockIq4Nl>()[b].d = d;
      } else {
        t.mutable_data<BlockQ5_1>()[b].d = d;
        t.mutable_data<BlockQ5_1>()[b].m = F32ToF16(-0.1f * static_cast<float>(b));
      }
    }
    ASSERT_TRUE(CanInterleave(t));
    Tensor x = Interleave(t);
    EXPECT_EQ(x.dtype(), InterleavedType(type));
    EXPECT_EQ(x.nbytes(), t.nbytes());
    std::vector<float> a(96), b(96);
    for (int64_t r = 0; r < 16; ++r) {
      DequantizeRow(type, t.row(r), a.data(), 96);
      DequantizeMatrixRow(x.raw(), x.dtype(), 96, r, b.data());
      EXPECT_EQ(a, b) << Name(type) << " row " << r;
    }
  }
}

// Every byte pattern of the codes, scales and mins (random bytes), with finite f16 factors.
TEST(InterleaveTest, KQuantsX8KeepEveryValue) {
  for (DType type : {DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    std::mt19937 rng(5);
    Tensor t = Tensor::Empty(type, {24, 512});
    auto* bytes = static_cast<uint8_t*>(t.mutable_raw());
    for (size_t i = 0; i < t.nbytes(); ++i) bytes[i] = static_cast<uint8_t>(rng());
    for (int64_t b = 0; b < 24 * 2; ++b) {
      const uint16_t d = F32ToF16(0.01f * static_cast<float>(b + 1));
      if (type == DType::kQ4_K) {
        t.mutable_data<BlockQ4_K>()[b].d = d;
        t.mutable_data<BlockQ4_K>()[b].dmin = F32ToF16(0.003f * static_cast<float>(b));
      } else if (type == DType::kQ5_K) {
        t.mutable_data<BlockQ5_K>()[b].d = d;
        t.mutable_data<BlockQ5_K>()[b].dmin = F32ToF16(0.003f * static_cast<float>(b));
      } else if (type == DType::kQ2_K) {
        t.mutable_data<BlockQ2_K>()[b].d = d;
        t.mutable_data<BlockQ2_K>()[b].dmin = F32ToF16(0.003f * static_cast<float>(b));
      } else if (type == DType::kQ3_K) {
        t.mutable_data<BlockQ3_K>()[b].d = d;
      } else {
        t.mutable_data<BlockQ6_K>()[b].d = d;
      }
    }
    ASSERT_TRUE(CanInterleave(t));
    EXPECT_FALSE(CanInterleave(Tensor::Empty(type, {20, 512})));
    Tensor x = Interleave(t);
    EXPECT_EQ(x.dtype(), InterleavedType(type));
    EXPECT_EQ(x.nbytes(), t.nbytes());
    std::vector<float> a(512), b(512);
    for (int64_t r = 0; r < 24; ++r) {
      DequantizeRow(type, t.row(r), a.data(), 512);
      DequantizeMatrixRow(x.raw(), x.dtype(), 512, r, b.data());
      EXPECT_EQ(a, b) << Name(type) << " row " << r;
    }
  }
}

TEST(QuantizeTest, Q4_KAndQ6_KRoundTrip) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> x(512), y(512);
  for (float& v : x) v = dist(rng);
  std::vector<BlockQ4_K> q4(2);
  std::vector<BlockQ6_K> q6(2);
  QuantizeRowQ4_K(x.data(), q4.data(), 512);
  DequantizeRow(DType::kQ4_K, q4.data(), y.data(), 512);
  double err4 = 0, err6 = 0, norm = 0;
  for (int i = 0; i < 512; ++i) {
    err4 += (x[i] - y[i]) * (x[i] - y[i]);
    norm += x[i] * x[i];
  }
  QuantizeRowQ6_K(x.data(), q6.data(), 512);
  DequantizeRow(DType::kQ6_K, q6.data(), y.data(), 512);
  for (int i = 0; i < 512; ++i) err6 += (x[i] - y[i]) * (x[i] - y[i]);
  // Relative RMS error of 4-bit and 6-bit grids on Gaussian data.
  EXPECT_LT(std::sqrt(err4 / norm), 0.12);
  EXPECT_LT(std::sqrt(err6 / norm), 0.03);
  EXPECT_LT(err6, err4);
}

TEST(QuantizeTest, Q8_0AndQ4_0RoundTripWithinTheirStep) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> x(256);
  for (float& v : x) v = dist(rng);
  std::vector<BlockQ8_0> q8(8);
  std::vector<BlockQ4_0> q4(8);
  QuantizeRowQ8_0(x.data(), q8.data(), 256);
  QuantizeRowQ4_0(x.data(), q4.data(), 256);
  std::vector<float> y8(256), y4(256);
  DequantizeRow(DType::kQ8_0, q8.data(), y8.data(), 256);
  DequantizeRow(DType::kQ4_0, q4.data(), y4.data(), 256);
  for (int b = 0; b < 8; ++b) {
    const float d8 = std::fabs(F16ToF32(q8[b].d)), d4 = std::fabs(F16ToF32(q4[b].d));
    for (int j = 0; j < 32; ++j) {
      const int i = b * 32 + j;
      EXPECT_LE(std::fabs(x[i] - y8[i]), d8 * 0.6f) << i;
      EXPECT_LE(std::fabs(x[i] - y4[i]), d4 * 1.01f) << i;
    }
  }
}

// The query rounding in front of a q8_0 KV cache: the same values as a q8_0 round trip (random
// data has no exact ties), ties to even, and a fixed point, which the integer attention kernel
// relies on to recover the codes and scales exactly from the rounded query.
TEST(QuantizeTest, RoundRowQ8_0IsTheQ8_0RoundTripAndAFixedPoint) {
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.f, 3.f);
  std::vector<float> x(512);
  for (float& v : x) v = dist(rng);
  for (int j = 0; j < 32; ++j) x[448 + j] = 1e-3f * x[448 + j];  // a block of small values
  for (int j = 0; j < 32; ++j) x[480 + j] = 0.f;                 // and one of zeros
  std::vector<BlockQ8_0> q8(16);
  QuantizeRowQ8_0(x.data(), q8.data(), 512);
  std::vector<float> trip(512), rounded(512), again(512);
  DequantizeRow(DType::kQ8_0, q8.data(), trip.data(), 512);
  RoundRowQ8_0(x.data(), rounded.data(), 512);
  RoundRowQ8_0(rounded.data(), again.data(), 512);
  for (int i = 0; i < 512; ++i) {
    EXPECT_EQ(rounded[i], trip[i]) << i;
    EXPECT_EQ(again[i], rounded[i]) << i;
  }
  // Scale 1 (max 127): halves go to the even neighbour, both signs.
  std::vector<float> ties(32, 0.f), out(32);
  ties[0] = 127.f;
  ties[1] = 0.5f;
  ties[2] = 1.5f;
  ties[3] = 2.5f;
  ties[4] = -2.5f;
  ties[5] = -126.5f;
  RoundRowQ8_0(ties.data(), out.data(), 32);
  EXPECT_EQ(out[0], 127.f);
  EXPECT_EQ(out[1], 0.f);
  EXPECT_EQ(out[2], 2.f);
  EXPECT_EQ(out[3], 2.f);
  EXPECT_EQ(out[4], -2.f);
  EXPECT_EQ(out[5], -126.f);
}

}  // namespace
}  // namespace qb
