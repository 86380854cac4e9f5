// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// Sans-IO SSE client: a browser's EventSource — and what API streams need beyond it (any method
// and body, retry policy, Retry-After, redirects, one-shot streams) — without a browser and
// without a socket. The host (or ssepp's transport) does the I/O; the client says which request
// to make, judges each response, parses the stream and says what to do next. Time is passed in.
//
//   ssepp::ClientOptions o;
//   o.url = "https://api.example.com/v1/chat";  o.method = "POST";  o.body = json;
//   o.policy = ssepp::RetryPolicy::api;         o.reconnect_on_end = false;  // one-shot
//   ssepp::Client client(o);
//   for (;;) {
//     auto req = client.request({{"Authorization", "Bearer " + key}});  // method, URL, body...
//     if (!req) break;                                                  // closed, or a bad URL
//     auto head = send(*req);                                           // your HTTP stack
//     ssepp::Action next;
//     if (!head) { next = client.on_network_error(now()); }
//     else {
//       client.on_response({head->status, head->content_type, head->location,
//                           head->retry_after, head->date}, now());
//       bool clean = read_body([&](std::string_view chunk) {                // open: events;
//         return bool(client.feed(chunk, on_event));                       // else the error body
//       });
//       next = clean ? client.on_end(now()) : client.on_network_error(now());
//     }
//     if (next.next == ssepp::Next::stop) break;                         // next.error: why
//     sleep(next.delay);                                                  // zero for a redirect
//   }
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/detail/http_date.hpp>
#include <ssepp/detail/uri.hpp>
#include <ssepp/error.hpp>
#include <ssepp/parser.hpp>
#include <ssepp/result.hpp>

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
  connecting,  ///< before a stream, between attempts, during redirects and retried responses
  open,        ///< a 200 text/event-stream response is being read
  closed,      ///< for good: 204, a failed response, an end that does not reconnect, close()
};

/// What `Client::on_response` made of a response head.
enum class Verdict {
  open,      ///< a stream: feed its body
  closed,    ///< 204 No Content: the server asks the client to stop for good
  failed,    ///< fail for good (`error()` says why); the body may be fed to keep it for the host
  redirect,  ///< a redirect to follow: `request()` now describes the next request
  retry,     ///< a retryable error (api policy): the body may be fed; `on_end` says when to retry
};

/// Which failures are retried.
enum class RetryPolicy {
  /// WHATWG EventSource: network errors and dropped streams reconnect; any status but 200 (after
  /// redirects) and 204 fails for good, as does a wrong content type; 204 stops for good.
  browser,
  /// HTTP APIs: also retries 408, 429 and 5xx with backoff and jitter, waiting at least the
  /// response's `Retry-After`; any other 4xx (and other non-200 statuses) fails for good.
  api,
};

/// What the transport does after a connection attempt (`Action::next`).
enum class Next {
  reconnect,  ///< wait `Action::delay`, then make `Client::request()` again
  redirect,   ///< make `Client::request()` now: the redirect's URL, method and body
  stop,       ///< stop for good; `Action::error` says why (zero: a normal end)
};

constexpr std::string_view to_string(ReadyState s) noexcept {
  switch (s) {
    case ReadyState::connecting: return "connecting";
    case ReadyState::open: return "open";
    case ReadyState::closed: return "closed";
  }
  return "unknown";
}
constexpr std::string_view to_string(Verdict v) noexcept {
  switch (v) {
    case Verdict::open: return "open";
    case Verdict::closed: return "closed";
    case Verdict::failed: return "failed";
    case Verdict::redirect: return "redirect";
    case Verdict::retry: return "retry";
  }
  return "unknown";
}
constexpr std::string_view to_string(RetryPolicy p) noexcept {
  switch (p) {
    case RetryPolicy::browser: return "browser";
    case RetryPolicy::api: return "api";
  }
  return "unknown";
}
constexpr std::string_view to_string(Next n) noexcept {
  switch (n) {
    case Next::reconnect: return "reconnect";
    case Next::redirect: return "redirect";
    case Next::stop: return "stop";
  }
  return "unknown";
}

