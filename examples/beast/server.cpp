// The Boost.Beast side of the demo: event-loop threads, the listener, HTTP (or HTTPS) sessions.
// A request for GET /events is handed, with its connection, to the application's
// ssepp::asio::EventStreams, which writes the stream from then on.
#include "server.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <sys/resource.h>

#include <array>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>

namespace demo {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using PlainStream = beast::tcp_stream;
using TlsStream = ssl::stream<beast::tcp_stream>;

std::string_view view(beast::string_view s) { return {s.data(), s.size()}; }

/// One event-loop thread: an io_context of its own. Every connection lives on one loop, so no
/// strand is needed; the broadcaster's sends, from any thread, reach a stream through its loop.
class Loop {
 public:
  Loop() : work_(ioc_.get_executor()) {}
  net::io_context& context() noexcept { return ioc_; }
  void run() { ioc_.run(); }
  void stop() { ioc_.stop(); }  // from any thread

 private:
  net::io_context ioc_{1};
  net::executor_work_guard<net::io_context::executor_type> work_;
};

/// Counts an HTTP connection until it ends or becomes a stream (EventStreams counts those).
class Slot {
 public:
  explicit Slot(ServerCounters& c) : c_(c) { c_.http_open.fetch_add(1, std::memory_order_relaxed); }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;
  ~Slot() { c_.http_open.fetch_sub(1, std::memory_order_relaxed); }

