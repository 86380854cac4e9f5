// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
#pragma once

#include <ssepp/config.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <system_error>

SSEPP_BEGIN_NAMESPACE

/// Every error ssepp reports. Untrusted input (streams, requests) never throws: it yields one of
/// these codes (in a `Result`, see <ssepp/result.hpp>). Programmer errors throw `ssepp::Error`
/// carrying one, and each such call has a `try_` twin returning a `Result` instead.
enum class errc {
  // Encoder: an event that cannot be sent unaltered.
  invalid_event_type = 1,  ///< event type contains CR or LF (would forge a field)
  invalid_event_id,        ///< event id contains CR, LF or NUL (would forge a field / be ignored)
  invalid_retry,           ///< retry is negative
  // Parser: untrusted stream limits. The parser stays in error until reset.
  line_too_long,    ///< a line exceeded `ParserLimits::max_line`
  event_too_large,  ///< an event's data exceeded `ParserLimits::max_event`
  // Broadcaster.
  unknown_client,  ///< no connected client has that id
  join_refused,    ///< the host's authorisation predicate refused a channel join
  invalid_name,    ///< a user, pool or channel name is empty or too long
  // Client.
  bad_status,        ///< the response status is not 200 (or 204, which closes for good)
  bad_content_type,  ///< the response is not text/event-stream
  closed,            ///< the client, mailbox or bus was closed for good
  // HTTP helpers.
  invalid_last_event_id,  ///< a Last-Event-ID that contains NUL, CR or LF, or is too long
  // Multi-node bus.
  bus_unavailable,  ///< the bus (Redis) cannot be reached; the send was not made
  invalid_message,  ///< a bus message is malformed
  // Compression (optional part, compress.hpp).
  unsupported_encoding,     ///< a Content-Encoding other than gzip, deflate or identity
  invalid_compressed_data,  ///< corrupt gzip/deflate data, a bad checksum, or bytes after the end
  decompression_limit,      ///< output exceeds the decompressor's bound per input byte (a bomb)
  compression_failed,       ///< zlib failed (out of memory); the stream cannot go on
  // Client (request policy).
  invalid_url,         ///< not an absolute http:// or https:// URL with a valid host and port
  bad_redirect,        ///< a redirect's Location is not a usable http(s) URL
  too_many_redirects,  ///< more redirects in a row than `ClientOptions::max_redirects`
  insecure_redirect,   ///< a redirect from https to http, refused unless allowed
  retries_exhausted,   ///< `ClientOptions::max_retries` consecutive failed attempts
  // Broadcaster (connect).
  sink_failed,  ///< the sink refused a frame while connecting (preamble, retry hint or replay)
};

/// The enumerator's name ("line_too_long"), or "" for a value that is none. For logs and test
/// output; `make_error_code(e).message()` is the sentence for people.
constexpr std::string_view to_string(errc e) noexcept {
  switch (e) {
    case errc::invalid_event_type: return "invalid_event_type";
    case errc::invalid_event_id: return "invalid_event_id";
    case errc::invalid_retry: return "invalid_retry";
    case errc::line_too_long: return "line_too_long";
    case errc::event_too_large: return "event_too_large";
    case errc::unknown_client: return "unknown_client";
    case errc::join_refused: return "join_refused";
    case errc::invalid_name: return "invalid_name";
    case errc::bad_status: return "bad_status";
    case errc::bad_content_type: return "bad_content_type";
    case errc::closed: return "closed";
    case errc::invalid_last_event_id: return "invalid_last_event_id";
    case errc::bus_unavailable: return "bus_unavailable";
    case errc::invalid_message: return "invalid_message";
    case errc::unsupported_encoding: return "unsupported_encoding";
    case errc::invalid_compressed_data: return "invalid_compressed_data";
    case errc::decompression_limit: return "decompression_limit";
    case errc::compression_failed: return "compression_failed";
    case errc::invalid_url: return "invalid_url";
    case errc::bad_redirect: return "bad_redirect";
    case errc::too_many_redirects: return "too_many_redirects";
    case errc::insecure_redirect: return "insecure_redirect";
    case errc::retries_exhausted: return "retries_exhausted";
    case errc::sink_failed: return "sink_failed";
  }
  return {};
}

namespace detail {
class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ssepp"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::invalid_event_type: return "event type contains a line break (CR or LF)";
      case errc::invalid_event_id: return "event id contains a line break (CR or LF) or NUL";
      case errc::invalid_retry: return "retry is negative";
      case errc::line_too_long: return "line exceeds the parser's maximum line length";
      case errc::event_too_large: return "event data exceeds the parser's maximum event size";
      case errc::unknown_client: return "no connected client has this id";
      case errc::join_refused: return "channel join refused by the authorisation policy";
      case errc::invalid_name: return "user, pool or channel name is empty or too long";
      case errc::sink_failed: return "the sink refused a frame while the client was connecting";
      case errc::bad_status: return "response status is not 200 OK";
      case errc::bad_content_type: return "response content type is not text/event-stream";
      case errc::closed: return "closed";
      case errc::invalid_last_event_id: return "Last-Event-ID contains CR, LF or NUL, or is too long";
      case errc::bus_unavailable: return "the message bus is unavailable";
      case errc::invalid_message: return "malformed bus message";
      case errc::unsupported_encoding: return "unsupported Content-Encoding";
      case errc::invalid_compressed_data: return "corrupt compressed data";
      case errc::decompression_limit:
        return "decompressed output exceeds the bound per input byte (decompression bomb)";
      case errc::compression_failed: return "zlib failed (out of memory)";
      case errc::invalid_url: return "not an absolute http:// or https:// URL";
      case errc::bad_redirect: return "redirect Location is not a usable http(s) URL";
      case errc::too_many_redirects: return "too many redirects";
      case errc::insecure_redirect: return "redirect from https to http refused";
      case errc::retries_exhausted: return "gave up after the maximum number of retries";
    }
    return "unknown ssepp error";
  }
};
}  // namespace detail

/// The `std::error_category` of `ssepp::errc` (name "ssepp").
inline const std::error_category& error_category() noexcept {
  static const detail::error_category_impl category;
  return category;
}

/// Makes `std::error_code ec = ssepp::errc::...;` work.
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// Thrown by the throwing forms of calls whose misuse is a programmer error (e.g. `encode`).
class Error : public std::system_error {
 public:
  explicit Error(std::error_code ec) : std::system_error(ec) {}
  Error(std::error_code ec, const std::string& what) : std::system_error(ec, what) {}
};

namespace detail {
/// Throws `Error(ec)`, or prints and aborts when built without exceptions.
[[noreturn]] inline void throw_error(std::error_code ec) {
#if SSEPP_HAS_EXCEPTIONS
  throw Error(ec);
#else
  std::fprintf(stderr, "ssepp: %s\n", ec.message().c_str());
  std::abort();
#endif
}
}  // namespace detail

SSEPP_END_NAMESPACE

namespace std {
template <>
struct is_error_code_enum<ssepp::errc> : true_type {};
}  // namespace std
