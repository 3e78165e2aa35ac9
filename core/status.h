// Status / StatusOr<T>: recoverable failures (bad flags, files, data, checkpoints), LevelDB style.
// A Status is OK or carries a code and a message written for a person: it names the flag or file
// and says how to fix it. Programmer errors use OM_CHECK (check.h) instead.
// Thread safety: values; copy freely.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "core/check.h"

namespace om {

enum class StatusCode : uint8_t {
  kOk,
  kInvalidArgument,     // a flag or argument value is wrong
  kNotFound,            // a file, tensor or key does not exist
  kCorruption,          // data on disk is damaged or inconsistent (checksum, truncated file)
  kIOError,             // the OS refused a read/write
  kFailedPrecondition,  // valid input, wrong state (e.g. a checkpoint from another model)
  kOutOfRange,          // an index or size past its limit
  kResourceExhausted,   // out of memory or arena space
  kUnavailable,         // a capability missing from this build or machine (e.g. no CUDA device)
  kInternal,            // a bug surfaced as a Status at an API boundary
};

const char* status_code_name(StatusCode c);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return Status(StatusCode::kInvalidArgument, std::move(m)); }
  static Status NotFound(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
  static Status Corruption(std::string m) { return Status(StatusCode::kCorruption, std::move(m)); }
  static Status IOError(std::string m) { return Status(StatusCode::kIOError, std::move(m)); }
  static Status FailedPrecondition(std::string m) { return Status(StatusCode::kFailedPrecondition, std::move(m)); }
  static Status OutOfRange(std::string m) { return Status(StatusCode::kOutOfRange, std::move(m)); }
  static Status ResourceExhausted(std::string m) { return Status(StatusCode::kResourceExhausted, std::move(m)); }
  static Status Unavailable(std::string m) { return Status(StatusCode::kUnavailable, std::move(m)); }
  static Status Internal(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "OK" or "<Code>: <message>", e.g. "NotFound: --data-path 'x.bin': no such file; ...".
  std::string ToString() const;
  // Prefixes context to the message ("while loading checkpoint ckpt/step_10: ..."); OK stays OK.
  Status WithContext(const std::string& context) const;

 private:
  Status(StatusCode c, std::string m) : code_(c), message_(std::move(m)) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// StatusOr<T>: a T or a non-OK Status. value() on an error is a programmer error (OM_CHECK).
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : v_(std::move(value)) {}  // NOLINT: implicit, like absl
  StatusOr(Status status) : v_(std::move(status)) {  // NOLINT
    OM_CHECK(!std::get<Status>(v_).ok(), "StatusOr constructed from an OK Status without a value");
  }
  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }
  T& value() & { check_ok(); return std::get<T>(v_); }
  const T& value() const& { check_ok(); return std::get<T>(v_); }
  T&& value() && { check_ok(); return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void check_ok() const {
    OM_CHECK(ok(), "StatusOr::value() on an error: %s", std::get<Status>(v_).ToString().c_str());
  }
  std::variant<T, Status> v_;
};

}  // namespace om

#define OM_STATUS_CONCAT_INNER_(a, b) a##b
#define OM_STATUS_CONCAT_(a, b) OM_STATUS_CONCAT_INNER_(a, b)

// Returns the Status from the enclosing function if `expr` is not OK.
#define OM_RETURN_IF_ERROR(expr)                   \
  do {                                             \
    ::om::Status om_status_ = (expr);              \
    if (!om_status_.ok()) return om_status_;       \
  } while (0)

// OM_ASSIGN_OR_RETURN(auto x, MakeX()): declares x from a StatusOr or returns its Status.
#define OM_ASSIGN_OR_RETURN(lhs, expr) \
  OM_ASSIGN_OR_RETURN_IMPL_(OM_STATUS_CONCAT_(om_statusor_, __LINE__), lhs, expr)
#define OM_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
