// Errors as values for the runtime and the tools (no exceptions, no exit in libraries).
//
// `Status` is success or an error message; `Result<T>` is a value or an error message.
// A message is one line a user can act on: it names the file or object and what is
// wrong ("weights.safetensors: tensor 'x' has data_offsets [0, 12] but shape [4] of F32
// needs 16 bytes"). Callers add context with `withContext` as errors travel upwards.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace apc {

class Status {
public:
  Status() = default;
  static Status ok() { return Status(); }
  static Status error(std::string message) {
    Status s;
    s.message_ = std::move(message);
    return s;
  }
  bool isOk() const { return !message_.has_value(); }
  explicit operator bool() const { return isOk(); }
  const std::string &message() const {
    static const std::string kEmpty;
    return message_ ? *message_ : kEmpty;
  }
  // Prefixes the message with `context: ` (no-op on success).
  Status withContext(const std::string &context) const {
    if (isOk())
      return *this;
    return error(context + ": " + *message_);
  }

private:
  std::optional<std::string> message_;
};

template <typename T> class Result {
public:
  Result(T value) : storage_(std::move(value)) {}
  Result(Status status) : storage_(std::move(status)) {}
  static Result error(std::string message) {
    return Result(Status::error(std::move(message)));
  }
  bool isOk() const { return storage_.index() == 0; }
  explicit operator bool() const { return isOk(); }
  T &value() { return std::get<0>(storage_); }
  const T &value() const { return std::get<0>(storage_); }
  T &operator*() { return value(); }
  const T &operator*() const { return value(); }
  T *operator->() { return &value(); }
  const T *operator->() const { return &value(); }
  Status status() const {
    return isOk() ? Status::ok() : std::get<1>(storage_);
  }
  const std::string &message() const {
    static const std::string kEmpty;
    return isOk() ? kEmpty : std::get<1>(storage_).message();
  }

private:
  std::variant<T, Status> storage_;
};

} // namespace apc

// Returns the error of `expr` (a Status) from the enclosing function.
#define APC_RETURN_IF_ERROR(expr)                                              \
  do {                                                                         \
    ::apc::Status apc_status_ = (expr);                                        \
    if (!apc_status_.isOk())                                                   \
      return apc_status_;                                                      \
  } while (0)
