// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// ssepp::asio::EventClient: the transport of the sans-IO ssepp::Client on Boost.Asio/Beast.
// http:// and https:// (verified), any method and body, timeouts, redirects, reconnection with
// Last-Event-ID, an HTTP proxy through CONNECT; the Client decides, this file does the I/O.
//
//   ssepp::asio::EventClientOptions o;
//   o.client.url = "https://example.com/events";
//   auto c = ssepp::asio::EventClient::create(ioc.get_executor(), o);    // Result<shared_ptr>
//   ssepp::asio::EventHandlers h;
//   h.on_event = [](const ssepp::EventView& ev) { std::cout << ev.data << '\n'; };
//   h.on_close = [](std::error_code ec) { if (ec) std::cerr << ec.message() << '\n'; };
//   (*c)->start(std::move(h));
//   ioc.run();
#pragma once

#include <ssepp/client.hpp>
#include <ssepp/config.hpp>
#include <ssepp/event.hpp>
#include <ssepp/parser.hpp>
#include <ssepp/result.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#if defined(BOOST_ASIO_HAS_CO_AWAIT)
#  include <boost/asio/awaitable.hpp>
#  include <boost/asio/use_awaitable.hpp>
#endif

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE
namespace asio {

/// Transport errors of `EventClient` that neither ssepp::errc nor Asio/Beast name.
enum class client_errc {
  proxy_refused = 1,  ///< the proxy answered CONNECT with a status other than 2xx
};

namespace detail {
class client_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ssepp.asio.client"; }
  std::string message(int ev) const override {
    switch (static_cast<client_errc>(ev)) {
      case client_errc::proxy_refused: return "the proxy refused the CONNECT request";
    }
    return "unknown ssepp.asio.client error";
  }
};
}  // namespace detail

/// The `std::error_category` of `client_errc`.
inline const std::error_category& client_category() noexcept {
  static const detail::client_category_impl category;
  return category;
}
inline std::error_code make_error_code(client_errc e) noexcept {
  return {static_cast<int>(e), client_category()};
}

}  // namespace asio
SSEPP_END_NAMESPACE

template <>
struct std::is_error_code_enum<ssepp::asio::client_errc> : std::true_type {};

SSEPP_BEGIN_NAMESPACE
namespace asio {

/// Decodes a response body sent with a `Content-Encoding`, chunk by chunk (see
/// `EventClientOptions::make_decoder`; <ssepp/asio/decompress.hpp> has gzip and deflate).
class BodyDecoder {
 public:
  virtual ~BodyDecoder() = default;
  /// Where decoded bytes go: the stream parser. Its error ends the attempt; return it.
  using Output = std::function<Result<void>(std::string_view decoded)>;
  /// Decodes `in`, handing the decoded bytes to `out` in bounded pieces; an error (corrupt data,
  /// a decompression bomb) ends the attempt.
  virtual Result<void> decode(std::string_view in, const Output& out) = 0;
};

/// Everything an `EventClient` does: the request and its policy (`client`, the sans-IO
/// ssepp::ClientOptions), TLS, proxy, timeouts. A zero timeout turns that timeout off.
struct EventClientOptions {
  /// URL, method, body, headers, retry policy, redirects, Last-Event-ID, parser limits.
  ClientOptions client;

  /// PEM file of CA certificates trusted in addition to the system store (`--cacert`).
  std::string ca_file;
  /// Do not verify the server's certificate nor its name (`--insecure`; for tests only).
  bool insecure = false;

  /// An HTTP proxy ("http://host:port" or "host:port") every connection tunnels through with
  /// CONNECT. Empty: from the environment when `proxy_from_env` (`https_proxy` / `HTTPS_PROXY`
  /// for https URLs, `http_proxy` for http ones, except the hosts of `no_proxy` / `NO_PROXY`).
  std::string proxy;
  bool proxy_from_env = true;

