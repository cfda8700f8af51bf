// Status and Expected<T>: how errors cross module boundaries (DESIGN.md: never both assert and Status in
// one function). A Status carries a code and one human-readable message that names the file/field and what
// was expected. C++20 has no std::expected, so Expected<T> is a small variant wrapper.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace punica {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // caller passed something malformed (HTTP body, CLI flag, request field)
  kInvalidFile,      // an untrusted file (model, adapter, tokenizer) is malformed
  kNotFound,         // a file, tensor, key or adapter that does not exist
  kUnsupported,      // valid input that this build does not handle (e.g. an unknown quant type)
  kResourceExhausted,
  kIoError,
  kInternal,
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "InvalidFile: model.gguf: tensor 'blk.0.attn_q.weight': offset 123 past end of file (size 100)"
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status invalid_file(std::string m) { return {StatusCode::kInvalidFile, std::move(m)}; }
inline Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
inline Status io_error(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status resource_exhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status internal_error(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}                 // NOLINT: implicit by design
  Expected(Status status) : v_(std::move(status)) {}          // NOLINT: must be an error status
  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Status& status() const& {
    static const Status kOk;
    return has_value() ? kOk : std::get<1>(v_);
  }
  Status status() && { return has_value() ? Status{} : std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace punica

// Propagate an error Status from an expression returning Status.
#define PUNICA_RETURN_IF_ERROR(expr)            \
  do {                                          \
    ::punica::Status _st = (expr);              \
    if (!_st.is_ok()) return _st;               \
  } while (0)

#define PUNICA_CONCAT_INNER(a, b) a##b
#define PUNICA_CONCAT(a, b) PUNICA_CONCAT_INNER(a, b)
// PUNICA_ASSIGN_OR_RETURN(auto x, expr_returning_Expected);
#define PUNICA_ASSIGN_OR_RETURN(lhs, expr) \
  PUNICA_ASSIGN_OR_RETURN_IMPL(PUNICA_CONCAT(_expected_, __LINE__), lhs, expr)
#define PUNICA_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.has_value()) return std::move(tmp).status(); \
  lhs = std::move(tmp).value()
