#include "model/rope.h"

#include <gtest/gtest.h>

#include <cmath>

namespace qb {
namespace {

ModelConfig Config(int64_t head_dim) {
  ModelConfig c;
  c.head_dim = head_dim;
  c.rope_theta = 1e6;
  return c;
}

TEST(RopeTableTest, PlainFrequencies) {
  auto t = MakeRopeTable(Config(64));
  ASSERT_EQ(t.inv_freq.size(), 32u);
  EXPECT_FLOAT_EQ(t.inv_freq[0], 1.0f);
  EXPECT_FLOAT_EQ(t.inv_freq[1], static_cast<float>(std::pow(1e6, -2.0 / 64)));
  EXPECT_FLOAT_EQ(t.inv_freq[31], static_cast<float>(std::pow(1e6, -62.0 / 64)));
  EXPECT_EQ(t.attention_scale, 1.0f);
}

// Qwen2.5's 128K setting: yarn, factor 4 over 32768 positions, head_dim 128, theta 1e6.
// Worked by hand from the YaRN definition: a dimension pair i keeps its frequency when it turns
// more than beta_fast = 32 times within 32768 positions, is divided by 4 when it turns fewer
// than beta_slow = 1 times, and ramps linearly between. The boundaries are
// d(r) = 128 * ln(32768 / (2 pi r)) / (2 ln 1e6): d(32) = 23.60 -> floor 23, d(1) = 39.65 -> ceil 40.
TEST(RopeTableTest, YarnAsQwen25Uses) {
  ModelConfig c = Config(128);
  c.rope_scaling.kind = RopeScaling::Kind::kYarn;
  c.rope_scaling.factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 32768;
  auto t = MakeRopeTable(c);
  auto plain = MakeRopeTable(Config(128));
  ASSERT_EQ(t.inv_freq.size(), 64u);
  for (int i = 0; i <= 23; ++i) EXPECT_FLOAT_EQ(t.inv_freq[i], plain.inv_freq[i]) << i;
  for (int i = 40; i < 64; ++i) EXPECT_FLOAT_EQ(t.inv_freq[i], plain.inv_freq[i] / 4.0f) << i;
  // On the ramp, i = 30 is (30 - 23) / (40 - 23) of the way to full interpolation.
  const double ramp = 7.0 / 17.0;
  EXPECT_NEAR(t.inv_freq[30], plain.inv_freq[30] * (ramp / 4.0 + (1.0 - ramp)), 1e-9);
  EXPECT_NEAR(t.attention_scale, 0.1 * std::log(4.0) + 1.0, 1e-6);  // 1.1386
}

}  // namespace
}  // namespace qb
