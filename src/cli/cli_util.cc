#include "cli/cli_util.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include <fmt/format.h>

#include "kernels/ops.h"

namespace qb::cli {

Result<std::vector<int32_t>> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  size_t i = 0;
  auto skip_spaces = [&] {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  };
  while (true) {
    skip_spaces();
    int64_t v = 0;
    auto [end, ec] = std::from_chars(text.data() + i, text.data() + text.size(), v);
    if (ec != std::errc() || v < 0 || v > INT32_MAX)
      return InvalidArgument(fmt::format("--ids \"{}\": expected comma-separated non-negative integers", text));
    ids.push_back(static_cast<int32_t>(v));
    i = static_cast<size_t>(end - text.data());
    skip_spaces();
    if (i == text.size()) break;
    if (text[i] != ',') return InvalidArgument(fmt::format("--ids \"{}\": unexpected '{}'", text, text[i]));
    ++i;
  }
  return ids;
}

int ReportError(const std::string& command, const Status& status) {
  std::fprintf(stderr, "qwenbox %s: error: %s\n", command.c_str(), status.message().c_str());
  return 1;
}

void AppendJsonFloat(std::string& out, float v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[32];
  const int n = std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  out.append(buf, static_cast<size_t>(n));
}

Result<DType> ParseKvDType(const std::string& name, int64_t head_dim) {
  const auto kv_dtype = DTypeFromName(name);
  if (!kv_dtype) return InvalidArgument(fmt::format("--kv-dtype {} is not one of f16, bf16, f32, q8_0", name));
  QB_RETURN_IF_ERROR(kernels::CheckKvDType(*kv_dtype, head_dim));
  return *kv_dtype;
}

}  // namespace qb::cli
