#include "util/byte_size.h"

#include <cctype>
#include <cmath>

#include <fmt/format.h>

namespace qb {

Result<int64_t> ParseByteSize(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (...) {
    return InvalidArgument(fmt::format("\"{}\" is not a size (bytes, or a number with k, m, g or t)", text));
  }
  std::string unit;
  for (size_t i = used; i < text.size(); ++i) unit += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
  if (!unit.empty() && (unit.back() == 'b')) unit.pop_back();
  if (!unit.empty() && (unit.back() == 'i')) unit.pop_back();
  double scale = 1;
  if (unit == "k") scale = 1024.0;
  else if (unit == "m") scale = 1024.0 * 1024;
  else if (unit == "g") scale = 1024.0 * 1024 * 1024;
  else if (unit == "t") scale = 1024.0 * 1024 * 1024 * 1024;
  else if (!unit.empty()) return InvalidArgument(fmt::format("\"{}\": unknown size unit (use k, m, g or t)", text));
  const double bytes = value * scale;
  if (!(bytes >= 0) || bytes > 9.0e18) return InvalidArgument(fmt::format("\"{}\" is not a valid size", text));
  return static_cast<int64_t>(std::llround(bytes));
}

std::string HumanBytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes >= (int64_t{1} << 30)) return fmt::format("{:.2f} GB ({:.2f} GiB)", b / 1e9, b / (1 << 30));
  return fmt::format("{:.1f} MB ({:.1f} MiB)", b / 1e6, b / (1 << 20));
}

}  // namespace qb
