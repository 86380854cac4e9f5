// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// Sans-IO EventSource client: the browser's reconnection behaviour without a browser and without
// owning a socket. The host does the I/O and asks the client what to send, whether a response is
// a stream, and how long to wait before reconnecting.
//
//   ssepp::Client client;
//   for (;;) {
//     send_request(url, client.request_headers());
//     if (client.on_response(status, content_type, now()) != ssepp::Verdict::open) break;
//     while (read(chunk)) client.feed(chunk, [](const ssepp::EventView& ev) { ... });
//     auto delay = client.on_disconnect(now());
//     if (!delay) break;
//     sleep(*delay);
//   }
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/error.hpp>
#include <ssepp/parser.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE

/// The EventSource `readyState`.
enum class ReadyState {
  connecting,  ///< before a response, and between a disconnect and the next response
  open,        ///< a 200 text/event-stream response is being read
  closed,      ///< for good: 204, a failed response, or close(); no reconnection
};

/// What `Client::on_response` made of a response.
enum class Verdict {
  open,    ///< a stream: feed its body
  closed,  ///< 204 No Content: the server asks the client to stop for good
  failed,  ///< any other status or content type: fail, and do not reconnect (as browsers do)
};

/// Reconnection policy and parser settings.
struct ClientOptions {
  /// Reconnection time until the stream sends a `retry` field (EventSource's default is
  /// implementation-defined; 3 s is common).
  std::chrono::milliseconds retry = std::chrono::seconds(3);
  /// Cap on the backed-off delay.
  std::chrono::milliseconds max_delay = std::chrono::seconds(60);
  /// A connection that stays open this long counts as healthy: the backoff starts over.
  std::chrono::milliseconds healthy_after = std::chrono::seconds(10);
  /// Randomise backed-off delays (between the reconnection time and the backed-off ceiling) so
  /// a fleet of clients does not reconnect in lockstep.
  bool jitter = true;
  /// Seed for the jitter; a random device seeds it when unset.
  std::optional<std::uint64_t> seed;
  /// Last-Event-ID to resume from (e.g. persisted by an earlier run).
  std::string last_event_id;
  /// Limits and UTF-8 handling of the stream parser.
  ParserOptions parser;
};

/// A header name and value.
using Header = std::pair<std::string, std::string>;

/// EventSource reconnection semantics over ssepp::Parser, with no I/O.
///
/// Delays: after a connection that was healthy (open at least `healthy_after`), the first
/// reconnection waits exactly the reconnection time — the stream's `retry` if it sent one, else
/// `options.retry` — as a browser does. Each further consecutive failure (refused connection,
/// error response, or a stream that dropped before it was healthy) doubles the ceiling, capped
/// at `max_delay`; with jitter the wait is drawn uniformly between the reconnection time and that
/// ceiling ("full jitter" above the server's floor, so no client comes back sooner than asked).
/// Not thread-safe: one client per stream, driven by one thread (or strand).
class Client {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Client(ClientOptions options = {})
      : options_(std::move(options)),
        parser_(options_.parser),
        rng_(options_.seed ? *options_.seed : std::random_device{}()) {
    if (!options_.last_event_id.empty()) parser_.set_last_event_id(options_.last_event_id);
  }

  /// Headers for the next request: `Accept: text/event-stream`, `Cache-Control: no-cache`,
  /// `Last-Event-ID` when one is known, then `extra` (the caller's own, e.g. Authorization).
  std::vector<Header> request_headers(const std::vector<Header>& extra = {}) const {
    std::vector<Header> h;
    h.reserve(3 + extra.size());
    h.emplace_back("Accept", "text/event-stream");
    h.emplace_back("Cache-Control", "no-cache");
    if (!parser_.last_event_id().empty())
      h.emplace_back("Last-Event-ID", std::string(parser_.last_event_id()));
    h.insert(h.end(), extra.begin(), extra.end());
    return h;
  }

