#include "common/reference.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "common/test_paths.h"
#include "util/json.h"

namespace qb::test {

Reference LoadReference(const std::string& path) {
  auto j = ParseJson(ReadBytes(path), path);
  if (!j.ok()) {
    ADD_FAILURE() << j.status().ToString();
    return {};
  }
  Reference r;
  r.name = j->value("name", path);
  r.token_ids = (*j)["token_ids"].get<std::vector<int32_t>>();
  r.last_logits = (*j)["last_logits_full"].get<std::vector<float>>();
  r.greedy_ids = (*j)["greedy_continuation_ids"].get<std::vector<int32_t>>();
  for (const auto& s : (*j)["greedy_steps"]) r.greedy_margins.push_back(s["margin_top1_top2"].get<float>());
  if (j->contains("per_position")) {
    const auto& pp = (*j)["per_position"];
    r.sample_ids = pp["sample_ids"].get<std::vector<int32_t>>();
    for (const auto& p : pp["positions"])
      r.positions.push_back({p["pos"].get<int64_t>(), p["sample_logits"].get<std::vector<float>>()});
  }
  return r;
}

std::vector<std::string> ReferenceFiles(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".json") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

float MaxAbsDiff(const float* a, const float* b, size_t n) {
  float m = 0.f;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

}  // namespace qb::test
