// Replaces the global operator new and delete of the test program that includes it (include it
// in one file of a program only): every allocation and free is counted, the next
// `g_fail_allocations` allocations throw std::bad_alloc, and while `g_watch` (when set) returns
// true on the calling thread they are counted as watched too (e.g. "under a spin lock").
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

inline std::atomic<std::size_t> g_allocations{0};
inline std::atomic<std::size_t> g_frees{0};
inline std::atomic<int> g_fail_allocations{0};
inline bool (*g_watch)() = nullptr;
inline std::atomic<std::size_t> g_allocations_watched{0};
inline std::atomic<std::size_t> g_frees_watched{0};

namespace counting_new {
inline void* allocate(std::size_t n, std::size_t align, bool may_fail) {
  if (may_fail && g_fail_allocations.load(std::memory_order_relaxed) > 0 &&
      g_fail_allocations.fetch_sub(1, std::memory_order_relaxed) > 0)
    return nullptr;
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (g_watch != nullptr && g_watch()) g_allocations_watched.fetch_add(1, std::memory_order_relaxed);
  if (n == 0) n = 1;
  if (align <= alignof(std::max_align_t)) return std::malloc(n);
  return std::aligned_alloc(align, (n + align - 1) / align * align);
}
inline void release(void* p) noexcept {
  if (p == nullptr) return;
  g_frees.fetch_add(1, std::memory_order_relaxed);
  if (g_watch != nullptr && g_watch()) g_frees_watched.fetch_add(1, std::memory_order_relaxed);
  std::free(p);
}
}  // namespace counting_new

void* operator new(std::size_t n) {
  if (void* p = counting_new::allocate(n, 0, true)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  if (void* p = counting_new::allocate(n, static_cast<std::size_t>(a), true)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return counting_new::allocate(n, 0, false);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return counting_new::allocate(n, 0, false);
}
void operator delete(void* p) noexcept { counting_new::release(p); }
void operator delete[](void* p) noexcept { counting_new::release(p); }
void operator delete(void* p, std::size_t) noexcept { counting_new::release(p); }
void operator delete[](void* p, std::size_t) noexcept { counting_new::release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { counting_new::release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { counting_new::release(p); }
void operator delete(void* p, std::align_val_t) noexcept { counting_new::release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { counting_new::release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { counting_new::release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { counting_new::release(p); }