  /// Resolving, connecting, the proxy's CONNECT and the TLS handshake, per attempt.
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(10);
  /// Longest silence while waiting for the response head or the next bytes of the body: a
  /// connection silent this long is dropped (and reconnected); heartbeats keep a live one open.
  std::chrono::milliseconds read_timeout = std::chrono::seconds(60);
  /// Writing the request.
  std::chrono::milliseconds write_timeout = std::chrono::seconds(10);
  /// Largest response head accepted (Beast's header limit: `http::error::header_limit`).
  std::uint32_t max_header = 64 * 1024;
  /// `User-Agent` of every request (empty: none).
  std::string user_agent = "ssepp";
  /// False: no reconnection at all. The first clean end stops with no error, the first network
  /// error or retryable response stops with that error. Redirects are still followed.
  bool reconnect = true;
  /// `Accept-Encoding` of every request (e.g. "gzip, deflate"); empty: none sent.
  std::string accept_encoding;
  /// Makes the decoder for a response's `Content-Encoding` (not called for none or "identity").
  /// Unset, or failing: the attempt fails for good (errc::unsupported_encoding by default).
  std::function<Result<std::unique_ptr<BodyDecoder>>(std::string_view content_encoding)>
      make_decoder;
  /// Events queued for `async_next` before reading pauses (pull mode only).
  std::size_t max_queued_events = 64;
  /// Runs before each attempt (first, redirect, reconnection), on the client's executor: may
  /// change the request's headers (a refreshed token). The Client drops `Authorization` on a
  /// cross-origin redirect; a hook that adds credentials checks `r.url` itself. Must not throw.
  std::function<void(Request&)> before_request;
};

/// Callbacks of an `EventClient`, all on its executor. None may throw.
struct EventHandlers {
  /// Each event (views valid during the call). Empty: pull mode, events wait for `async_next`.
  std::function<void(const EventView&)> on_event;
  /// A valid `retry` field.
  std::function<void(std::chrono::milliseconds)> on_retry;
  /// A comment line (heartbeats).
  std::function<void(std::string_view)> on_comment;
  /// A stream opened (200 text/event-stream) at this URL.
  std::function<void(const Url&)> on_open;
  /// An attempt ended (`why`: its error, zero for a clean end) and the next one starts after
  /// `delay`.
  std::function<void(std::chrono::milliseconds delay, std::error_code why)> on_reconnect;
  /// The client stopped for good, once: zero for a normal end (204, a one-shot stream's end,
  /// `close()`), else why (a ssepp::errc such as bad_status, an Asio/Beast/TLS error, ...).
  std::function<void(std::error_code)> on_close;
};

/// An SSE client over Boost.Asio/Beast: runs the sans-IO ssepp::Client's loop — request,
/// response, stream, reconnection — over TCP or TLS, through a proxy when asked.
///
/// - **Errors.** Whatever a server sends ends the attempt with an error code, never an exception:
///   a bad head (`http::error::*`, `header_limit`), a wrong status or type (`errc::bad_status`,
///   `errc::bad_content_type`), a parser limit (`errc::line_too_long`, `errc::event_too_large`), a
///   connection cut mid-chunk (`http::error::partial_message`), a timeout (`beast::error::timeout`).
///   Network errors reconnect as the policy says; a failed TLS handshake (unknown CA, wrong name)
///   stops for good. Memory is bounded by the parser limits, `max_header` and the read buffer.
/// - **Threads.** Everything runs on the executor given to `create` (a strand when several
///   threads run the io_context); `close()` is safe from any thread. Create with `create` (a
///   shared_ptr: pending operations keep the client alive).
class EventClient : public std::enable_shared_from_this<EventClient> {
  using tcp = ::boost::asio::ip::tcp;
  using Clock = Client::Clock;

 public:
  using executor_type = ::boost::asio::any_io_executor;