/// A header name and value.
using Header = std::pair<std::string, std::string>;

/// An absolute http:// or https:// URL, split for a transport: where to connect (`host`,
/// `port`), what to ask for (`target()`), what to send as `Host` (`host_header()`).
struct Url {
  std::string scheme;  ///< "http" or "https" (lower case)
  std::string host;    ///< lower case; an IPv6 literal without its brackets
  std::uint16_t port = 0;
  std::string path;                     ///< never empty ("/" at least); unsafe bytes %-encoded
  std::optional<std::string> query;     ///< without the '?'
  std::optional<std::string> fragment;  ///< without the '#'; never sent

  /// Parses an absolute http(s) URL: errc::invalid_url for another scheme, a relative reference,
  /// user info, an empty or invalid host, or a port outside 1..65535. Control characters, spaces
  /// and non-ASCII bytes in the path and query are %-encoded (so none reaches a request line).
  static Result<Url> parse(std::string_view text) {
    return from_parts(detail::parse_uri_reference(text));
  }

  bool https() const noexcept { return scheme == "https"; }
  std::uint16_t default_port() const noexcept { return https() ? 443 : 80; }
  /// The request target: path and query.
  std::string target() const { return query ? path + "?" + *query : path; }
  /// The `Host` header: host (bracketed when IPv6) and the port unless it is the default.
  std::string host_header() const {
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    if (port != default_port()) h += ":" + std::to_string(port);
    return h;
  }
  /// The whole URL, normalised.
  std::string str() const {
    std::string s = scheme + "://" + host_header() + target();
    if (fragment) s += "#" + *fragment;
    return s;
  }
  /// Same scheme, host and port.
  bool same_origin(const Url& o) const noexcept {
    return scheme == o.scheme && host == o.host && port == o.port;
  }

 private:
  static bool host_char(char c) noexcept {  // RFC 3986 reg-name: unreserved, pct, sub-delims
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("-._~%!$&'()*+,;=").find(c) != std::string_view::npos;
  }
  static std::string encode_unsafe(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      if (c <= 0x20 || c >= 0x7F || ch == '"' || ch == '<' || ch == '>' || ch == '`' ||
          ch == '{' || ch == '}') {
        out.push_back('%');
        out.push_back(hex[c >> 4]);
        out.push_back(hex[c & 15]);
      } else {
        out.push_back(ch);
      }
    }
    return out;
  }
  static Result<Url> from_parts(const detail::UriRef& r) {
    Url u;
    if (!r.has_scheme || !r.has_authority) return errc::invalid_url;
    if (detail::ascii_iequals(r.scheme, "http")) u.scheme = "http";
    else if (detail::ascii_iequals(r.scheme, "https")) u.scheme = "https";
    else return errc::invalid_url;
    std::string_view auth = r.authority;
    if (auth.find('@') != std::string_view::npos) return errc::invalid_url;
    std::string_view h, pt;
    if (!auth.empty() && auth.front() == '[') {
      const std::size_t close = auth.find(']');
      if (close == std::string_view::npos) return errc::invalid_url;
      h = auth.substr(1, close - 1);
      std::string_view rest = auth.substr(close + 1);
      if (!rest.empty() && rest.front() != ':') return errc::invalid_url;
      if (!rest.empty()) pt = rest.substr(1);
      if (h.empty()) return errc::invalid_url;
      for (char c : h)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
              c == ':' || c == '.'))
          return errc::invalid_url;
    } else {
      const std::size_t colon = auth.rfind(':');
      h = auth.substr(0, colon);
      if (colon != std::string_view::npos) pt = auth.substr(colon + 1);
      if (h.empty()) return errc::invalid_url;
      for (char c : h)
        if (!host_char(c) || c == ':') return errc::invalid_url;
    }
    u.host.reserve(h.size());
    for (char c : h) u.host.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
    if (pt.empty()) {
      u.port = u.default_port();
    } else {
      unsigned long p = 0;
      if (pt.size() > 5) return errc::invalid_url;
      for (char c : pt) {
        if (c < '0' || c > '9') return errc::invalid_url;
        p = p * 10 + static_cast<unsigned long>(c - '0');
      }
      if (p == 0 || p > 65535) return errc::invalid_url;
      u.port = static_cast<std::uint16_t>(p);
    }
    u.path = r.path.empty() ? "/" : encode_unsafe(r.path);
    if (r.has_query) u.query = encode_unsafe(r.query);
    if (r.has_fragment) u.fragment = r.fragment;
    return u;
  }
};