  /// Judges a response (after the host followed any redirects): 200 with a `text/event-stream`
  /// content type opens the stream; 204 closes for good; anything else fails for good with
  /// `error()` set to errc::bad_status or errc::bad_content_type. `now` starts the health clock.
  Verdict on_response(int status, std::string_view content_type, Clock::time_point now) {
    if (state_ == ReadyState::closed) return Verdict::failed;
    if (status == 204) {
      state_ = ReadyState::closed;
      return Verdict::closed;
    }
    if (status != 200) return fail(errc::bad_status);
    if (!is_event_stream(content_type)) return fail(errc::bad_content_type);
    state_ = ReadyState::open;
    opened_at_ = now;
    parser_.reset();
    return Verdict::open;
  }

  /// Parses body bytes of the open stream, calling handler as `Parser::feed` does. Returns a
  /// parser error (a limit exceeded: the host should drop the connection) or errc::closed when
  /// the stream is not open.
  template <class Handler>
  std::error_code feed(std::string_view bytes, Handler&& handler) {
    if (state_ != ReadyState::open) return errc::closed;
    return parser_.feed(bytes, std::forward<Handler>(handler)).error();
  }

  /// The connection ended (or could not be made). Returns how long to wait before the next
  /// request, or nothing when the client is closed for good. An unfinished event is dropped.
  std::optional<std::chrono::milliseconds> on_disconnect(Clock::time_point now) {
    if (state_ == ReadyState::closed) return std::nullopt;
    if (state_ == ReadyState::open && now - opened_at_ >= options_.healthy_after) failures_ = 0;
    state_ = ReadyState::connecting;
    (void)parser_.finish();
    std::chrono::milliseconds delay = next_delay();
    if (failures_ < 62) ++failures_;
    return delay;
  }

  /// Closes for good (EventSource.close()): no further reconnection.
  void close() noexcept { state_ = ReadyState::closed; }

  ReadyState state() const noexcept { return state_; }
  /// Why the client failed (errc::bad_status, errc::bad_content_type), or success.
  std::error_code error() const noexcept { return error_; }
  /// The Last-Event-ID the next request sends ("" when none).
  std::string_view last_event_id() const noexcept { return parser_.last_event_id(); }
  /// The reconnection time: the stream's last valid `retry`, else `options.retry`.
  std::chrono::milliseconds reconnection_time() const noexcept {
    return parser_.retry().value_or(options_.retry);
  }
  /// Consecutive failed attempts since the last healthy connection.
  unsigned failures() const noexcept { return failures_; }
  /// The ceiling of the next delay: reconnection time doubled per failure, capped.
  std::chrono::milliseconds delay_ceiling() const noexcept {
    auto base = reconnection_time();
    auto cap = std::max(options_.max_delay, base);
    auto d = base;
    for (unsigned i = 0; i < failures_ && d < cap; ++i) d *= 2;
    return std::min(d, cap);
  }
  /// The underlying parser (limits, last event id, error message).
  const Parser& parser() const noexcept { return parser_; }

  /// True for a `text/event-stream` media type, parameters allowed, case-insensitive.
  static bool is_event_stream(std::string_view content_type) noexcept {
    auto semi = content_type.find(';');
    std::string_view type = content_type.substr(0, semi);
    while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
    while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
    constexpr std::string_view want = "text/event-stream";
    if (type.size() != want.size()) return false;
    for (std::size_t i = 0; i < want.size(); ++i) {
      char c = type[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != want[i]) return false;
    }
    return true;
  }

 private:
  Verdict fail(errc e) {
    state_ = ReadyState::closed;
    error_ = e;
    return Verdict::failed;
  }

  std::chrono::milliseconds next_delay() {
    auto base = reconnection_time();
    auto ceiling = delay_ceiling();
    if (failures_ == 0 || !options_.jitter || ceiling <= base) return ceiling;
    std::uniform_int_distribution<long long> pick(base.count(), ceiling.count());
    return std::chrono::milliseconds(pick(rng_));
  }

  ClientOptions options_;
  Parser parser_;
  std::mt19937_64 rng_;
  ReadyState state_ = ReadyState::connecting;
  std::error_code error_;
  Clock::time_point opened_at_{};
  unsigned failures_ = 0;
};

SSEPP_END_NAMESPACE
