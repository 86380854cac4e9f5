// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/encoder.hpp>

#include <cstddef>
#include <type_traits>
#include <utility>

#if defined(_MSC_VER) && !defined(__clang__) && (defined(_M_X64) || defined(_M_IX86))
#  include <xmmintrin.h>
#endif

SSEPP_BEGIN_NAMESPACE
namespace detail {

/// Asks the CPU to start loading the cache line at `p` (a hint: never faults, no effect on
/// behaviour). `for_write` when the line is about to be written.
inline void prefetch(const void* p, bool for_write = false) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  if (for_write) __builtin_prefetch(p, 1, 3);
  else __builtin_prefetch(p, 0, 3);
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
  (void)for_write;
  _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
#else
  (void)p;
  (void)for_write;
#endif
}

/// Optional Sink extension: `s.prefetch(stage)`, a cache hint the broadcaster gives a few
/// recipients before `send` so that a long fan-out overlaps its memory misses instead of taking
/// them one after the other. Stage 2 comes first: the sink may read only its own handle (bring in
/// the state it points to); stage 1 comes later: that state is in cache (bring in what `send`
/// will write). It must not block, lock or change anything. `Mailbox` has it.
template <class S, class = void>
struct has_prefetch : std::false_type {};
template <class S>
struct has_prefetch<S, std::void_t<decltype(std::declval<const S&>().prefetch(0))>> : std::true_type {};

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