/// The request, the retry and redirect policy, and the parser settings.
struct ClientOptions {
  // -- The request. The transport gets it from `Client::request()`; a host that makes requests
  // -- itself may leave `url` empty and use `request_headers()`.
  /// Absolute http:// or https:// URL (relative redirects resolve against it).
  std::string url;
  /// Request method; a body goes with any method but GET and HEAD, or when `body` is non-empty.
  std::string method = "GET";
  /// Request body (e.g. a JSON completion request).
  std::string body;
  /// Headers sent with every request, after the client's own (e.g. Content-Type of the body).
  std::vector<Header> headers;

  // -- Reconnection.
  /// Which failures are retried: `browser` (EventSource) or `api` (also 408, 429, 5xx).
  RetryPolicy policy = RetryPolicy::browser;
  /// Whether a stream the server ends cleanly is requested again: true for an EventSource
  /// feed; false for a one-shot request (a POST completion), where it would start over.
  bool reconnect_on_end = true;
  /// Consecutive failed attempts after which the client gives up with errc::retries_exhausted
  /// (0: never, as EventSource).
  unsigned max_retries = 0;
  /// Reconnection time until the stream sends a `retry` field (EventSource's default is
  /// implementation-defined; 3 s is common).
  std::chrono::milliseconds retry = std::chrono::seconds(3);
  /// Cap on the backed-off delay (never below the stream's `retry` or a `Retry-After`).
  std::chrono::milliseconds max_delay = std::chrono::seconds(60);
  /// A connection that stays open this long counts as healthy: the backoff starts over.
  std::chrono::milliseconds healthy_after = std::chrono::seconds(10);
  /// Randomise backed-off delays (between the reconnection time and the backed-off ceiling) so
  /// a fleet of clients does not reconnect in lockstep.
  bool jitter = true;
  /// Seed for the jitter; a random device seeds it when unset.
  std::optional<std::uint64_t> seed;

  // -- Redirects.
  /// Redirects followed in a row before failing with errc::too_many_redirects (fetch: 20).
  unsigned max_redirects = 20;
  /// Follow a redirect from https to http (refused by default: errc::insecure_redirect).
  bool allow_insecure_redirect = false;

  /// Bytes of a non-stream response's body kept for `error_body()` (APIs explain errors there).
  std::size_t max_error_body = std::size_t{64} * 1024;
  /// Last-Event-ID to resume from (e.g. persisted by an earlier run).
  std::string last_event_id;
  /// Limits and UTF-8 handling of the stream parser.
  ParserOptions parser;
};

/// The request a transport makes next (`Client::request()`).
struct Request {
  std::string method;
  Url url;
  /// Accept, Cache-Control, Last-Event-ID (once known), `ClientOptions::headers`, the caller's.
  std::vector<Header> headers;
  /// The body; views the client's options (valid while the client lives and is not moved).
  /// Empty when none.
  std::string_view body;
  /// Whether to send a body (with its Content-Length, possibly 0). False after a redirect that
  /// turned the request into a GET.
  bool has_body = false;
};

