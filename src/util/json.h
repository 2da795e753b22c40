// JSON helpers over nlohmann::json that turn parse and type errors into Status instead of
// exceptions, with the file name in every message.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "util/status.h"

namespace qb {

using Json = nlohmann::json;

// Parses text (which must be valid UTF-8 JSON). `what` names the source in error messages.
Result<Json> ParseJson(std::string_view text, std::string_view what);
Result<std::string> ReadFileToString(const std::string& path);
Result<Json> ReadJsonFile(const std::string& path);

// Typed field access. Absent keys give std::nullopt; a present key of the wrong type is an error.
Result<std::optional<int64_t>> JsonInt(const Json& obj, std::string_view key, std::string_view what);
Result<std::optional<double>> JsonNumber(const Json& obj, std::string_view key,
                                         std::string_view what);
Result<std::optional<bool>> JsonBool(const Json& obj, std::string_view key, std::string_view what);
Result<std::optional<std::string>> JsonString(const Json& obj, std::string_view key,
                                              std::string_view what);

}  // namespace qb
