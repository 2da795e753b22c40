#include "util/json.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace qb {

Result<Json> ParseJson(std::string_view text, std::string_view what) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    return DataLoss(fmt::format("{}: invalid JSON: {}", what, e.what()));
  }
}

Result<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    if (err == ENOENT) return NotFound(fmt::format("{}: no such file", path));
    return IoError(fmt::format("{}: cannot open: {}", path, std::strerror(err)));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return IoError(fmt::format("{}: read error", path));
  return ss.str();
}

Result<Json> ReadJsonFile(const std::string& path) {
  QB_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseJson(text, path);
}

namespace {
Status WrongType(std::string_view what, std::string_view key, std::string_view want,
                 const Json& v) {
  return InvalidArgument(
      fmt::format("{}: \"{}\" must be {}, got {}", what, key, want, v.type_name()));
}
}  // namespace

Result<std::optional<int64_t>> JsonInt(const Json& obj, std::string_view key,
                                       std::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<int64_t>();
  if (it->is_number_integer()) return std::optional<int64_t>(it->get<int64_t>());
  if (it->is_number_float()) {
    const double d = it->get<double>();
    if (d == static_cast<double>(static_cast<int64_t>(d)))
      return std::optional<int64_t>(static_cast<int64_t>(d));
  }
  return WrongType(what, key, "an integer", *it);
}

Result<std::optional<double>> JsonNumber(const Json& obj, std::string_view key,
                                         std::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<double>();
  if (it->is_number()) return std::optional<double>(it->get<double>());
  return WrongType(what, key, "a number", *it);
}

Result<std::optional<bool>> JsonBool(const Json& obj, std::string_view key,
                                     std::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<bool>();
  if (it->is_boolean()) return std::optional<bool>(it->get<bool>());
  return WrongType(what, key, "true or false", *it);
}

Result<std::optional<std::string>> JsonString(const Json& obj, std::string_view key,
                                              std::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<std::string>();
  if (it->is_string()) return std::optional<std::string>(it->get<std::string>());
  return WrongType(what, key, "a string", *it);
}

}  // namespace qb