/// A response head as the transport received it (views valid during `on_response` only).
struct ResponseHead {
  int status = 0;
  std::string_view content_type;
  std::string_view location;     ///< for 3xx
  std::string_view retry_after;  ///< for 408, 429, 5xx under the api policy
  /// The response's `Date`: the reference for a `Retry-After` HTTP-date (so a skewed local clock
  /// does not matter). When absent or invalid, `wall_now` is used instead.
  std::string_view date;
  /// The host's wall clock when the head arrived (only needed for an HTTP-date Retry-After
  /// without a `Date` header; a `Retry-After` date is ignored when neither is known).
  std::optional<std::chrono::system_clock::time_point> wall_now;
};

/// What to do after an attempt: `Client::on_end` and `Client::on_network_error` return it.
struct Action {
  Next next = Next::stop;
  /// For `reconnect`: how long to wait first. Zero otherwise.
  std::chrono::milliseconds delay{0};
  /// For `stop`: why (the client's `error()`); zero for a normal stop (204, an end that does not
  /// reconnect, close()).
  std::error_code error;
};

/// EventSource semantics, and what API streams need, over ssepp::Parser, with no I/O.
///
/// A transport drives one small state machine: `request()` → make it → `on_response(head)` →
/// `feed(body bytes)` → `on_end()` (the response ended cleanly) or `on_network_error()` (no
/// response, or the connection dropped) → an `Action`: reconnect after a delay, follow a
/// redirect now, or stop for good.
///
/// Delays: after a connection that was healthy (open at least `healthy_after`), the first
/// reconnection waits exactly the reconnection time — the stream's `retry` if it sent one, else
/// `options.retry` — as a browser does. Each further consecutive failure (refused connection,
/// retried error response, or a stream that dropped before it was healthy) doubles the ceiling,
/// capped at `max_delay`; with jitter the wait is drawn uniformly between the reconnection time
/// and that ceiling ("full jitter" above the server's floor, so no client comes back sooner than
/// asked). A `Retry-After` (api policy) is a floor over that draw.
///
/// Redirects (both policies; with a `Location`, else the 3xx is a failed response): 303 turns
/// the request into a GET without body (a HEAD stays HEAD); 301 and 302 turn a POST into a GET
/// without body (as browsers do) and keep any other method; 307 and 308 keep method and body.
/// A relative `Location` resolves against the current URL (RFC 3986). Dropping the body drops
/// its Content-* headers; leaving the original origin drops `Authorization` and `Cookie` headers
/// the client assembles (options' and the caller's). Each reconnection starts over from the
/// original request.
///
/// Not thread-safe: one client per stream, driven by one thread (or strand).
class Client {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Client(ClientOptions options = {})
      : options_(std::move(options)),
        parser_(options_.parser),
        rng_(options_.seed ? *options_.seed : std::random_device{}()),
        method_(options_.method) {
    if (!options_.last_event_id.empty()) parser_.set_last_event_id(options_.last_event_id);
    if (!options_.url.empty()) {
      auto u = Url::parse(options_.url);
      if (u) {
        origin_ = *u;
        url_ = std::move(*u);
      } else {
        stop_with(u.error());
      }
    }
  }

  /// The next request: method, URL (after redirects), headers, body. errc::invalid_url when the
  /// options had no valid URL; the stop error (or errc::closed) once closed for good.
  Result<Request> request(const std::vector<Header>& extra = {}) const {
    if (state_ == ReadyState::closed) return error_ ? error_ : make_error_code(errc::closed);
    if (!url_) return errc::invalid_url;
    Request r;
    r.method = method_;
    r.url = *url_;
    r.headers = request_headers(extra);
    r.has_body = keep_body_ && (!options_.body.empty() || (method_ != "GET" && method_ != "HEAD"));
    if (r.has_body) r.body = options_.body;
    return r;
  }

