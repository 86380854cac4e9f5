// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// The CPU's cache hint, for fan-outs that walk many objects (the broadcaster's recipients, a
// mailbox's state): a memory miss started early overlaps with the work before it.
#pragma once

#include <ssepp/config.hpp>

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

}  // namespace detail
SSEPP_END_NAMESPACE
