#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace qb {

namespace {

// The dimension index at which a frequency completes `rotations` turns over `max_pos` positions.
double CorrectionDim(double rotations, double dim, double base, double max_pos) {
  return dim * std::log(max_pos / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(base));
}

}  // namespace

kernels::RopeTable MakeRopeTable(const ModelConfig& c) {
  kernels::RopeTable table;
  const int64_t half = c.head_dim / 2;
  const double dim = static_cast<double>(c.head_dim);
  table.inv_freq.resize(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    table.inv_freq[static_cast<size_t>(i)] =
        static_cast<float>(1.0 / std::pow(c.rope_theta, 2.0 * static_cast<double>(i) / dim));
  if (c.rope_scaling.kind != RopeScaling::Kind::kYarn) return table;

  // YaRN: high-frequency dimensions (many rotations within the original context) keep their
  // frequency, low-frequency ones are interpolated by `factor`, with a linear ramp between.
  const RopeScaling& y = c.rope_scaling;
  const double orig = static_cast<double>(y.original_max_position_embeddings);
  double low = std::floor(CorrectionDim(y.beta_fast, dim, c.rope_theta, orig));
  double high = std::ceil(CorrectionDim(y.beta_slow, dim, c.rope_theta, orig));
  low = std::max(low, 0.0);
  high = std::min(high, dim - 1);
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < half; ++i) {
    const double extrapolated = 1.0 / std::pow(c.rope_theta, 2.0 * static_cast<double>(i) / dim);
    const double interpolated = extrapolated / y.factor;
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double keep = 1.0 - ramp;  // share of the original (extrapolated) frequency
    table.inv_freq[static_cast<size_t>(i)] =
        static_cast<float>(interpolated * (1.0 - keep) + extrapolated * keep);
  }
  table.attention_scale = static_cast<float>(
      y.attention_factor.value_or(y.factor > 1.0 ? 0.1 * std::log(y.factor) + 1.0 : 1.0));
  return table;
}

}  // namespace qb