  /// Headers for the next request: `Accept: text/event-stream`, `Cache-Control: no-cache`,
  /// `Last-Event-ID` when one is known, `options.headers`, then `extra` (the caller's own, e.g.
  /// Authorization) — less what a redirect dropped (see the class comment).
  std::vector<Header> request_headers(const std::vector<Header>& extra = {}) const {
    std::vector<Header> h;
    h.reserve(3 + options_.headers.size() + extra.size());
    h.emplace_back("Accept", "text/event-stream");
    h.emplace_back("Cache-Control", "no-cache");
    if (!parser_.last_event_id().empty())
      h.emplace_back("Last-Event-ID", std::string(parser_.last_event_id()));
    for (const auto* list : {&options_.headers, &extra})
      for (const auto& header : *list)
        if (!dropped(header.first)) h.push_back(header);
    return h;
  }

  /// Judges a response head. 200 with a `text/event-stream` content type opens the stream; 204
  /// closes for good; a 3xx with a `Location` is a redirect (or fails for good with
  /// errc::too_many_redirects, errc::insecure_redirect, errc::bad_redirect); under the api policy
  /// 408, 429 and 5xx are retried; anything else fails for good with `error()` set to
  /// errc::bad_status or errc::bad_content_type. `now` starts the health clock.
  Verdict on_response(const ResponseHead& head, Clock::time_point now) {
    if (state_ == ReadyState::closed) return Verdict::failed;
    status_ = head.status;
    retry_after_.reset();
    error_body_.clear();
    error_body_truncated_ = false;
    if (head.status == 204) {
      stop_with({});
      return Verdict::closed;
    }
    if (is_redirect(head.status) && !head.location.empty()) return redirect(head);
    if (head.status == 200) {
      if (!is_event_stream(head.content_type)) return fail_response(errc::bad_content_type);
      state_ = ReadyState::open;
      phase_ = Phase::stream;
      opened_at_ = now;
      parser_.reset();
      return Verdict::open;
    }
    if (options_.policy == RetryPolicy::api &&
        (head.status == 408 || head.status == 429 || (head.status >= 500 && head.status <= 599))) {
      std::optional<detail::SysTime> ref = detail::parse_http_date(
          head.date, head.wall_now.value_or(detail::SysTime{}));
      if (!ref) ref = head.wall_now;
      retry_after_ = detail::parse_retry_after(head.retry_after, ref);
      state_ = ReadyState::connecting;
      phase_ = Phase::body;
      pending_ = Next::reconnect;
      return Verdict::retry;
    }
    return fail_response(errc::bad_status);
  }

  /// As `on_response(ResponseHead{status, content_type}, now)`, for a host that follows
  /// redirects itself (a 3xx without a Location fails with errc::bad_status).
  Verdict on_response(int status, std::string_view content_type, Clock::time_point now) {
    ResponseHead head;
    head.status = status;
    head.content_type = content_type;
    return on_response(head, now);
  }

  /// Body bytes. Of an open stream: parsed, calling handler as `Parser::feed` does; fails with
  /// the parser's error (a limit exceeded: drop the connection). Of a non-stream response
  /// (failed, retried, redirect): kept for `error_body()` up to `max_error_body` bytes, the rest
  /// discarded. errc::closed when no response is being read (or after close()).
  template <class Handler>
  Result<void> feed(std::string_view bytes, Handler&& handler) {
    if (phase_ == Phase::stream) return parser_.feed(bytes, std::forward<Handler>(handler));
    if (phase_ != Phase::body) return errc::closed;
    const std::size_t room =
        options_.max_error_body - std::min(options_.max_error_body, error_body_.size());
    if (bytes.size() > room) error_body_truncated_ = true;
    error_body_.append(bytes.data(), std::min(room, bytes.size()));
    return {};
  }

  /// The response ended cleanly (a stream the server closed, or the end of a non-stream body,
  /// read or not). Returns what to do next.
  Action on_end(Clock::time_point now) {
    switch (phase_) {
      case Phase::stream:
        end_stream(now);
        if (!options_.reconnect_on_end) {
          stop_with({});
          return stop_action();
        }
        return reconnect(std::nullopt);
      case Phase::body:
        return after_body();
      case Phase::request:
        return reconnect(std::nullopt);  // ended before any response: a failed attempt
      case Phase::done:
        break;
    }
    return stop_action();
  }