  /// Checks the options (the URL, the proxy URL, the CA file) and makes a client; `start` it.
  static Result<std::shared_ptr<EventClient>> create(executor_type ex, EventClientOptions options) {
    namespace ssl = ::boost::asio::ssl;
    if (auto u = Url::parse(options.client.url); !u) return u.error();
    if (!options.proxy.empty())
      if (auto p = parse_proxy(options.proxy); !p) return p.error();
    auto tls = std::make_shared<ssl::context>(ssl::context::tls_client);
    ::boost::system::error_code ec;
    if (options.insecure) {
      tls->set_verify_mode(ssl::verify_none);
    } else {
      tls->set_verify_mode(ssl::verify_peer);
      tls->set_default_verify_paths(ec);  // no system store: only ca_file then
      if (!options.ca_file.empty()) {
        ec = {};
        tls->load_verify_file(options.ca_file, ec);
        if (ec) return std::error_code(ec);
      }
    }
    return std::shared_ptr<EventClient>(
        new EventClient(std::move(ex), std::move(options), std::move(tls)));
  }

  EventClient(const EventClient&) = delete;
  EventClient& operator=(const EventClient&) = delete;
  ~EventClient() = default;

  executor_type get_executor() const noexcept { return ex_; }

  /// Starts the loop (posted to the executor). Call once. Without `on_event`, events wait in a
  /// queue for `async_next`.
  void start(EventHandlers handlers = {}) {
    ::boost::asio::post(ex_, [self = shared_from_this(), h = std::move(handlers)]() mutable {
      self->handlers_ = std::move(h);
      self->pull_ = !self->handlers_.on_event;
      if (self->closed_.load()) return self->finish({});
      self->attempt();
    });
  }

  /// Stops for good: the connection or the wait is cancelled, no further event is delivered and
  /// `on_close` runs with no error. From any thread; idempotent.
  void close() {
    if (closed_.exchange(true)) return;
    ::boost::asio::post(ex_, [self = shared_from_this()] { self->abort(); });
  }

  /// True once `close()` was called or the client stopped. From any thread.
  bool closed() const noexcept { return closed_.load() || done_.load(); }

  /// The next event (pull mode: `start` without `on_event`), for any completion token: a
  /// callback `void(Result<Event>)`, `use_awaitable`, `use_future`. Fails with the stop error, or
  /// errc::closed after a normal end. One wait at a time.
  template <class Token>
  auto async_next(Token&& token) {
    return ::boost::asio::async_initiate<Token, void(Result<Event>)>(
        [self = shared_from_this()](auto handler) {
          using H = std::decay_t<decltype(handler)>;
          std::unique_ptr<Waiter> w = std::make_unique<WaiterOf<H>>(std::move(handler), self->ex_);
          ::boost::asio::post(self->ex_, [self, w = std::move(w)]() mutable {
            self->wait_next(std::move(w));
          });
        },
        token);
  }

#if defined(BOOST_ASIO_HAS_CO_AWAIT)
  /// `co_await client->next()`: the next event, or why there is none (see `async_next`).
  ::boost::asio::awaitable<Result<Event>> next() {
    // cppcheck-suppress missingReturn
    co_return co_await async_next(::boost::asio::use_awaitable);
  }
#endif

  /// The sans-IO client (state, status, error body, Last-Event-ID). Only on the executor, or
  /// once the client stopped and the executor has no more of its work.
  const Client& client() const noexcept { return client_; }
  /// The error of the last failed attempt (kept across reconnections), zero when none failed.
  std::error_code last_error() const noexcept { return last_error_; }
  /// Attempts made (connections tried, redirects included).
  std::uint64_t attempts() const noexcept { return attempts_.load(); }

