// The demo page (page.html), embedded in the binary at build time by embed.cmake.
#pragma once

#include <string_view>

namespace demo {

/// The bytes of page.html.
std::string_view page_html() noexcept;

}  // namespace demo