 private:
  ServerCounters& c_;
};

// ---------------------------------------------------------------------------------------------
// One HTTP connection, plain or TLS: keep-alive request/response loop until it becomes a stream.

template <class Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>> {
  static constexpr bool tls = std::is_same_v<Stream, TlsStream>;

 public:
  HttpSession(tcp::socket&& socket, App& app, ssl::context* tls_context)
      : stream_(make_stream(std::move(socket), tls_context)), slot_(app.counters()), app_(app) {}

  void run() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (tls) {
        self->lowest().expires_after(self->app_.options().request_timeout);
        self->stream_.async_handshake(ssl::stream_base::server, [self](beast::error_code ec) {
          if (ec) return self->close();
          self->read_header();
        });
      } else {
        self->read_header();
      }
    });
  }

 private:
  static Stream make_stream(tcp::socket&& socket, ssl::context* tls_context) {
    if constexpr (tls)
      return Stream(beast::tcp_stream(std::move(socket)), *tls_context);
    else
      return Stream(std::move(socket));
  }

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void read_header() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(app_.options().header_limit));
    parser_->body_limit(app_.options().body_limit);
    lowest().expires_after(app_.options().request_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                              self->on_header(ec);
                            });
  }

  void on_header(beast::error_code ec) {
    if (ec) return fail(ec);
    if (parser_->is_done()) return on_request();
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      continue_ = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      net::async_write(stream_, net::buffer(*continue_),
                       [self = this->shared_from_this()](beast::error_code e, std::size_t) {
                         if (e) return self->close();
                         self->read_body();
                       });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return self->fail(ec);
                       self->on_request();
                     });
  }

  void on_request() {
    app_.counters().requests.fetch_add(1, std::memory_order_relaxed);
    auto& msg = parser_->get();
    Request req;
    req.method = view(msg.method_string());
    req.target = view(msg.target());
    req.body = msg.body();
    req.cookie = view(msg[http::field::cookie]);
    req.authorization = view(msg[http::field::authorization]);
    req.origin = view(msg[http::field::origin]);
    auto last = msg.find("Last-Event-ID");
    if (last != msg.end()) req.last_event_id = view(last->value());
    req.preflight = msg.method() == http::verb::options &&
                    msg.find(http::field::access_control_request_method) != msg.end();
    req.version = msg.version();
    const bool keep_alive = msg.keep_alive();

    if (app_.is_stream(req)) {
      auto admitted = app_.admit(req);
      if (auto* a = std::get_if<Admission>(&admitted)) {
        // The stream owns the connection from here on; this session ends.
        (void)app_.streams().serve(std::move(stream_), msg, std::move(a->who), a->on_open);
        return;
      }
      return respond(std::move(std::get<Response>(admitted)), keep_alive);
    }
    Response res;
    try {
      res = app_.handle(req);
    } catch (const std::exception& e) {  // a bug, not the client's fault: answer, don't crash
      std::fprintf(stderr, "ssepp-demo: %s %s: %s\n", std::string(req.method).c_str(),
                   std::string(ssepp::target_path(req.target)).c_str(), e.what());
      res = Response{500, "application/json", R"({"error":"internal error"})", {}};
    }
    respond(std::move(res), keep_alive);
  }

  void respond(Response r, bool keep_alive) {
    res_.emplace();
    res_->result(r.status);
    res_->version(parser_ && parser_->is_header_done() ? parser_->get().version() : 11);
    res_->keep_alive(keep_alive);
    if (!r.content_type.empty()) res_->set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res_->insert(name, value);
    res_->body() = std::move(r.body);
    res_->prepare_payload();
    lowest().expires_after(app_.options().request_timeout);
    http::async_write(stream_, *res_,
                      [self = this->shared_from_this(), keep_alive](beast::error_code ec,
                                                                    std::size_t) {
                        if (ec) return self->close();
                        if (!keep_alive) return self->linger();
                        self->read_header();
                      });
  }

  /// Ends the connection after a response: send FIN (or TLS close_notify), then read and drop
  /// what the client still sends (the rest of an oversized request) for a moment, so that
  /// closing with unread bytes does not reset the connection before the client has read our
  /// answer.
  void linger() {
    lowest().expires_after(std::chrono::seconds(2));
    if constexpr (tls) {
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) { self->close(); });
    } else {
      beast::error_code ignored;
      lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
      drain(0);
    }
  }

  void drain(std::size_t total) {
    lowest().async_read_some(net::buffer(discard_), [self = this->shared_from_this(), total](
                                                        beast::error_code ec, std::size_t n) {
      if (ec || total + n > (1u << 20)) return self->close();
      self->drain(total + n);
    });
  }

  /// A request that could not be read: answer what can be answered (4xx, then close).
  void fail(beast::error_code ec) {
    const bool parse_error = ec.category() == make_error_code(http::error::bad_target).category();
    if (!parse_error || ec == http::error::end_of_stream || ec == http::error::partial_message)
      return close();
    app_.counters().bad_requests.fetch_add(1, std::memory_order_relaxed);
    Response r;
    r.status = 400;
    std::string message = "malformed request: " + ec.message();
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      r.status = 431;
      message = "request header too large";
    } else if (ec == http::error::body_limit) {
      r.status = 413;
      message = "request body too large";
    }
    r.body = "{\"error\":\"";
    for (char c : message) {
      if (c == '"' || c == '\\') r.body += '\\';
      if (static_cast<unsigned char>(c) >= 0x20) r.body += c;
    }
    r.body += "\"}";
    respond(std::move(r), false);
  }

  void close() {
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    lowest().close();
  }

  Stream stream_;
  Slot slot_;
  App& app_;
  beast::flat_buffer buffer_{16 * 1024};
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> res_;
  std::shared_ptr<std::string> continue_;
  std::array<char, 4096> discard_{};
};

// ---------------------------------------------------------------------------------------------

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  /// Accepts on the first loop and deals connections to every loop in turn.
  Listener(std::vector<std::unique_ptr<Loop>>& loops, App& app, ssl::context* tls)
      : loops_(loops),
        acceptor_(loops[0]->context()),
        retry_(loops[0]->context()),
        app_(app),
        tls_(tls) {}

  tcp::endpoint open(const tcp::endpoint& ep) {
    acceptor_.open(ep.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(net::socket_base::max_listen_connections);
    return acceptor_.local_endpoint();
  }

  void accept() {
    Loop& loop = *loops_[next_++ % loops_.size()];
    acceptor_.async_accept(loop.context(), [self = shared_from_this()](beast::error_code ec,
                                                                       tcp::socket s) {
      self->on_accept(ec, std::move(s));
    });
  }

  void stop() {
    net::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ignored;
      self->acceptor_.close(ignored);
      self->retry_.cancel();
    });
  }

 private:
  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      // Out of descriptors or similar: wait a little instead of spinning.
      std::fprintf(stderr, "ssepp-demo: accept: %s\n", ec.message().c_str());
      retry_.expires_after(std::chrono::milliseconds(100));
      retry_.async_wait([self = shared_from_this()](beast::error_code e) {
        if (!e) self->accept();
      });
      return;
    }
    auto& c = app_.counters();
    c.connections_accepted.fetch_add(1, std::memory_order_relaxed);
    beast::error_code ignored;
    if (app_.connections_open() >= app_.options().max_connections) {
      c.connections_refused.fetch_add(1, std::memory_order_relaxed);
      socket.close(ignored);
    } else {
      socket.set_option(tcp::no_delay(true), ignored);
      if (tls_)
        std::make_shared<HttpSession<TlsStream>>(std::move(socket), app_, tls_)->run();
      else
        std::make_shared<HttpSession<PlainStream>>(std::move(socket), app_, nullptr)->run();
    }
    accept();
  }

  std::vector<std::unique_ptr<Loop>>& loops_;
  std::size_t next_ = 0;
  tcp::acceptor acceptor_;
  net::steady_timer retry_;
  App& app_;
  ssl::context* tls_;
};