  /// The proxy `options` chooses for `target` (the option, else the environment), if any.
  static std::optional<Url> proxy_for(const Url& target, const EventClientOptions& options) {
    if (!options.proxy.empty()) {
      auto p = parse_proxy(options.proxy);
      return p ? std::optional<Url>(std::move(*p)) : std::nullopt;
    }
    if (!options.proxy_from_env) return std::nullopt;
    const char* v = target.https() ? env("https_proxy", "HTTPS_PROXY") : env("http_proxy", nullptr);
    if (v == nullptr || *v == '\0' || no_proxy(target.host)) return std::nullopt;
    auto p = parse_proxy(v);
    return p ? std::optional<Url>(std::move(*p)) : std::nullopt;
  }

 private:
  using error_code = ::boost::system::error_code;
  using ms = std::chrono::milliseconds;

  struct Waiter {
    virtual ~Waiter() = default;
    virtual void complete(Result<Event> r) = 0;
  };
  template <class Handler>
  struct WaiterOf final : Waiter {
    using Ex = ::boost::asio::associated_executor_t<Handler, executor_type>;
    WaiterOf(Handler&& h, const executor_type& ex)
        : work(::boost::asio::get_associated_executor(h, ex)), handler(std::move(h)) {}
    void complete(Result<Event> r) override {
      auto ex = work.get_executor();
      ::boost::asio::post(ex, [h = std::move(handler), r = std::move(r)]() mutable {
        std::move(h)(std::move(r));
      });
      work.reset();
    }
    ::boost::asio::executor_work_guard<Ex> work;
    Handler handler;
  };

  /// One attempt's connection: TCP, and TLS over it for https.
  struct Conn {
    explicit Conn(const executor_type& ex) : tcp(ex) {}
    ::boost::beast::tcp_stream tcp;
    std::optional<::boost::asio::ssl::stream<::boost::beast::tcp_stream&>> tls;
  };

  /// Parser callbacks: to the handlers, or to the queue in pull mode.
  struct Deliver {
    EventClient* self;
    void on_event(const EventView& ev) const {
      if (self->closed_.load()) return;
      if (!self->pull_) return self->handlers_.on_event(ev);
      Event e;
      e.type = std::string(ev.type);
      e.data = std::string(ev.data);
      e.id = std::string(ev.id);
      self->queue_.push_back(std::move(e));
    }
    void on_comment(std::string_view c) const {
      if (self->handlers_.on_comment && !self->closed_.load()) self->handlers_.on_comment(c);
    }
    void on_retry(ms r) const {
      if (self->handlers_.on_retry && !self->closed_.load()) self->handlers_.on_retry(r);
    }
  };

  EventClient(executor_type ex, EventClientOptions options,
              std::shared_ptr<::boost::asio::ssl::context> tls)
      : ex_(std::move(ex)),
        options_(std::move(options)),
        tls_ctx_(std::move(tls)),
        client_(options_.client),
        resolver_(ex_),
        timer_(ex_) {
    read_buf_.resize(std::size_t{16} * 1024);
    // Beast reads at most the buffer's free capacity (512 bytes when it has none): without room
    // a stream would be read 512 bytes per system call.
    buffer_.reserve(std::size_t{64} * 1024);
  }

  static std::string_view sv(::boost::beast::string_view s) noexcept { return {s.data(), s.size()}; }

  static const char* env(const char* lower, const char* upper) noexcept {
    const char* v = std::getenv(lower);
    if ((v == nullptr || *v == '\0') && upper != nullptr) v = std::getenv(upper);
    return v;
  }

  static Result<Url> parse_proxy(std::string_view text) {
    std::string s(text);
    if (s.find("://") == std::string::npos) s = "http://" + s;
    auto u = Url::parse(s);
    if (u && u->https()) return errc::invalid_url;  // TLS to the proxy itself: not supported
    return u;
  }

