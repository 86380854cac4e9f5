// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// fmt integration: events formatted straight into a Frame (`format_frame`), frames made from views
// (`make_frame`), and `fmt::formatter`s for Event, EventView, Frame and the public enums. Uses
// only the fmt API that fmt 9, 10 and 11 share (fmt 9 has no `{:?}` for strings: the escaping is
// ours, the same on every version).
#pragma once

#include <ssepp/broadcaster.hpp>
#include <ssepp/client.hpp>
#include <ssepp/config.hpp>
#include <ssepp/detail/utf8.hpp>
#include <ssepp/encoder.hpp>
#include <ssepp/error.hpp>
#include <ssepp/event.hpp>
#include <ssepp/history.hpp>
#include <ssepp/mailbox.hpp>
#include <ssepp/parser.hpp>
#include <ssepp/result.hpp>

#include <fmt/compile.h>  // FMT_COMPILE format strings, for the compiled format_frame
#include <fmt/format.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

SSEPP_BEGIN_NAMESPACE

/// Every field of an event except its data, as views: what `format_frame` writes before the
/// formatted data. The same rules as `Event` (see `validate`): no CR or LF in `type`, no CR, LF or
/// NUL in `id`, `retry` not negative.
///
/// An aggregate, so C++17 can write `{"price", "7"}` (type, id) and C++20 `{.type = "price"}`;
/// the `with_*` setters chain: `ssepp::EventHead{}.with_type("price").with_id(id)`. The views
/// must stay valid until the call that reads them returns. (Every member has a default
/// initialiser, so `{"price"}` draws no -Wmissing-field-initializers warning.)
struct EventHead {
  /// `event:` field; empty means the default type, `message`.
  std::string_view type{};
  /// `id:` field when set (an empty id resets the client's Last-Event-ID).
  std::optional<std::string_view> id{};
  /// `retry:` field when set.
  std::optional<std::chrono::milliseconds> retry{};
  /// Comment written first (`: text`); empty means none. Line breaks start new comment lines.
  std::string_view comment{};

  EventHead& with_type(std::string_view v) & { type = v; return *this; }
  EventHead& with_id(std::string_view v) & { id = v; return *this; }
  EventHead& with_retry(std::chrono::milliseconds v) & { retry = v; return *this; }
  EventHead& with_comment(std::string_view v) & { comment = v; return *this; }
  EventHead with_type(std::string_view v) && { type = v; return *this; }
  EventHead with_id(std::string_view v) && { id = v; return *this; }
  EventHead with_retry(std::chrono::milliseconds v) && { retry = v; return *this; }
  EventHead with_comment(std::string_view v) && { comment = v; return *this; }
};

namespace detail {

/// `validate` for a head: the same checks, the same codes.
inline std::error_code validate_head(const EventHead& h) noexcept {
  if (has_field_breaker(h.type.data(), h.type.size(), false)) return errc::invalid_event_type;
  if (h.id && has_field_breaker(h.id->data(), h.id->size(), true)) return errc::invalid_event_id;
  if (h.retry && h.retry->count() < 0) return errc::invalid_retry;
  return {};
}

/// How a valid head and its data will be written (the layout `encode` uses for an Event).
struct HeadLayout {
  std::size_t size = 0;
  bool single_line_data = false;
};

inline HeadLayout layout(const EventHead& h, std::string_view data) noexcept {
  HeadLayout l;
  std::size_t n = 0;
  if (!h.comment.empty()) n += multiline_size(":", h.comment);
  if (!h.type.empty()) n += field_size("event", h.type);
  if (h.id) n += field_size("id", *h.id);
  if (h.retry) n += 7 + decimal_size(static_cast<unsigned long long>(h.retry->count())) + 1;
  l.single_line_data = !has_line_break(data.data(), data.size());
  n += l.single_line_data ? field_size("data", data) : multiline_size("data:", data);
  l.size = n + 1;
  return l;
}

/// Writes the frame of a valid head and its data (exactly layout(h, data).size bytes).
inline char* write_event(char* out, const EventHead& h, std::string_view data,
                         const HeadLayout& l) noexcept {
  if (!h.comment.empty()) out = put_multiline(out, ":", h.comment);
  if (!h.type.empty()) out = put_field(out, "event", h.type);
  if (h.id) out = put_field(out, "id", *h.id);
  if (h.retry) {
    auto ms = static_cast<unsigned long long>(h.retry->count());
    out = put(out, "retry: ");
    out = put_decimal(out, ms, decimal_size(ms));
    *out++ = '\n';
  }
  out = l.single_line_data ? put_field(out, "data", data) : put_multiline(out, "data:", data);
  *out++ = '\n';
  return out;
}

/// The frame of a valid head and data, in one allocation.
inline Frame head_frame(const EventHead& h, std::string_view data) {
  const HeadLayout l = layout(h, data);
  return Frame::build(l.size, [&](char* out) { write_event(out, h, data, l); });
}

/// The frame of a valid head and the data `format` makes of `args`: formatted into a stack
/// buffer (fmt::memory_buffer, 500 bytes inline), then encoded into the frame's allocation.
template <class Format, class... Args>
Frame formatted_frame(const EventHead& h, const Format& format, Args&&... args) {
  fmt::memory_buffer data;
  fmt::format_to(fmt::appender(data), format, std::forward<Args>(args)...);
  return head_frame(h, std::string_view(data.data(), data.size()));
}

}  // namespace detail

