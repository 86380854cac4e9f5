// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// The Sink concept: everything a transport must offer the broadcaster.
//
//   Expression          Type                Semantics
//   ------------------  ------------------  ------------------------------------------------------
//   S(std::move(s))     S                   sinks are stored by value (move-constructible; copying
//                                           is not required)
//   s.send(frame)       convertible to bool  `frame` is a `const ssepp::Frame&`. Hands the frame to
//                                           the connection WITHOUT blocking (queue it, or write
//                                           what the socket takes now). `true`: the connection is
//                                           still usable. `false`: it is gone; the broadcaster
//                                           forgets the client at once. Should not throw (a throw
//                                           counts as `false`).
//   s.close()           any (optional)      called once when the broadcaster drops the client
//                                           (disconnect, failed send, broadcaster destroyed); after
//                                           it the broadcaster never touches the sink again.
//   s.prefetch(stage)   any (optional)      `s` as `const S&`, `stage` an int: a cache hint the
//                                           broadcaster gives a few recipients before their `send`
//                                           in a large fan-out, so memory misses overlap. Stage 2
//                                           first (read only the handle, e.g. prefetch the state
//                                           it points to), stage 1 later (the state is in cache:
//                                           prefetch what `send` will write). Must not block, lock
//                                           or change anything; noexcept. A hint only: a sink
//                                           without it behaves the same, a little slower.
//
// The broadcaster never calls one sink from two threads at once: every `send` and `close` on a
// registered sink is serialised. A sink may call back into the broadcaster (disconnect itself,
// send, join) from inside `send` or `close`. `ssepp::Mailbox` is the ready-made sink.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/detail/prefetch.hpp>
#include <ssepp/encoder.hpp>

#include <type_traits>
#include <utility>

#if SSEPP_HAS_CONCEPTS
#  include <concepts>
#endif

SSEPP_BEGIN_NAMESPACE

namespace detail {

template <class S, class = void>
struct has_send : std::false_type {};
template <class S>
struct has_send<S, std::void_t<decltype(std::declval<S&>().send(std::declval<const Frame&>()))>>
    : std::true_type {};

template <class S, class = void>
struct send_returns_bool : std::false_type {};
template <class S>
struct send_returns_bool<S, std::enable_if_t<has_send<S>::value>>
    : std::is_convertible<decltype(std::declval<S&>().send(std::declval<const Frame&>())), bool> {};

template <class S, class = void>
struct has_close : std::false_type {};
template <class S>
struct has_close<S, std::void_t<decltype(std::declval<S&>().close())>> : std::true_type {};

}  // namespace detail

/// True when `S` models the Sink concept (see the table at the top of <ssepp/sink.hpp>).
template <class S>
inline constexpr bool is_sink_v = std::is_object_v<S> && !std::is_const_v<S> &&
                                  std::is_move_constructible_v<S> && std::is_destructible_v<S> &&
                                  detail::send_returns_bool<S>::value;

/// True when the sink `S` has the optional `close()`.
template <class S>
inline constexpr bool sink_has_close_v = detail::has_close<S>::value;

#if SSEPP_HAS_CONCEPTS
/// A transport handle the broadcaster can deliver frames to (see <ssepp/sink.hpp>).
template <class S>
concept Sink = std::is_object_v<S> && !std::is_const_v<S> && std::move_constructible<S> &&
               std::destructible<S> && requires(S& s, const Frame& f) {
                 { s.send(f) } -> std::convertible_to<bool>;
               };
#endif

namespace detail {

/// static_asserts naming the missing expression; `true` when `S` is a sink.
template <class S>
constexpr bool check_sink() {
  static_assert(std::is_object_v<S> && !std::is_const_v<S>,
                "ssepp::Sink: the sink type must be a non-const object type (it is stored by value)");
  static_assert(std::is_move_constructible_v<S>,
                "ssepp::Sink: the sink type must be move-constructible (it is stored by value)");
  static_assert(has_send<S>::value,
                "ssepp::Sink: missing member `bool send(const ssepp::Frame&)` (non-blocking; "
                "returns false when the connection is gone)");
  static_assert(!has_send<S>::value || send_returns_bool<S>::value,
                "ssepp::Sink: `send(const ssepp::Frame&)` must return a type convertible to bool");
  return is_sink_v<S>;
}

/// Calls `s.send(f)`; a throwing sink counts as a failed one.
template <class S>
bool sink_send(S& s, const Frame& f) noexcept {
#if SSEPP_HAS_EXCEPTIONS
  try {
    return static_cast<bool>(s.send(f));
  } catch (...) {
    return false;
  }
#else
  return static_cast<bool>(s.send(f));
#endif
}

/// Tag of ssepp's own sinks' internal hooks, found by argument-dependent lookup (a hidden friend
/// `ssepp_sink_prefetch(const S&, int, detail::SinkHook)`), so that they are no public member.
struct SinkHook {};

template <class S, class = void>
struct has_prefetch_hook : std::false_type {};
template <class S>
struct has_prefetch_hook<S, std::void_t<decltype(ssepp_sink_prefetch(
                                std::declval<const S&>(), 0, SinkHook{}))>> : std::true_type {};

template <class S, class = void>
struct has_prefetch_member : std::false_type {};
template <class S>
struct has_prefetch_member<S, std::void_t<decltype(std::declval<const S&>().prefetch(0))>>
    : std::true_type {};

/// True when the sink takes the optional cache hint (see the table at the top): a public
/// `prefetch(int) const` (user sinks), or ssepp's internal hook (`Mailbox`).
template <class S>
struct has_prefetch
    : std::integral_constant<bool, has_prefetch_hook<S>::value || has_prefetch_member<S>::value> {};

/// Gives `s` the cache hint for `stage` when it takes one; nothing otherwise.
template <class S>
void sink_prefetch(const S& s, int stage) noexcept {
  if constexpr (has_prefetch_hook<S>::value) {
    ssepp_sink_prefetch(s, stage, SinkHook{});
  } else if constexpr (has_prefetch_member<S>::value) {
    (void)s.prefetch(stage);
  } else {
    (void)s;
    (void)stage;
  }
}

/// Calls `s.close()` when the sink has it; exceptions are swallowed (the client is gone anyway).
template <class S>
void sink_close(S& s) noexcept {
  if constexpr (has_close<S>::value) {
#if SSEPP_HAS_EXCEPTIONS
    try {
      s.close();
    } catch (...) {
    }
#else
    s.close();
#endif
  } else {
    (void)s;
  }
}

}  // namespace detail

SSEPP_END_NAMESPACE
