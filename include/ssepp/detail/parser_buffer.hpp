// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// The parser's reusable byte buffers: capacity is kept across events and connections (no
// allocation in steady state) and never grows past the buffer's limit, so memory stays bounded
// by the parser's limits (std::string's growth policy would allow up to twice that).
#pragma once

#include <ssepp/config.hpp>

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

SSEPP_BEGIN_NAMESPACE
namespace detail {

class ParserBuffer {
 public:
  /// memcpy, without the library call for the short strings ids and types usually are.
  static void copy(char* d, const char* s, std::size_t n) noexcept {
    if (n >= 8 && n <= 16) {
      std::memcpy(d, s, 8);
      std::memcpy(d + n - 8, s + n - 8, 8);
    } else if (n >= 4 && n < 8) {
      std::memcpy(d, s, 4);
      std::memcpy(d + n - 4, s + n - 4, 4);
    } else if (n < 4) {
      for (std::size_t i = 0; i < n; ++i) d[i] = s[i];
    } else {
      std::memcpy(d, s, n);
    }
  }

  ParserBuffer() noexcept = default;

  std::string_view view() const noexcept { return {data_.get(), size_}; }
  const char* data() const noexcept { return data_.get(); }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return cap_; }
  bool empty() const noexcept { return size_ == 0; }
  void clear() noexcept { size_ = 0; }

  /// Room for n more bytes, growing to at most max(needed, limit): returns where to write them.
  char* prepare(std::size_t n, std::size_t limit) {
    std::size_t need = size_ + n;
    if (need > cap_) grow(need, limit);
    return data_.get() + size_;
  }
  void commit(std::size_t n) noexcept { size_ += n; }

  void append(std::string_view s, std::size_t limit) {
    if (s.empty()) return;
    copy(prepare(s.size(), limit), s.data(), s.size());
    size_ += s.size();
  }
  /// Appends c then s (one growth check: the "LF then next data line" step).
  void append(char c, std::string_view s, std::size_t limit) {
    char* p = prepare(s.size() + 1, limit);
    *p = c;
    if (!s.empty()) copy(p + 1, s.data(), s.size());
    size_ += s.size() + 1;
  }
  void assign(std::string_view s, std::size_t limit) {
    size_ = 0;
    append(s, limit);
  }
  /// Releases the memory.
  void release() noexcept {
    data_.reset();
    size_ = cap_ = 0;
  }

 private:
  void grow(std::size_t need, std::size_t limit) {
    std::size_t cap = cap_ < 32 ? 64 : cap_ * 2;
    if (cap > limit) cap = limit;
    if (cap < need) cap = need;
    std::unique_ptr<char[]> fresh(new char[cap]);
    if (size_ != 0) std::memcpy(fresh.get(), data_.get(), size_);
    data_ = std::move(fresh);
    cap_ = cap;
  }

  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0;
  std::size_t cap_ = 0;
};

}  // namespace detail
SSEPP_END_NAMESPACE
