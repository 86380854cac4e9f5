// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// UTF-8 checking and the WHATWG Encoding Standard's UTF-8 decoder with replacement: each
// ill-formed sequence (maximal subpart) becomes one U+FFFD, exactly as a browser decodes an event
// stream. Internal to the parser.
#pragma once

#include <ssepp/config.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>

SSEPP_BEGIN_NAMESPACE
namespace detail {

/// Continuation-byte bounds of the sequence a lead byte starts, and how many follow.
/// `need == 0` marks a byte that cannot start a sequence (stray continuation, C0, C1, F5..FF).
struct Utf8Lead {
  unsigned need;
  unsigned lo;
  unsigned hi;
};

inline Utf8Lead utf8_lead(unsigned char b) noexcept {
  if (b >= 0xC2 && b <= 0xDF) return {1, 0x80, 0xBF};
  if (b >= 0xE0 && b <= 0xEF) return {2, b == 0xE0 ? 0xA0u : 0x80u, b == 0xED ? 0x9Fu : 0xBFu};
  if (b >= 0xF0 && b <= 0xF4) return {3, b == 0xF0 ? 0x90u : 0x80u, b == 0xF4 ? 0x8Fu : 0xBFu};
  return {0, 0, 0};
}

/// Length of the well-formed sequence starting at s[i] (a non-ASCII byte), or, when it is
/// ill-formed, minus the number of bytes the decoder consumes before emitting one U+FFFD
/// (the lead and the continuation bytes that were still acceptable).
inline std::ptrdiff_t utf8_step(const unsigned char* s, std::size_t i, std::size_t n) noexcept {
  Utf8Lead lead = utf8_lead(s[i]);
  if (lead.need == 0) return -1;
  unsigned lo = lead.lo, hi = lead.hi;
  std::size_t j = 1;
  for (; j <= lead.need; ++j) {
    if (i + j >= n) break;  // truncated by the end of the input
    unsigned c = s[i + j];
    if (c < lo || c > hi) break;  // this byte is not consumed: it is decoded afresh
    lo = 0x80;
    hi = 0xBF;
  }
  if (j == lead.need + 1) return static_cast<std::ptrdiff_t>(j);
  return -static_cast<std::ptrdiff_t>(j);
}

/// Index of the first byte at or after i that is not ASCII, or n.
inline std::size_t utf8_skip_ascii(const char* s, std::size_t i, std::size_t n) noexcept {
  while (i + 8 <= n) {
    std::uint64_t w;
    std::memcpy(&w, s + i, 8);
    if (w & 0x8080808080808080ull) break;
    i += 8;
  }
  while (i < n && static_cast<unsigned char>(s[i]) < 0x80) ++i;
  return i;
}

/// True when [s, s+n) is well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
inline bool utf8_valid(const char* s, std::size_t n) noexcept {
  const auto* u = reinterpret_cast<const unsigned char*>(s);
  std::size_t i = 0;
  for (;;) {
    i = utf8_skip_ascii(s, i, n);
    if (i == n) return true;
    std::ptrdiff_t step = utf8_step(u, i, n);
    if (step < 0) return false;
    i += static_cast<std::size_t>(step);
  }
}

/// Decodes [s, s+n) as the Encoding Standard's UTF-8 decoder does, writing UTF-8 to out with each
/// error replaced by U+FFFD (EF BF BD). out must hold 3 * n bytes. Returns the bytes written.
inline std::size_t utf8_replace(const char* s, std::size_t n, char* out) noexcept {
  const auto* u = reinterpret_cast<const unsigned char*>(s);
  char* o = out;
  std::size_t i = 0;
  while (i < n) {
    std::size_t a = utf8_skip_ascii(s, i, n);
    std::memcpy(o, s + i, a - i);
    o += a - i;
    i = a;
    if (i == n) break;
    std::ptrdiff_t step = utf8_step(u, i, n);
    if (step > 0) {
      std::memcpy(o, s + i, static_cast<std::size_t>(step));
      o += step;
      i += static_cast<std::size_t>(step);
    } else {
      *o++ = static_cast<char>(0xEF);
      *o++ = static_cast<char>(0xBF);
      *o++ = static_cast<char>(0xBD);
      i += static_cast<std::size_t>(-step);
    }
  }
  return static_cast<std::size_t>(o - out);
}

}  // namespace detail
SSEPP_END_NAMESPACE
