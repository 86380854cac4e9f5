// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/error.hpp>

#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

SSEPP_BEGIN_NAMESPACE

/// The outcome of every fallible ssepp call: a value, or the `std::error_code` saying why there
/// is none (the shape of `std::expected<T, std::error_code>`, available under C++17).
///
/// The one error convention of the library:
/// - a call that can fail on input, on state or on the world (an untrusted stream, a refused
///   join, an unknown client, an unreachable bus) returns `Result<T>`, or `Result<void>` when it
///   has nothing else to return, and never throws for that;
/// - a programmer error (encoding an invalid event, a negative retry) throws `ssepp::Error` from
///   the plain call, and its `try_` twin returns a `Result` instead.
///
/// A `Result` tests true when it holds a value: `if (auto r = b.join(id, "room"); !r) log(r.error())`.
/// `value()` on an error throws `ssepp::Error` carrying it (aborts without exceptions).
template <class T>
class [[nodiscard]] Result {
  static_assert(!std::is_reference_v<T>, "Result<T&> is not supported");
  static_assert(!std::is_same_v<std::decay_t<T>, std::error_code>, "Result of an error code");

 public:
  using value_type = T;

  /// A result holding `T{}`.
  Result() : value_(std::in_place) {}
  /// A result holding `value`.
  Result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  /// A failed result. `ec` must be an error (non-zero).
  Result(std::error_code ec) noexcept : error_(ec) {}  // NOLINT(google-explicit-constructor)
  /// A failed result with an ssepp error.
  Result(errc e) noexcept : error_(make_error_code(e)) {}  // NOLINT(google-explicit-constructor)

  /// True when the call succeeded.
  bool has_value() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }

  /// Why there is no value; a default (zero) code when there is one.
  const std::error_code& error() const noexcept { return error_; }

  /// The value; throws `ssepp::Error` with `error()` when there is none.
  T& value() & { check(); return *value_; }
  const T& value() const& { check(); return *value_; }
  T&& value() && { check(); return std::move(*value_); }

  /// The value or `fallback` when there is none.
  template <class U>
  T value_or(U&& fallback) const& {
    return value_ ? *value_ : static_cast<T>(std::forward<U>(fallback));
  }
  template <class U>
  T value_or(U&& fallback) && {
    return value_ ? std::move(*value_) : static_cast<T>(std::forward<U>(fallback));
  }

  /// Unchecked access: only when `has_value()`.
  T& operator*() & noexcept { return *value_; }
  const T& operator*() const& noexcept { return *value_; }
  T&& operator*() && noexcept { return std::move(*value_); }
  T* operator->() noexcept { return &*value_; }
  const T* operator->() const noexcept { return &*value_; }

 private:
  void check() const {
    if (!value_) detail::throw_error(error_);
  }

  std::optional<T> value_;
  std::error_code error_;
};

/// A fallible call with nothing to return but whether it worked.
template <>
class [[nodiscard]] Result<void> {
 public:
  using value_type = void;

  /// Success.
  Result() noexcept = default;
  /// A failed result when `ec` is an error, success when it is zero.
  Result(std::error_code ec) noexcept : error_(ec) {}  // NOLINT(google-explicit-constructor)
  /// A failed result with an ssepp error.
  Result(errc e) noexcept : error_(make_error_code(e)) {}  // NOLINT(google-explicit-constructor)

  bool has_value() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return has_value(); }
  const std::error_code& error() const noexcept { return error_; }
  /// Throws `ssepp::Error` when the call failed.
  void value() const {
    if (error_) detail::throw_error(error_);
  }

 private:
  std::error_code error_;
};

SSEPP_END_NAMESPACE
