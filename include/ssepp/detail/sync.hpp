// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
#pragma once

#include <ssepp/config.hpp>

#include <atomic>
#include <chrono>
#include <thread>

// The Mailbox's synchronisation helpers: a one-byte lock for its hot state, and the deadline of
// a blocking wait.

#if defined(_MSC_VER) && !defined(__clang__) && (defined(_M_X64) || defined(_M_IX86))
#  include <intrin.h>
#endif

SSEPP_BEGIN_NAMESPACE
namespace detail {

/// Tells the CPU that this thread is spinning (frees the core's resources for its sibling).
inline void cpu_relax() noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  __builtin_ia32_pause();
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
  asm volatile("yield");
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
  _mm_pause();
#endif
}

/// A one-byte lock for critical sections of a few dozen instructions that never block (a
/// mailbox's queue): no allocation, no free, no call out while it is held. Uncontended: one
/// atomic exchange to lock, a plain store to unlock, and one byte of the cache line the data
/// shares, where std::mutex costs 40 bytes and two atomic operations. Contended: spins briefly,
/// then yields the thread. Not for anything that waits.
///
/// A translation unit that defines SSEPP_TRACK_SPIN_LOCKS before including ssepp (tests only:
/// it changes the class) can ask `SpinLock::held_here()` how many spin locks the current thread
/// holds, e.g. from a replaced operator new, to check that nothing allocates under one.
class SpinLock {
 public:
  void lock() noexcept {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      for (unsigned spins = 0; locked_.load(std::memory_order_relaxed); ++spins) {
        if (spins < 64) cpu_relax();
        else std::this_thread::yield();
      }
    }
#ifdef SSEPP_TRACK_SPIN_LOCKS
    ++held_count();
#endif
  }
  void unlock() noexcept {
#ifdef SSEPP_TRACK_SPIN_LOCKS
    --held_count();
#endif
    locked_.store(false, std::memory_order_release);
  }

#ifdef SSEPP_TRACK_SPIN_LOCKS
  /// Spin locks the current thread holds.
  static int held_here() noexcept { return held_count(); }

 private:
  static int& held_count() noexcept {
    static thread_local int held = 0;
    return held;
  }
#endif

 private:
  std::atomic<bool> locked_{false};
};

/// now + timeout on the steady clock, saturated: a timeout longer than the clock can count
/// waits until its end of time instead of overflowing into the past.
template <class Rep, class Period>
std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> timeout) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point now = Clock::now();
  if (timeout <= timeout.zero()) return now;
  const Clock::duration room = Clock::time_point::max() - now;
  if (std::chrono::duration<double>(timeout) >= std::chrono::duration<double>(room))
    return Clock::time_point::max();
  return now + std::chrono::ceil<Clock::duration>(timeout);
}

}  // namespace detail
SSEPP_END_NAMESPACE
