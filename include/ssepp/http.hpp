// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// What an SSE endpoint needs from HTTP, with no HTTP stack inside: the response headers, the
// first bytes of the body (preamble), the Last-Event-ID of a request and query parameters (CORS
// for cross-origin EventSource is in <ssepp/cors.hpp>). Everything works on string views the
// host's stack hands over.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/detail/ascii.hpp>
#include <ssepp/encoder.hpp>
#include <ssepp/error.hpp>
#include <ssepp/result.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE

/// One response header: views into static strings, the caller's input or a `Cors` policy
/// (<ssepp/cors.hpp>).
struct HeaderField {
  std::string_view name;
  std::string_view value;
};

/// A short list of headers (at most `capacity`), returned by value without allocating.
/// Iterate it and hand each field to the stack: `for (auto& h : list) res.set(h.name, h.value);`
class HeaderFields {
 public:
  static constexpr std::size_t capacity = 8;

  constexpr const HeaderField* begin() const noexcept { return fields_.data(); }
  constexpr const HeaderField* end() const noexcept { return fields_.data() + size_; }
  constexpr std::size_t size() const noexcept { return size_; }
  constexpr bool empty() const noexcept { return size_ == 0; }
  constexpr const HeaderField& operator[](std::size_t i) const noexcept { return fields_[i]; }

  /// The value of header `name` (ASCII case-insensitive), or nullopt when absent.
  constexpr std::optional<std::string_view> find(std::string_view name) const noexcept {
    for (std::size_t i = 0; i < size_; ++i)
      if (detail::ascii_iequals(fields_[i].name, name)) return fields_[i].value;
    return std::nullopt;
  }

  /// Appends a field (ignored when full: the lists built here never exceed `capacity`).
  constexpr void push_back(const HeaderField& f) noexcept {
    if (size_ < capacity) fields_[size_++] = f;
  }

 private:
  std::array<HeaderField, capacity> fields_{};
  std::size_t size_ = 0;
};

/// The Content-Type of an event stream, with its (only allowed) charset.
inline constexpr std::string_view event_stream_content_type = "text/event-stream; charset=utf-8";

/// An HTTP version as `major * 10 + minor` (Boost.Beast's convention): 10, 11, 20, 30.
/// Parses "HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/2.0" (cpp-httplib's `req.version`);
/// anything else gives 11.
inline constexpr unsigned http_version(std::string_view text) noexcept {
  if (text.size() < 6 || text.substr(0, 5) != "HTTP/") return 11;
  char major = text[5];
  if (major < '0' || major > '9') return 11;
  unsigned v = static_cast<unsigned>(major - '0') * 10;
  if (text.size() >= 8 && text[6] == '.' && text[7] >= '0' && text[7] <= '9')
    v += static_cast<unsigned>(text[7] - '0');
  return v;
}

/// The headers of a streaming SSE response (status 200):
/// `Content-Type: text/event-stream; charset=utf-8`, `Cache-Control: no-cache` (no proxy or
/// browser cache may keep a live stream), `X-Accel-Buffering: no` (nginx must pass bytes through
/// as they come), and `Connection: keep-alive` for HTTP/1.1 only (HTTP/1.0 has no persistent
/// stream to announce and HTTP/2 forbids the header). `version` is `major * 10 + minor`.
inline constexpr HeaderFields response_headers(unsigned version = 11) noexcept {
  HeaderFields h;
  h.push_back({"Content-Type", event_stream_content_type});
  h.push_back({"Cache-Control", "no-cache"});
  h.push_back({"X-Accel-Buffering", "no"});
  if (version == 11) h.push_back({"Connection", "keep-alive"});
  return h;
}

/// What the first bytes of a stream carry.
struct PreambleOptions {
  /// A `retry:` hint: how long the client waits before reconnecting.
  std::optional<std::chrono::milliseconds> retry;
  /// Bytes of comment padding (e.g. 2048 for clients and proxies that buffer the first 2 KiB
  /// before handing anything on). 0 for none.
  std::size_t padding = 0;
  /// A comment line sent first (e.g. "ssepp"); empty for none.
  std::string_view comment;
};

/// Appends the preamble to `buf` (any contiguous char buffer, see `encode_to`): the comment,
/// the padding comment and the retry hint, each as its own frame; a bare keep-alive comment
/// (":\n\n") when none is asked for, so that the body starts at once and every proxy and stack
/// flushes the response headers. Appends nothing and returns `errc::invalid_retry` when `retry`
/// is negative.
template <class Buffer>
Result<void> try_preamble_to(Buffer& buf, const PreambleOptions& opts = {}) {
  if (opts.retry && opts.retry->count() < 0) return errc::invalid_retry;
  bool any = false;
  if (!opts.comment.empty()) {
    encode_comment_to(buf, opts.comment);
    any = true;
  }
  if (opts.padding > 0) {
    char* out = detail::grow(buf, opts.padding + 3);
    *out++ = ':';
    for (std::size_t i = 0; i < opts.padding; ++i) *out++ = ' ';
    *out++ = '\n';
    *out = '\n';
    any = true;
  }
  if (opts.retry) {
    detail::write_retry(detail::grow(buf, detail::retry_size(*opts.retry)), *opts.retry);
    any = true;
  }
  if (!any) encode_comment_to(buf, {});
  return {};
}