/// Calls app.tick() every 100 ms: heartbeats, history expiry, the price feed, job progress.
class Ticker : public std::enable_shared_from_this<Ticker> {
 public:
  Ticker(net::io_context& ioc, App& app) : timer_(ioc), app_(app) {}
  void start() { arm(); }
  void stop() {
    net::post(timer_.get_executor(), [self = shared_from_this()] {
      self->stopped_ = true;
      self->timer_.cancel();
    });
  }

 private:
  void arm() {
    timer_.expires_after(std::chrono::milliseconds(100));
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->stopped_) return;
      self->app_.tick(Clock::now());
      self->arm();
    });
  }

  net::steady_timer timer_;
  App& app_;
  bool stopped_ = false;
};

void raise_file_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int serve(App& app) {
  const Options& opts = app.options();
  raise_file_limit();
  std::optional<ssl::context> tls;
  if (!opts.tls_cert.empty()) {
    try {
      tls.emplace(ssl::context::tls_server);
      tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                       ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
      tls->use_certificate_chain_file(opts.tls_cert);
      tls->use_private_key_file(opts.tls_key, ssl::context::pem);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ssepp-demo: cannot use %s and %s for TLS: %s\n",
                   opts.tls_cert.c_str(), opts.tls_key.c_str(), e.what());
      return 1;
    }
  }
  std::vector<std::unique_ptr<Loop>> loops;
  for (unsigned i = 0; i < opts.threads; ++i) loops.push_back(std::make_unique<Loop>());
  net::io_context& main = loops[0]->context();
  auto listener = std::make_shared<Listener>(loops, app, tls ? &*tls : nullptr);
  tcp::endpoint bound;
  try {
    bound = listener->open(tcp::endpoint(net::ip::make_address(opts.host), opts.port));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ssepp-demo: cannot listen on %s:%u: %s\n", opts.host.c_str(), opts.port,
                 e.what());
    return 1;
  }
  listener->accept();
  auto ticker = std::make_shared<Ticker>(main, app);
  ticker->start();

  // SIGINT or SIGTERM: no new connection, every stream ends gracefully (what it has queued, the
  // final chunk; cut after 2 s), then the loops stop.
  net::signal_set signals(main, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int) {
    listener->stop();
    ticker->stop();
    app.streams().shutdown(
        main.get_executor(),
        [&loops] {
          for (auto& loop : loops) loop->stop();
        },
        ssepp::Frame{}, std::chrono::seconds(2));
  });

  std::string host = bound.address().is_v6() ? "[" + bound.address().to_string() + "]"
                                             : bound.address().to_string();
  std::printf("ssepp-demo listening on %s://%s:%u/\n", tls ? "https" : "http", host.c_str(),
              static_cast<unsigned>(bound.port()));
  std::fflush(stdout);

  std::vector<std::thread> extra;
  for (std::size_t i = 1; i < loops.size(); ++i)
    extra.emplace_back([&loop = *loops[i]] { loop.run(); });
  loops[0]->run();
  for (auto& t : extra) t.join();
  return 0;
}

}  // namespace demo