/// The frame of the event `head` + `data`, written into the frame's one allocation (the same
/// bytes as `encode` of the same Event). Returns errc::invalid_event_type, invalid_event_id or
/// invalid_retry for an invalid head (see `validate`).
inline Result<Frame> try_make_frame(const EventHead& head, std::string_view data) {
  if (auto ec = detail::validate_head(head)) return ec;
  return detail::head_frame(head, data);
}

/// As `try_make_frame`, throwing `ssepp::Error` for an invalid head.
inline Frame make_frame(const EventHead& head, std::string_view data) {
  if (auto ec = detail::validate_head(head)) detail::throw_error(ec);
  return detail::head_frame(head, data);
}

/// The frame of an event whose data is `fmt::format(format, args...)`, without the data string:
/// the data is formatted into a stack buffer (500 bytes inline, larger data spills to the heap)
/// and encoded into the frame's one allocation, so a small event costs one allocation instead of
/// two (fmt::format's string, then the frame). Line breaks in the formatted data are split into
/// `data:` lines exactly as `encode` does (LF, CR, CRLF), so no argument can forge a field.
///
///     auto f = ssepp::format_frame({"price"}, "{{\"sym\":\"{}\",\"px\":{}}}", sym, px);
///
/// Throws `ssepp::Error` for an invalid head (see `try_format_frame`); fmt's own errors (only
/// possible with `fmt::runtime` format strings) propagate as `fmt::format_error`.
template <class... Args>
Frame format_frame(const EventHead& head, fmt::format_string<Args...> format, Args&&... args) {
  if (auto ec = detail::validate_head(head)) detail::throw_error(ec);
  return detail::formatted_frame(head, format, std::forward<Args>(args)...);
}

/// As `format_frame`, returning errc::invalid_event_type, invalid_event_id or invalid_retry
/// instead of throwing for an invalid head. Nothing is formatted then.
template <class... Args>
Result<Frame> try_format_frame(const EventHead& head, fmt::format_string<Args...> format,
                               Args&&... args) {
  if (auto ec = detail::validate_head(head)) return ec;
  return detail::formatted_frame(head, format, std::forward<Args>(args)...);
}

namespace detail {
template <class... Args>
struct TypeList {};
/// True for format strings that `fmt::format_to` takes but `fmt::format_string` does not: the
/// compiled ones, `FMT_COMPILE("...")` (from <fmt/compile.h>).
template <class S, class List, class = void>
struct is_compiled_format_impl : std::false_type {};
template <class S, class... Args>
struct is_compiled_format_impl<
    S, TypeList<Args...>,
    std::void_t<decltype(fmt::format_to(std::declval<fmt::appender>(), std::declval<const S&>(),
                                        std::declval<Args>()...))>>
    : std::bool_constant<!std::is_convertible_v<const S&, fmt::format_string<Args...>>> {};
template <class S, class... Args>
inline constexpr bool is_compiled_format_v = is_compiled_format_impl<S, TypeList<Args...>>::value;
}  // namespace detail

/// As `format_frame`, with a format string compiled by `FMT_COMPILE`: no format string is parsed
/// at run time, the fastest way to format an event.
template <class S, class... Args,
          std::enable_if_t<detail::is_compiled_format_v<S, Args...>, int> = 0>
Frame format_frame(const EventHead& head, const S& format, Args&&... args) {
  if (auto ec = detail::validate_head(head)) detail::throw_error(ec);
  return detail::formatted_frame(head, format, std::forward<Args>(args)...);
}

/// As `try_format_frame`, with a format string compiled by `FMT_COMPILE`.
template <class S, class... Args,
          std::enable_if_t<detail::is_compiled_format_v<S, Args...>, int> = 0>
Result<Frame> try_format_frame(const EventHead& head, const S& format, Args&&... args) {
  if (auto ec = detail::validate_head(head)) return ec;
  return detail::formatted_frame(head, format, std::forward<Args>(args)...);
}