/// As `try_preamble_to`, but throws `ssepp::Error` when `retry` is negative.
template <class Buffer>
void preamble_to(Buffer& buf, const PreambleOptions& opts = {}) {
  try_preamble_to(buf, opts).value();
}

/// The preamble as a string (see `try_preamble_to`), or `errc::invalid_retry`.
inline Result<std::string> try_preamble(const PreambleOptions& opts = {}) {
  std::string out;
  if (auto done = try_preamble_to(out, opts); !done) return done.error();
  return out;
}

/// The preamble as a string (see `preamble_to`). Throws `ssepp::Error` when `retry` is negative.
inline std::string preamble(const PreambleOptions& opts = {}) { return try_preamble(opts).value(); }

/// The longest Last-Event-ID accepted by default. Ids are the host's own (short counters or
/// stream positions); a longer value is noise or an attack.
inline constexpr std::size_t default_max_last_event_id = 1024;

/// Checks a Last-Event-ID value as a client would have stored it: the SSE parser ignores an `id`
/// field containing NUL and no line can contain CR or LF, so such a value, or one longer than
/// `max_size`, fails with `errc::invalid_last_event_id`. Succeeds (tests true) otherwise.
inline Result<void> check_last_event_id(std::string_view id,
                                        std::size_t max_size = default_max_last_event_id) noexcept {
  if (id.size() > max_size) return errc::invalid_last_event_id;
  if (id.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
    return errc::invalid_last_event_id;
  return {};
}

namespace detail {

inline constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// application/x-www-form-urlencoded decoding: `+` is a space, `%XY` a byte; a `%` not followed
/// by two hex digits stays as it is (as URLSearchParams does).
inline std::string form_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
               hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

/// Calls f(key, value) (both still encoded) for each `&`-separated pair of `query`;
/// stops early when f returns false.
template <class F>
void for_each_query_pair(std::string_view query, F&& f) {
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    std::size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (!f(key, value)) return;
  }
}

inline bool query_key_is(std::string_view encoded_key, std::string_view name) {
  if (encoded_key.find_first_of("%+") == std::string_view::npos) return encoded_key == name;
  return form_decode(encoded_key) == name;
}

}  // namespace detail

/// The path of a request target: everything before `?` (and before any `#`).
inline constexpr std::string_view target_path(std::string_view target) noexcept {
  return target.substr(0, target.find_first_of("?#"));
}

/// The query of a request target: everything after the first `?` up to any `#`, or empty.
inline constexpr std::string_view target_query(std::string_view target) noexcept {
  std::size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = target.substr(q + 1);
  return rest.substr(0, rest.find('#'));
}

/// The first value of query parameter `name` in request target `target` ("/events?a=1&b=2"),
/// form-decoded (`+` and `%XY`). nullopt when absent; "" for `?name` or `?name=`.
inline std::optional<std::string> query_parameter(std::string_view target, std::string_view name) {
  std::optional<std::string> found;
  detail::for_each_query_pair(target_query(target), [&](std::string_view k, std::string_view v) {
    if (!detail::query_key_is(k, name)) return true;
    found = detail::form_decode(v);
    return false;
  });
  return found;
}

/// What `query_parameters` found: the values, and whether there were more than it returns.
struct QueryValues {
  std::vector<std::string> values;  ///< form-decoded, in request order
  /// More values were present than the limit allowed: a host can refuse the request (400)
  /// instead of silently ignoring the rest.
  bool truncated = false;
};

/// Every value of query parameter `name`, in order (`?channel=a&channel=b`), form-decoded; at
/// most `max_count` of them, with `truncated` telling whether more were present.
inline QueryValues query_parameters(std::string_view target, std::string_view name,
                                    std::size_t max_count = 64) {
  QueryValues found;
  detail::for_each_query_pair(target_query(target), [&](std::string_view k, std::string_view v) {
    if (!detail::query_key_is(k, name)) return true;
    if (found.values.size() == max_count) {
      found.truncated = true;
      return false;
    }
    found.values.push_back(detail::form_decode(v));
    return true;
  });
  return found;
}

/// The Last-Event-ID a reconnecting client asks to resume from.
///
/// `header` is the value of the request's `Last-Event-ID` header (nullopt when absent), which a
/// browser's EventSource sends on reconnection. When it is absent or empty, the `lastEventId`
/// query parameter of `target` is used, for clients that cannot set headers (a page that opens a
/// new EventSource after a reload passes the id it saw last). An empty value means none, as an
/// EventSource never sends an empty one.
///
/// Holds nullopt when the request names no id. Fails with `errc::invalid_last_event_id` when the
/// value fails `check_last_event_id` (an invalid header is refused, not replaced by the query
/// parameter): answer such a request with 400.
inline Result<std::optional<std::string>> last_event_id(
    std::optional<std::string_view> header, std::string_view target,
    std::size_t max_size = default_max_last_event_id) {
  std::optional<std::string> id;
  if (header && !header->empty()) {
    id.emplace(*header);
  } else {
    id = query_parameter(target, "lastEventId");
    if (id && id->empty()) id.reset();
  }
  if (id) {
    if (auto valid = check_last_event_id(*id, max_size); !valid) return valid.error();
  }
  return id;
}

SSEPP_END_NAMESPACE
