// llama.cpp reference outputs (../shared/testdata/*/reference/*.json) and logit comparisons.
#pragma once

#include <string>
#include <vector>

#include "util/status.h"

namespace qb::test {

struct PositionReference {
  int64_t pos = 0;
  std::vector<float> sample_logits;  // logits of Reference::sample_ids at this position
};

struct Reference {
  std::string name;
  std::vector<int32_t> token_ids;
  std::vector<float> last_logits;  // full vocabulary, last prompt position
  std::vector<int32_t> greedy_ids;
  std::vector<float> greedy_margins;  // top1 - top2 at each greedy step
  std::vector<int32_t> sample_ids;
  std::vector<PositionReference> positions;
};

Reference LoadReference(const std::string& path);
std::vector<std::string> ReferenceFiles(const std::string& dir);  // *.json, sorted

float MaxAbsDiff(const float* a, const float* b, size_t n);

}  // namespace qb::test