  /// `no_proxy`: comma- or space-separated host names (a leading dot optional; each matches the
  /// host and its subdomains), or "*" for every host. Ports are ignored.
  static bool no_proxy(std::string_view host) {
    const char* v = env("no_proxy", "NO_PROXY");
    if (v == nullptr) return false;
    std::string_view list(v);
    while (!list.empty()) {
      const std::size_t end = list.find_first_of(", ");
      std::string_view item = list.substr(0, end);
      list = end == std::string_view::npos ? std::string_view() : list.substr(end + 1);
      if (item == "*") return true;
      if (!item.empty() && item.front() == '[') {  // [::1]:port
        const std::size_t close = item.find(']');
        item = item.substr(1, close == std::string_view::npos ? item.size() : close - 1);
      } else if (item.find(':') == item.rfind(':') && item.find(':') != std::string_view::npos) {
        item = item.substr(0, item.find(':'));  // host:port
      }
      while (!item.empty() && item.front() == '.') item.remove_prefix(1);
      if (item.empty()) continue;
      if (host.size() >= item.size() &&
          ::ssepp::detail::ascii_iequals(host.substr(host.size() - item.size()), item) &&
          (host.size() == item.size() || host[host.size() - item.size() - 1] == '.'))
        return true;
    }
    return false;
  }

  // -- The loop ------------------------------------------------------------------------------

  void attempt() {
    auto req = client_.request();
    if (!req) return finish(req.error());
    if (options_.before_request) options_.before_request(*req);
    request_ = std::move(*req);
    attempts_.fetch_add(1);
    verdict_.reset();
    body_bytes_ = 0;
    buffer_.clear();
    parser_.reset();
    conn_ = std::make_unique<Conn>(ex_);
    proxy_ = proxy_for(request_.url, options_);
    const Url& to = proxy_ ? *proxy_ : request_.url;
    resolve_timed_out_ = false;
    if (options_.connect_timeout.count() > 0) {
      timer_.expires_after(options_.connect_timeout);
      timer_.async_wait([self = shared_from_this()](error_code ec) {
        if (!ec) {
          self->resolve_timed_out_ = true;
          self->resolver_.cancel();
        }
      });
    }
    busy_ = true;
    resolver_.async_resolve(
        to.host, std::to_string(to.port),
        [self = shared_from_this()](error_code ec, const tcp::resolver::results_type& results) {
          self->busy_ = false;
          self->timer_.cancel();
          if (self->resolve_timed_out_ && ec) ec = ::boost::beast::error::timeout;
          if (self->stopping()) return;
          if (ec) return self->end_attempt(ec);
          self->connect(results);
        });
  }

  void connect(const tcp::resolver::results_type& results) {
    expire(options_.connect_timeout);
    busy_ = true;
    conn_->tcp.async_connect(results, [self = shared_from_this()](error_code ec,
                                                                  const tcp::endpoint&) {
      self->busy_ = false;
      if (self->stopping()) return;
      if (ec) return self->end_attempt(ec);
      if (self->proxy_) return self->tunnel();
      self->secure();
    });
  }

  /// CONNECT host:port through the proxy.
  void tunnel() {
    namespace http = ::boost::beast::http;
    const std::string authority = authority_of(request_.url);
    connect_req_.emplace(http::verb::connect, authority, 11);
    connect_req_->set(http::field::host, authority);
    if (!options_.user_agent.empty()) connect_req_->set(http::field::user_agent, options_.user_agent);
    expire(options_.connect_timeout);
    busy_ = true;
    http::async_write(conn_->tcp, *connect_req_, [self = shared_from_this()](error_code ec, std::size_t) {
      self->busy_ = false;
      if (self->stopping()) return;
      if (ec) return self->end_attempt(ec);
      self->proxy_parser_.emplace();
      self->proxy_parser_->header_limit(self->options_.max_header);
      self->proxy_parser_->skip(true);  // a 2xx to CONNECT has no body
      self->expire(self->options_.connect_timeout);
      self->busy_ = true;
      http::async_read_header(
          self->conn_->tcp, self->buffer_, *self->proxy_parser_,
          [self](error_code e, std::size_t) {
            self->busy_ = false;
            if (self->stopping()) return;
            if (e) return self->end_attempt(e);
            const unsigned status = self->proxy_parser_->get().result_int();
            if (status < 200 || status > 299)
              return self->end_attempt(make_error_code(client_errc::proxy_refused));
            self->secure();
          });
    });
  }

