// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// ASCII helpers for protocol tokens (header names, schemes, media types): locale-free.
#pragma once

#include <ssepp/config.hpp>

#include <cstddef>
#include <string_view>

SSEPP_BEGIN_NAMESPACE
namespace detail {

/// ASCII case-insensitive equality (header names, schemes).
constexpr bool ascii_iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace detail
SSEPP_END_NAMESPACE