namespace detail {

/// Names of the public enums, for the formatters below: each enum's own `to_string`.
template <class E>
constexpr std::string_view enum_name(E e) noexcept {
  return to_string(e);
}

inline constexpr std::string_view enum_type_name(errc) noexcept { return "errc"; }
inline constexpr std::string_view enum_type_name(Overflow) noexcept { return "Overflow"; }
inline constexpr std::string_view enum_type_name(Replay) noexcept { return "Replay"; }
inline constexpr std::string_view enum_type_name(DisconnectReason) noexcept {
  return "DisconnectReason";
}
inline constexpr std::string_view enum_type_name(ReadyState) noexcept { return "ReadyState"; }
inline constexpr std::string_view enum_type_name(Verdict) noexcept { return "Verdict"; }
inline constexpr std::string_view enum_type_name(Utf8) noexcept { return "Utf8"; }
inline constexpr std::string_view enum_type_name(Parsed) noexcept { return "Parsed"; }

/// Writes `s` as a double-quoted, one-line literal: `"` `\` and control bytes escaped (\n, \r,
/// \t, else \xNN), well-formed UTF-8 kept, every byte of an ill-formed sequence as \xNN.
/// (fmt 9 has no `{:?}` for strings; this is the same on every fmt version.)
template <class Out>
Out write_quoted(Out out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  const auto* u = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  *out++ = '"';
  for (std::size_t i = 0; i < n;) {
    const unsigned char c = u[i];
    if (c >= 0x80) {
      const std::ptrdiff_t step = utf8_step(u, i, n);
      if (step > 0) {
        for (std::ptrdiff_t k = 0; k < step; ++k) *out++ = s[i++];
        continue;
      }
    } else if (c >= 0x20 && c != 0x7F && c != '"' && c != '\\') {
      *out++ = static_cast<char>(c);
      ++i;
      continue;
    }
    *out++ = '\\';
    switch (c) {
      case '"': *out++ = '"'; break;
      case '\\': *out++ = '\\'; break;
      case '\n': *out++ = 'n'; break;
      case '\r': *out++ = 'r'; break;
      case '\t': *out++ = 't'; break;
      default:
        *out++ = 'x';
        *out++ = hex[c >> 4];
        *out++ = hex[c & 0xF];
    }
    ++i;
  }
  *out++ = '"';
  return out;
}

/// The format spec of ssepp's value formatters: `{}` is the wire form (the exact SSE bytes),
/// `{:?}` the debug form (one line, escaped). Anything else fails fmt's format string check.
struct WireOrDebug {
  bool debug = false;

  template <class ParseContext>
  constexpr auto parse(ParseContext& ctx) -> decltype(ctx.begin()) {
    auto it = ctx.begin();
    if (it != ctx.end() && *it == '?') {
      debug = true;
      ++it;
    }
    return it;
  }
};

/// The wire form of a parsed event: the frame a client reads back as the same view from a fresh
/// stream (no `event:` line for "message", no `id:` line for an empty id).
inline EventHead view_head(const EventView& v) noexcept {
  EventHead h;
  if (v.type != "message") h.type = v.type;
  if (!v.id.empty()) h.id = v.id;
  return h;
}

template <class Out>
Out copy_out(Out out, std::string_view s) {
  return fmt::format_to(out, "{}", fmt::string_view(s.data(), s.size()));
}

/// The formatter of the public enums: the enumerator's name (`closed`); `{:?}` adds the type
/// (`errc::closed`). Accepts a fill, an alignment and a width before the `?` (`{:>12}`,
/// `{:*^16?}`), like a string.
template <class Enum>
struct EnumFormatter {
  char fill = ' ';
  char align = '<';
  std::size_t width = 0;
  bool qualified = false;

  template <class ParseContext>
  constexpr auto parse(ParseContext& ctx) -> decltype(ctx.begin()) {
    auto it = ctx.begin();
    auto end = ctx.end();
    auto is_align = [](char c) { return c == '<' || c == '>' || c == '^'; };
    if (it != end && it + 1 != end && *it != '{' && *it != '}' && is_align(*(it + 1))) {
      fill = *it;
      align = *(it + 1);
      it += 2;
    } else if (it != end && is_align(*it)) {
      align = *it++;
    }
    while (it != end && *it >= '0' && *it <= '9')
      width = width * 10 + static_cast<std::size_t>(*it++ - '0');
    if (it != end && *it == '?') {
      qualified = true;
      ++it;
    }
    return it;
  }

  template <class FormatContext>
  auto format(Enum e, FormatContext& ctx) const -> decltype(ctx.out()) {
    const std::string_view name = enum_name(e);
    const std::string_view type = qualified ? enum_type_name(e) : std::string_view();
    const std::size_t size = name.size() + (qualified ? type.size() + 2 : 0);
    const std::size_t pad = width > size ? width - size : 0;
    const std::size_t before = align == '>' ? pad : align == '^' ? pad / 2 : 0;
    auto out = ctx.out();
    for (std::size_t i = 0; i < before; ++i) *out++ = fill;
    if (qualified) out = copy_out(copy_out(out, type), "::");
    out = copy_out(out, name);
    for (std::size_t i = before; i < pad; ++i) *out++ = fill;
    return out;
  }
};

/// `before"value"after`, the value quoted by write_quoted.
template <class Out>
Out quoted_field(Out out, std::string_view before, std::string_view value,
                 std::string_view after) {
  return copy_out(write_quoted(copy_out(out, before), value), after);
}

}  // namespace detail

