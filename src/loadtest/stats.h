// Summary statistics as vLLM's `bench serve` reports them: mean, median and percentiles with
// linear interpolation between order statistics (numpy's default).
#pragma once

#include <cstddef>
#include <vector>

namespace qb::loadtest {

// The p-th percentile (0..100) of `sorted` (ascending, non-empty).
double Percentile(const std::vector<double>& sorted, double p);

struct Summary {
  size_t count = 0;
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, min = 0, max = 0, stddev = 0;
};

Summary Summarize(std::vector<double> values);

}  // namespace qb::loadtest