  /// The attempt failed at the network level: no connection, no response, a timeout, a dropped
  /// or unparsable stream. Reconnects (with backoff) under both policies, unless closed or
  /// `max_retries` is reached.
  Action on_network_error(Clock::time_point now) {
    switch (phase_) {
      case Phase::stream:
        end_stream(now);
        return reconnect(std::nullopt);
      case Phase::body:
        return after_body();  // the verdict was made on the head
      case Phase::request:
        return reconnect(std::nullopt);
      case Phase::done:
        break;
    }
    return stop_action();
  }

  /// The connection ended (or could not be made), for a host that does not tell a clean end from
  /// a drop: `on_end` for an open stream, else `on_network_error`. Returns the delay before the
  /// next request (zero for a redirect), or the reason there is none (the stop error, or
  /// errc::closed for a normal stop). An unfinished event is dropped.
  Result<std::chrono::milliseconds> on_disconnect(Clock::time_point now) {
    const Action a = phase_ == Phase::stream ? on_end(now) : on_network_error(now);
    if (a.next == Next::stop) return a.error ? a.error : make_error_code(errc::closed);
    return a.delay;
  }

  /// Closes for good (EventSource.close()): no further reconnection. An earlier stop's error
  /// stays.
  void close() noexcept { stop_with(state_ == ReadyState::closed ? error_ : std::error_code()); }

  /// Closes for good with the host's own error (e.g. a TLS verification failure, which would
  /// fail again): `error()` and the next `Action` carry it, unless the client had already
  /// stopped with an error of its own.
  void fail(std::error_code ec) noexcept {
    if (state_ == ReadyState::closed && error_) return;
    stop_with(ec ? ec : make_error_code(errc::closed));
  }

  ReadyState state() const noexcept { return state_; }
  /// Why the client stopped for good (errc::bad_status, errc::bad_content_type, a redirect
  /// error, errc::retries_exhausted, errc::invalid_url, the host's `fail`), or success.
  std::error_code error() const noexcept { return error_; }
  /// The status of the last response (0 before any).
  int status() const noexcept { return status_; }
  /// The body of the last non-stream response, up to `max_error_body` bytes (what an API says
  /// about its error). Kept until the next response.
  std::string_view error_body() const noexcept { return error_body_; }
  /// True when the error body was longer than `max_error_body`.
  bool error_body_truncated() const noexcept { return error_body_truncated_; }
  /// The last retried response's `Retry-After` (a floor on the next delay), when valid.
  std::optional<std::chrono::milliseconds> retry_after() const noexcept { return retry_after_; }
  /// The URL the next request goes to (after redirects), when known.
  const std::optional<Url>& url() const noexcept { return url_; }
  /// The method the next request uses (after redirects).
  const std::string& method() const noexcept { return method_; }
  /// Redirects followed since the attempt started from the original request.
  unsigned redirects() const noexcept { return redirects_; }
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
  /// The options the client was made with.
  const ClientOptions& options() const noexcept { return options_; }
  /// The underlying parser (limits, last event id, error message).
  const Parser& parser() const noexcept { return parser_; }

  /// True for a `text/event-stream` media type, parameters allowed, case-insensitive.
  static bool is_event_stream(std::string_view content_type) noexcept {
    auto semi = content_type.find(';');
    std::string_view type = content_type.substr(0, semi);
    while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
    while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
    return detail::ascii_iequals(type, "text/event-stream");
  }

  /// True for the statuses that redirect: 301, 302, 303, 307, 308.
  static constexpr bool is_redirect(int status) noexcept {
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
  }