  static std::string authority_of(const Url& u) {
    std::string h = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
    return h + ":" + std::to_string(u.port);
  }

  /// TLS for https: SNI, certificate and host name verified (unless insecure), handshake.
  void secure() {
    namespace ssl = ::boost::asio::ssl;
    if (!request_.url.https()) return send();
    conn_->tls.emplace(conn_->tcp, *tls_ctx_);
    const std::string& host = request_.url.host;
    error_code ec;
    (void)::boost::asio::ip::make_address(host, ec);
    // SNI for names (not for IP literals): what SSL_set_tlsext_host_name expands to.
    if (ec && ::SSL_ctrl(conn_->tls->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                         TLSEXT_NAMETYPE_host_name, const_cast<char*>(host.c_str())) != 1)
      return end_attempt(error_code(static_cast<int>(::ERR_get_error()),
                                    ::boost::asio::error::get_ssl_category()));
    if (!options_.insecure) conn_->tls->set_verify_callback(ssl::host_name_verification(host));
    expire(options_.connect_timeout);
    busy_ = true;
    conn_->tls->async_handshake(ssl::stream_base::client, [self = shared_from_this()](error_code e) {
      self->busy_ = false;
      if (self->stopping()) return;
      if (e) {
        // A certificate or protocol failure would fail again: stop for good. A connection the
        // server dropped during the handshake is a network error.
        const bool permanent = e.category() == ::boost::asio::error::get_ssl_category();
        return self->end_attempt(e, permanent);
      }
      self->send();
    });
  }

  void send() {
    namespace http = ::boost::beast::http;
    const Request& r = request_;
    http::verb verb = http::string_to_verb(r.method);
    req_.emplace();
    req_->version(11);
    if (verb == http::verb::unknown) req_->method_string(r.method);
    else req_->method(verb);
    req_->target(r.url.target());
    req_->set(http::field::host, r.url.host_header());
    if (!options_.user_agent.empty()) req_->set(http::field::user_agent, options_.user_agent);
    bool has_accept_encoding = false;
    for (const auto& [name, value] : r.headers) {
      req_->insert(name, value);
      has_accept_encoding =
          has_accept_encoding || ::ssepp::detail::ascii_iequals(name, "Accept-Encoding");
    }
    if (!options_.accept_encoding.empty() && !has_accept_encoding)
      req_->set(http::field::accept_encoding, options_.accept_encoding);
    if (r.has_body) {
      req_->body() = std::string(r.body);
      req_->prepare_payload();
    }
    expire(options_.write_timeout);
    busy_ = true;
    with_stream([&](auto& s) {
      http::async_write(s, *req_, [self = shared_from_this()](error_code ec, std::size_t) {
        self->busy_ = false;
        if (self->stopping()) return;
        if (ec) return self->end_attempt(ec);
        self->read_head();
      });
    });
  }

  void read_head() {
    namespace http = ::boost::beast::http;
    parser_.emplace();
    parser_->header_limit(options_.max_header);
    // A stream has no end; the SSE parser bounds each event. (Not boost::none: Boost 1.74's
    // parser then rejects every body with a Content-Length.)
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    if (request_.method == "HEAD") parser_->skip(true);
    expire(options_.read_timeout);
    busy_ = true;
    with_stream([&](auto& s) {
      http::async_read_header(s, buffer_, *parser_, [self = shared_from_this()](error_code ec, std::size_t) {
        self->busy_ = false;
        if (self->stopping()) return;
        if (ec) return self->end_attempt(ec);
        self->on_head();
      });
    });
  }

