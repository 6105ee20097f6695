// Status and Result<T>: how every imgq function reports failure.
//
// A Status is a cheap value: a code and a message. The code says what the
// caller should do (retry now, retry later, fix the input and resubmit, give
// up); the message names the thing that was wrong for a human. Exceptions from
// libraries (cv::Exception, zmq::error_t, msgpack errors) are converted into a
// Status at the edge of the component that calls the library and never cross a
// component boundary. Thread-safe as any value type.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace imgq {

// The wire protocol carries these numbers: append only, never renumber.
enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,    // a bad op, parameter or request: fix and resubmit
  kInvalidImage = 2,       // the image cannot be read or decoded: fix the file
  kUnsupported = 3,        // valid, but not for this image (e.g. canny on 16-bit)
  kTooLarge = 4,           // beyond a configured limit: shrink or raise the limit
  kResourceExhausted = 5,  // a queue or quota is full: retry later
  kUnavailable = 6,        // a peer is down or unreachable: retry later
  kDeadlineExceeded = 7,   // took longer than allowed
  kNotFound = 8,           // no such job, file or key
  kCancelled = 9,          // stopped on request
  kIoError = 10,           // reading or writing a local file failed
  kInternal = 11,          // a bug: report it
  kPermissionDenied = 12,  // refused: our key (CURVE), or a path outside --allow-paths
  kConflict = 13,          // an idempotency key reused for a different job: use a new key
};
// One past the last code.
inline constexpr size_t kStatusCodes = 14;

std::string_view status_code_name(StatusCode code);

// True when the same request may succeed if sent again unchanged.
bool is_retryable(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status InvalidImage(std::string m) { return {StatusCode::kInvalidImage, std::move(m)}; }
  static Status Unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
  static Status TooLarge(std::string m) { return {StatusCode::kTooLarge, std::move(m)}; }
  static Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status DeadlineExceeded(std::string m) { return {StatusCode::kDeadlineExceeded, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
  static Status Conflict(std::string m) { return {StatusCode::kConflict, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "invalid_argument: gaussian_blur: ksize must be odd ..." ; "ok" when ok.
  std::string ToString() const;

  // The same status with "context: " put before its message.
  Status WithContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

namespace internal {
// Ends the process with "Result has no value: STATUS" on stderr: the value
// of an error was used, a bug to be found at once rather than read as
// garbage (as absl's StatusOr::value() does).
[[noreturn]] void die_without_value(const Status& status);
}  // namespace internal

// A value or the Status saying why there is none (abseil's StatusOr, smaller).
// Every accessor of the value checks that there is one (see
// internal::die_without_value); test ok() first.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}                      // NOLINT: implicit by design
  Result(Status status)                                               // NOLINT: implicit by design
      : status_(status.ok() ? Status::Internal("Result made from an OK status") : std::move(status)) {}

  bool ok() const { return value_.has_value(); }
  // OK when a value is held; otherwise why there is none.
  const Status& status() const { return status_; }

  T& value() & { return checked(); }
  const T& value() const& { return checked(); }
  T&& value() && { return std::move(checked()); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &checked(); }
  T& operator*() & { return checked(); }
  const T& operator*() const& { return checked(); }

 private:
  T& checked() {
    if (!value_) internal::die_without_value(status_);
    return *value_;
  }
  const T& checked() const {
    if (!value_) internal::die_without_value(status_);
    return *value_;
  }

  std::optional<T> value_;
  Status status_;
};

}  // namespace imgq

// Returns early from the enclosing function when `expr` is not OK.
#define IMGQ_RETURN_IF_ERROR(expr)                 \
  do {                                             \
    ::imgq::Status imgq_status_ = (expr);          \
    if (!imgq_status_.ok()) return imgq_status_;   \
  } while (false)

#define IMGQ_CONCAT_INNER_(a, b) a##b
#define IMGQ_CONCAT_(a, b) IMGQ_CONCAT_INNER_(a, b)

// IMGQ_ASSIGN_OR_RETURN(auto x, MakeX()); returns the Status when MakeX fails.
#define IMGQ_ASSIGN_OR_RETURN(lhs, expr) \
  IMGQ_ASSIGN_OR_RETURN_IMPL_(IMGQ_CONCAT_(imgq_result_, __LINE__), lhs, expr)
#define IMGQ_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()
