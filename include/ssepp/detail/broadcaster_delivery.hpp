// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/detail/prefetch.hpp>
#include <ssepp/encoder.hpp>
#include <ssepp/sink.hpp>

#include <cstddef>
#include <type_traits>
#include <utility>

SSEPP_BEGIN_NAMESPACE
namespace detail {

/// Calls `s.send(std::move(f))`: a sink taking frames by value or by `Frame&&` (like `Mailbox`)
/// keeps `f` itself, with no reference count change; one taking `const Frame&` leaves `f` as it
/// was. `f` is taken by lvalue reference because the caller looks at it afterwards (was it
/// kept?). A throwing sink counts as a failed one.
template <class S>
bool sink_send_share(S& s, Frame& f) noexcept {
#if SSEPP_HAS_EXCEPTIONS
  try {
    return static_cast<bool>(s.send(std::move(f)));
  } catch (...) {
    return false;
  }
#else
  return static_cast<bool>(s.send(std::move(f)));
#endif
}

/// Marks, for the current thread, "I hold the delivery lock of broadcaster `owner`". Marks nest
/// (a sink of broadcaster A may call broadcaster B), so they form a per-thread stack. A
/// broadcaster asks `held(this)` to tell a re-entrant call from a sink (which must not lock
/// again) from a call on another thread.
class DeliveryMark {
 public:
  explicit DeliveryMark(const void* owner) noexcept : owner_(owner), prev_(top()) { top() = this; }
  ~DeliveryMark() { top() = prev_; }
  DeliveryMark(const DeliveryMark&) = delete;
  DeliveryMark& operator=(const DeliveryMark&) = delete;

  /// True when the current thread holds `owner`'s delivery lock.
  static bool held(const void* owner) noexcept {
    for (const DeliveryMark* m = top(); m != nullptr; m = m->prev_)
      if (m->owner_ == owner) return true;
    return false;
  }

 private:
  static DeliveryMark*& top() noexcept {
    static thread_local DeliveryMark* current = nullptr;
    return current;
  }

  const void* owner_;
  DeliveryMark* prev_;
};

}  // namespace detail
SSEPP_END_NAMESPACE