SSEPP_END_NAMESPACE

namespace fmt {

/// `{}`: the event's frame, exactly what `ssepp::encode` writes (throws `ssepp::Error` for an
/// invalid event, like `encode`). `{:?}`: one line such as
/// `Event{type="price", id="7", data="a\nb"}` (type and comment when not empty, id and retry when
/// set).
template <>
struct formatter<ssepp::Event> : ssepp::detail::WireOrDebug {
  template <class FormatContext>
  auto format(const ssepp::Event& ev, FormatContext& ctx) const -> decltype(ctx.out()) {
    namespace sd = ssepp::detail;
    auto out = ctx.out();
    if (!debug) {
      fmt::memory_buffer buf;
      if (auto r = ssepp::encode_to(buf, ev); !r) sd::throw_error(r.error());
      return sd::copy_out(out, std::string_view(buf.data(), buf.size()));
    }
    out = sd::copy_out(out, "Event{");
    if (!ev.type.empty()) out = sd::quoted_field(out, "type=", ev.type, ", ");
    if (ev.id) out = sd::quoted_field(out, "id=", *ev.id, ", ");
    if (ev.retry) out = fmt::format_to(out, "retry={}ms, ", ev.retry->count());
    if (!ev.comment.empty()) out = sd::quoted_field(out, "comment=", ev.comment, ", ");
    return sd::quoted_field(out, "data=", ev.data, "}");
    return out;
  }
};

/// `{}`: a frame a client reads back as the same view from a fresh stream (`event:` unless the
/// type is "message", `id:` unless the id is empty, the data lines). `{:?}`: one line such as
/// `EventView{type="message", id="", data="a\nb"}`.
template <>
struct formatter<ssepp::EventView> : ssepp::detail::WireOrDebug {
  template <class FormatContext>
  auto format(const ssepp::EventView& v, FormatContext& ctx) const -> decltype(ctx.out()) {
    namespace sd = ssepp::detail;
    auto out = ctx.out();
    if (!debug) {
      const ssepp::EventHead h = sd::view_head(v);
      if (auto ec = sd::validate_head(h)) sd::throw_error(ec);
      const sd::HeadLayout l = sd::layout(h, v.data);
      fmt::memory_buffer buf;
      buf.resize(l.size);
      sd::write_event(buf.data(), h, v.data, l);
      return sd::copy_out(out, std::string_view(buf.data(), buf.size()));
    }
    out = sd::quoted_field(out, "EventView{type=", v.type, ", ");
    out = sd::quoted_field(out, "id=", v.id, ", ");
    return sd::quoted_field(out, "data=", v.data, "}");
  }
};

/// `{}`: the frame's bytes as they are. `{:?}`: `Frame{size=9, bytes="data: x\n\n"}`.
template <>
struct formatter<ssepp::Frame> : ssepp::detail::WireOrDebug {
  template <class FormatContext>
  auto format(const ssepp::Frame& f, FormatContext& ctx) const -> decltype(ctx.out()) {
    namespace sd = ssepp::detail;
    if (!debug) return sd::copy_out(ctx.out(), f.view());
    auto out = fmt::format_to(ctx.out(), "Frame{{size={}, bytes=", f.size());
    return sd::quoted_field(out, "", f.view(), "}");
  }
};

template <>
struct formatter<ssepp::errc> : ssepp::detail::EnumFormatter<ssepp::errc> {};
template <>
struct formatter<ssepp::Overflow> : ssepp::detail::EnumFormatter<ssepp::Overflow> {};
template <>
struct formatter<ssepp::Replay> : ssepp::detail::EnumFormatter<ssepp::Replay> {};
template <>
struct formatter<ssepp::DisconnectReason>
    : ssepp::detail::EnumFormatter<ssepp::DisconnectReason> {};
template <>
struct formatter<ssepp::ReadyState> : ssepp::detail::EnumFormatter<ssepp::ReadyState> {};
template <>
struct formatter<ssepp::Verdict> : ssepp::detail::EnumFormatter<ssepp::Verdict> {};
template <>
struct formatter<ssepp::Utf8> : ssepp::detail::EnumFormatter<ssepp::Utf8> {};
template <>
struct formatter<ssepp::Parsed> : ssepp::detail::EnumFormatter<ssepp::Parsed> {};

}  // namespace fmt
