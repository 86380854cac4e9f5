// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
#pragma once

#include <ssepp/config.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

SSEPP_BEGIN_NAMESPACE
namespace detail {

/// A vector of trivially copyable values in 16 bytes (pointer + 32-bit size and capacity) that
/// keeps ONE value inline: a group with a single member (a user with one tab) needs no heap
/// block. Used for group member lists, where memory per idle client matters.
template <class T>
class InlineOneVector {
  // NOLINTNEXTLINE(bugprone-sizeof-expression): T is a pointer type here, by design
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= sizeof(void*),
                "InlineOneVector holds small trivially copyable values");

 public:
  InlineOneVector() noexcept = default;
  InlineOneVector(const InlineOneVector&) = delete;
  InlineOneVector& operator=(const InlineOneVector&) = delete;
  ~InlineOneVector() {
    if (cap_ > 1) delete[] heap_;
  }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::size_t capacity() const noexcept { return cap_ == 0 ? 1 : cap_; }
  T* begin() noexcept { return cap_ > 1 ? heap_ : &one_; }
  T* end() noexcept { return begin() + size_; }
  const T* begin() const noexcept { return cap_ > 1 ? heap_ : &one_; }
  const T* end() const noexcept { return begin() + size_; }
  T& operator[](std::size_t i) noexcept { return begin()[i]; }
  T& back() noexcept { return begin()[size_ - 1]; }

  void push_back(T v) {
    if (size_ == capacity()) regrow(capacity() * 2);
    begin()[size_++] = v;
  }
  void pop_back() noexcept { --size_; }

  /// Gives memory back when at most a quarter is used (and the block is not tiny).
  void shrink() {
    if (cap_ > 64 && size_ < cap_ / 4) regrow(size_ <= 1 ? 1 : std::size_t(size_) * 2);
  }

 private:
  void regrow(std::size_t cap) {
    T* old = cap_ > 1 ? heap_ : nullptr;
    T* from = begin();
    if (cap <= 1) {
      T v = size_ ? from[0] : T{};
      one_ = v;
      cap_ = 1;
    } else {
      T* block = new T[cap];
      if (size_) std::memcpy(block, from, size_ * sizeof(T));  // NOLINT(bugprone-sizeof-expression)
      heap_ = block;
      cap_ = static_cast<std::uint32_t>(cap);
    }
    delete[] old;
  }

  union {
    T one_;
    T* heap_;
  };
  std::uint32_t size_ = 0;
  std::uint32_t cap_ = 0;  // 0 or 1: the inline slot; more: heap_
};

}  // namespace detail
SSEPP_END_NAMESPACE
