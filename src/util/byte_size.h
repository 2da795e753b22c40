// Sizes as people write them: "17179869184", "16g", "512m", "16Gi", "1.5G" (k/m/g/t are powers
// of 1024, as in Docker's --memory; a trailing "i" or "b" is accepted).
#pragma once

#include <cstdint>
#include <string>

#include "util/status.h"

namespace qb {

Result<int64_t> ParseByteSize(const std::string& text);
// "15.23 GB (14.18 GiB)"-style: decimal and binary.
std::string HumanBytes(int64_t bytes);

}  // namespace qb
