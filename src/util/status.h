// Status and Result<T>: the error tier for bad input (corrupt files, wrong configs, malformed
// requests). Broken invariants use QB_CHECK (check.h) instead.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace qb {

enum class StatusCode {
  kOk,
  kInvalidArgument,    // the caller's input is wrong (request, flag, config value)
  kNotFound,           // a file or tensor that must exist does not
  kDataLoss,           // a file is corrupt or truncated
  kUnimplemented,      // valid input that qwenbox does not support (yet)
  kIoError,            // the operating system refused (open, mmap, write)
  kOutOfRange,         // an index or size past a limit
  kResourceExhausted,  // memory or capacity limits
  kInternal,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "context: message", keeping the code. Used to name the file or tensor an error is about.
  Status WithContext(std::string_view context) const;
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status ResourceExhausted(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// Either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {
    if (std::get<Status>(v_).ok()) v_ = Status(StatusCode::kInternal, "Result built from Ok");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace qb

#define QB_CONCAT_INNER_(a, b) a##b
#define QB_CONCAT_(a, b) QB_CONCAT_INNER_(a, b)

#define QB_RETURN_IF_ERROR(expr)         \
  do {                                   \
    ::qb::Status qb_status_ = (expr);    \
    if (!qb_status_.ok()) return qb_status_; \
  } while (0)

#define QB_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

// QB_ASSIGN_OR_RETURN(auto x, MakeX()); returns the Status from the enclosing function on error.
#define QB_ASSIGN_OR_RETURN(lhs, expr) \
  QB_ASSIGN_OR_RETURN_IMPL_(QB_CONCAT_(qb_result_, __LINE__), lhs, expr)
