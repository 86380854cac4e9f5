// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
#pragma once

#include <ssepp/config.hpp>

SSEPP_BEGIN_NAMESPACE
namespace detail {

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