  void on_head() {
    namespace http = ::boost::beast::http;
    const auto& res = parser_->get();
    ResponseHead head;
    head.status = static_cast<int>(res.result_int());
    head.content_type = sv(res[http::field::content_type]);
    head.location = sv(res[http::field::location]);
    head.retry_after = sv(res[http::field::retry_after]);
    head.date = sv(res[http::field::date]);
    head.wall_now = std::chrono::system_clock::now();
    verdict_ = client_.on_response(head, Clock::now());
    decoder_.reset();
    const std::string_view coding = sv(res[http::field::content_encoding]);
    if (!coding.empty() && !::ssepp::detail::ascii_iequals(coding, "identity") &&
        *verdict_ != Verdict::redirect && !parser_->is_done()) {
      auto d = options_.make_decoder ? options_.make_decoder(coding)
                                     : Result<std::unique_ptr<BodyDecoder>>(errc::unsupported_encoding);
      if (!d) return end_attempt(d.error(), true);
      decoder_ = std::move(*d);
    }
    if (*verdict_ == Verdict::open && handlers_.on_open) handlers_.on_open(request_.url);
    // A redirect's body is of no use (and may not end soon): the next request goes now.
    if (parser_->is_done() || *verdict_ == Verdict::redirect) return end_attempt({});
    read_body();
  }

  void read_body() {
    namespace http = ::boost::beast::http;
    parser_->get().body().data = read_buf_.data();
    parser_->get().body().size = read_buf_.size();
    expire(options_.read_timeout);
    busy_ = true;
    with_stream([&](auto& s) {
      http::async_read_some(s, buffer_, *parser_, [self = shared_from_this()](error_code ec, std::size_t) {
        self->busy_ = false;
        self->on_body(ec);
      });
    });
  }

  void on_body(error_code ec) {
    if (stopping()) return;
    if (ec == ::boost::beast::http::error::need_buffer) ec = {};
    const std::size_t n = read_buf_.size() - parser_->get().body().size;
    if (n > 0) {
      body_bytes_ += n;
      const std::string_view bytes(read_buf_.data(), n);
      auto fed = decoder_ ? decoder_->decode(bytes,
                                             [this](std::string_view decoded) {
                                               return client_.feed(decoded, Deliver{this});
                                             })
                          : client_.feed(bytes, Deliver{this});
      if (closed_.load()) return abort();
      if (!fed) return end_attempt(fed.error());
      serve_waiter();
    }
    if (ec) return end_attempt(ec);
    if (parser_->is_done()) return end_attempt({});
    // A response that is no stream: what `error_body()` keeps is enough.
    if (*verdict_ != Verdict::open && body_bytes_ > options_.client.max_error_body)
      return end_attempt({});
    if (pull_ && queue_.size() >= options_.max_queued_events) {
      paused_ = true;  // resumed by async_next
      return;
    }
    read_body();
  }

  /// The attempt is over: `ec` zero for a clean end of the response. Asks the Client what next.
  void end_attempt(std::error_code ec, bool permanent = false) {
    close_conn();
    if (ec) last_error_ = ec;
    const auto now = Clock::now();
    Action a = ec ? client_.on_network_error(now) : client_.on_end(now);
    if (a.next == Next::reconnect && (permanent || !options_.reconnect)) {
      std::error_code why = ec;
      if (!why && verdict_ && *verdict_ == Verdict::retry) why = errc::bad_status;
      if (why) client_.fail(why);
      else client_.close();
      a = Action{Next::stop, ms(0), why};
    }
    switch (a.next) {
      case Next::stop: return finish(a.error);
      case Next::redirect: return attempt();
      case Next::reconnect: break;
    }
    if (handlers_.on_reconnect) handlers_.on_reconnect(a.delay, ec);
    if (closed_.load()) return finish({});
    timer_.expires_after(a.delay);
    busy_ = true;
    timer_.async_wait([self = shared_from_this()](error_code e) {
      self->busy_ = false;
      if (self->stopping()) return;
      if (e) return self->finish(e);
      self->attempt();
    });
  }

