// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// What a parser handler may offer, detected at compile time: a callable taking the event view, or
// an object with on_event and optionally on_comment / on_retry.
#pragma once

#include <ssepp/config.hpp>

#include <chrono>
#include <string_view>
#include <type_traits>
#include <utility>

SSEPP_BEGIN_NAMESPACE
namespace detail {

template <class H, class View, class = void>
struct has_on_event : std::false_type {};
template <class H, class View>
struct has_on_event<H, View,
                    std::void_t<decltype(std::declval<H&>().on_event(std::declval<const View&>()))>>
    : std::true_type {};

template <class H, class = void>
struct has_on_comment : std::false_type {};
template <class H>
struct has_on_comment<H, std::void_t<decltype(std::declval<H&>().on_comment(std::string_view{}))>>
    : std::true_type {};

template <class H, class = void>
struct has_on_retry : std::false_type {};
template <class H>
struct has_on_retry<
    H, std::void_t<decltype(std::declval<H&>().on_retry(std::chrono::milliseconds{}))>>
    : std::true_type {};

template <class H, class View>
inline constexpr bool is_parser_handler_v =
    has_on_event<std::remove_reference_t<H>, View>::value ||
    std::is_invocable_v<std::remove_reference_t<H>&, const View&>;

template <class H, class View>
void call_on_event(H& h, const View& ev) {
  if constexpr (has_on_event<H, View>::value)
    h.on_event(ev);
  else
    h(ev);
}

}  // namespace detail
SSEPP_END_NAMESPACE
