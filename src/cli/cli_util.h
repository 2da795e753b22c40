// Helpers shared by the subcommands: token-id lists, error reporting, JSON number output.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/dtype.h"
#include "util/status.h"

namespace qb::cli {

// "1,2,3" -> {1, 2, 3}. Spaces allowed around commas; anything else is an error.
Result<std::vector<int32_t>> ParseIds(const std::string& text);

// Prints "qwenbox <command>: error: <message>" to stderr and returns the exit code (1).
int ReportError(const std::string& command, const Status& status);

// --kv-dtype NAME for a model whose heads have `head_dim` values: f16, bf16, f32 or q8_0.
Result<DType> ParseKvDType(const std::string& name, int64_t head_dim);

// Appends a float as JSON with round-trip precision (%.9g); non-finite values become null.
void AppendJsonFloat(std::string& out, float v);

}  // namespace qb::cli