  // -- Helpers ---------------------------------------------------------------------------------

  template <class F>
  void with_stream(F&& f) {
    if (conn_->tls) f(*conn_->tls);
    else f(conn_->tcp);
  }

  void expire(ms t) {
    if (t.count() > 0) conn_->tcp.expires_after(t);
    else conn_->tcp.expires_never();
  }

  /// True when close() was called: the completion that sees it finishes.
  bool stopping() {
    if (!closed_.load() && !done_.load()) return false;
    finish({});
    return true;
  }

  void close_conn() {
    if (!conn_) return;
    error_code ignored;
    conn_->tcp.socket().close(ignored);
  }

  /// From close(): cancel what waits; the completion finishes (or finish now when idle).
  void abort() {
    client_.close();
    timer_.cancel();
    resolver_.cancel();
    close_conn();
    if (!busy_) finish({});
  }

  void finish(std::error_code ec) {
    if (done_.exchange(true)) return;
    close_conn();
    timer_.cancel();
    if (closed_.load()) ec = {};
    else if (ec) client_.fail(ec);
    else client_.close();
    final_error_ = ec;
    serve_waiter();
    if (handlers_.on_close) handlers_.on_close(ec);
    handlers_ = {};  // releases what the callbacks hold
    options_.before_request = nullptr;
  }

  // -- Pull mode -------------------------------------------------------------------------------

  void wait_next(std::unique_ptr<Waiter> w) {
    if (waiter_) {
      w->complete(std::make_error_code(std::errc::operation_in_progress));
      return;
    }
    waiter_ = std::move(w);
    serve_waiter();
    if (paused_ && queue_.size() < options_.max_queued_events && !done_.load()) {
      paused_ = false;
      read_body();
    }
  }

  void serve_waiter() {
    if (!waiter_) return;
    if (!queue_.empty()) {
      Event e = std::move(queue_.front());
      queue_.pop_front();
      std::exchange(waiter_, nullptr)->complete(std::move(e));
    } else if (done_.load()) {
      std::exchange(waiter_, nullptr)->complete(final_error_ ? final_error_
                                                             : make_error_code(errc::closed));
    }
  }

  executor_type ex_;
  EventClientOptions options_;
  std::shared_ptr<::boost::asio::ssl::context> tls_ctx_;
  Client client_;
  EventHandlers handlers_;
  tcp::resolver resolver_;
  ::boost::asio::steady_timer timer_;
  std::unique_ptr<Conn> conn_;
  Request request_;
  std::optional<Url> proxy_;
  std::optional<::boost::beast::http::request<::boost::beast::http::empty_body>> connect_req_;
  std::optional<::boost::beast::http::response_parser<::boost::beast::http::empty_body>> proxy_parser_;
  std::optional<::boost::beast::http::request<::boost::beast::http::string_body>> req_;
  std::optional<::boost::beast::http::response_parser<::boost::beast::http::buffer_body>> parser_;
  ::boost::beast::flat_buffer buffer_;
  std::vector<char> read_buf_;
  std::unique_ptr<BodyDecoder> decoder_;
  std::optional<Verdict> verdict_;
  std::uint64_t body_bytes_ = 0;
  bool resolve_timed_out_ = false;
  bool busy_ = false;
  bool pull_ = false;
  bool paused_ = false;
  std::deque<Event> queue_;
  std::unique_ptr<Waiter> waiter_;
  std::error_code last_error_;
  std::error_code final_error_;
  std::atomic<bool> closed_{false};
  std::atomic<bool> done_{false};
  std::atomic<std::uint64_t> attempts_{0};
};

}  // namespace asio
SSEPP_END_NAMESPACE