 private:
  enum class Phase {
    request,  ///< an attempt is to be made or under way, no response yet
    stream,   ///< reading an open stream
    body,     ///< reading a non-stream response's body; `pending_` is decided
    done,     ///< closed for good
  };

  bool dropped(std::string_view name) const noexcept {
    using detail::ascii_iequals;
    if (!keep_body_)
      for (std::string_view n : {"Content-Type", "Content-Length", "Content-Encoding",
                                 "Content-Language", "Content-Location"})
        if (ascii_iequals(name, n)) return true;
    if (origin_ && url_ && !url_->same_origin(*origin_))
      return ascii_iequals(name, "Authorization") || ascii_iequals(name, "Cookie");
    return false;
  }

  void stop_with(std::error_code ec) noexcept {
    state_ = ReadyState::closed;
    phase_ = Phase::done;
    error_ = ec;
  }

  Action stop_action() const { return Action{Next::stop, std::chrono::milliseconds(0), error_}; }

  Verdict fail_response(errc e) {
    state_ = ReadyState::closed;
    error_ = e;
    phase_ = Phase::body;  // the body stays readable
    pending_ = Next::stop;
    return Verdict::failed;
  }

  Verdict redirect(const ResponseHead& head) {
    if (redirects_ >= options_.max_redirects) return fail_response(errc::too_many_redirects);
    Result<Url> next = url_ ? Url::parse(detail::resolve_reference(url_->str(), head.location))
                            : Url::parse(head.location);
    if (!next) return fail_response(errc::bad_redirect);
    if (url_ && url_->https() && !next->https() && !options_.allow_insecure_redirect)
      return fail_response(errc::insecure_redirect);
    if (!next->fragment && url_ && url_->fragment) next->fragment = url_->fragment;  // RFC 9110
    // Fetch's rules: 303 makes anything but GET and HEAD a GET; 301 and 302 only a POST.
    const bool to_get = head.status == 303
                            ? method_ != "GET" && method_ != "HEAD"
                            : (head.status == 301 || head.status == 302) && method_ == "POST";
    if (to_get) {
      method_ = "GET";
      keep_body_ = false;
    }
    url_ = std::move(*next);
    ++redirects_;
    state_ = ReadyState::connecting;
    phase_ = Phase::body;
    pending_ = Next::redirect;
    return Verdict::redirect;
  }

  Action after_body() {
    switch (pending_) {
      case Next::redirect:
        phase_ = Phase::request;
        return Action{Next::redirect, std::chrono::milliseconds(0), {}};
      case Next::reconnect:
        return reconnect(retry_after_);
      case Next::stop:
        phase_ = Phase::done;
        break;
    }
    return stop_action();
  }

  void end_stream(Clock::time_point now) {
    if (now - opened_at_ >= options_.healthy_after) failures_ = 0;
    (void)parser_.finish();
  }

  Action reconnect(std::optional<std::chrono::milliseconds> floor) {
    if (options_.max_retries != 0 && failures_ >= options_.max_retries) {
      stop_with(errc::retries_exhausted);
      return stop_action();
    }
    std::chrono::milliseconds delay = next_delay();
    if (floor && *floor > delay) delay = *floor;
    if (failures_ < 62) ++failures_;
    // Each attempt starts over from the original request.
    url_ = origin_;
    method_ = options_.method;
    keep_body_ = true;
    redirects_ = 0;
    state_ = ReadyState::connecting;
    phase_ = Phase::request;
    return Action{Next::reconnect, delay, {}};
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
  Phase phase_ = Phase::request;
  Next pending_ = Next::stop;
  std::error_code error_;
  Clock::time_point opened_at_{};
  unsigned failures_ = 0;
  std::optional<Url> origin_;
  std::optional<Url> url_;
  std::string method_;
  bool keep_body_ = true;
  unsigned redirects_ = 0;
  int status_ = 0;
  std::optional<std::chrono::milliseconds> retry_after_;
  std::string error_body_;
  bool error_body_truncated_ = false;
};

SSEPP_END_NAMESPACE
