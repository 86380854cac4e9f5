#include "server.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <sys/resource.h>

#include <array>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

namespace demo {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Strand = net::strand<net::io_context::executor_type>;

/// Counts an open connection for its whole life (HTTP phase, then stream phase).
class Slot {
 public:
  explicit Slot(ServerCounters& c) : c_(&c) {
    c_->connections_open.fetch_add(1, std::memory_order_relaxed);
  }
  Slot(Slot&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  Slot& operator=(Slot&&) = delete;
  ~Slot() {
    if (c_) c_->connections_open.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  ServerCounters* c_;
};

std::string_view view(beast::string_view s) { return {s.data(), s.size()}; }

// ---------------------------------------------------------------------------------------------
// One event stream: a Mailbox the broadcaster fills, drained on the connection's strand. Every
// wake-up takes all queued frames and writes them in ONE async_write (a buffer sequence over the
// shared frames, which stay alive in `writing_frames_` until the write completes).

class StreamSession : public std::enable_shared_from_this<StreamSession> {
 public:
  StreamSession(beast::tcp_stream&& stream, Slot slot, App& app, ssepp::Mailbox mailbox,
                StreamStart start, bool chunked)
      : stream_(std::move(stream)),
        executor_(stream_.get_executor()),
        slot_(std::move(slot)),
        app_(app),
        mailbox_(std::move(mailbox)),
        id_(start.client),
        chunked_(chunked) {
    head_ = "HTTP/1.1 200 OK\r\n";
    for (const auto& h : ssepp::response_headers(chunked ? 11 : 10)) {
      head_.append(h.name).append(": ").append(h.value).append("\r\n");
    }
    if (chunked_) head_ += "Transfer-Encoding: chunked\r\n";
    for (const auto& [name, value] : start.headers)
      head_.append(name).append(": ").append(value).append("\r\n");
    head_ += "\r\n";
    if (chunked_)
      append_chunk(head_, start.first_bytes);
    else
      head_ += start.first_bytes;  // HTTP/1.0: the body runs until the connection closes
  }

  ~StreamSession() {
    // Destroyed without finish() only when the server stops with the stream open.
    if (!done_) {
      mailbox_.on_wake(nullptr);
      app_.close_stream(id_);
    }
  }

  void start() {
    // Runs on the connection's strand (we are inside the HTTP session's handler).
    stream_.expires_never();
    watch();
    writing_ = true;
    stream_.expires_after(app_.options().write_timeout);
    net::async_write(
        stream_, net::buffer(head_),
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_write(ec, 0); });
    // The wake-up runs on whichever thread sent the frame: it only posts to our strand.
    mailbox_.on_wake([weak = weak_from_this(), ex = executor_] {
      if (auto self = weak.lock()) net::post(ex, [self = std::move(self)] { self->flush(); });
    });
  }

 private:
  static void append_chunk(std::string& out, std::string_view bytes) {
    char size[24];
    int n = std::snprintf(size, sizeof size, "%zx\r\n", bytes.size());
    out.append(size, static_cast<std::size_t>(n)).append(bytes).append("\r\n");
  }

  /// Watches the read side: an SSE client sends nothing after its request, so any completion
  /// but data means it is gone.
  void watch() {
    stream_.async_read_some(net::buffer(discard_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec) return self->finish(false);
                              self->watch();
                            });
  }

  void flush() {
    if (done_) return;
    // Closed: by the broadcaster (disconnect) or by overflow (a client that does not read). Cut
    // at once, even with a write pending: the client replays what it missed when it reconnects.
    if (mailbox_.closed()) return finish(mailbox_.stats().overflowed);
    if (writing_) return;
    frames_.clear();
    if (mailbox_.take_all(frames_) == 0) return;
    std::size_t total = 0;
    for (const auto& f : frames_) total += f.size();
    buffers_.clear();
    if (chunked_) {
      int n = std::snprintf(chunk_size_.data(), chunk_size_.size(), "%zx\r\n", total);
      buffers_.emplace_back(chunk_size_.data(), static_cast<std::size_t>(n));
    }
    for (const auto& f : frames_) buffers_.emplace_back(f.data(), f.size());
    if (chunked_) buffers_.emplace_back("\r\n", 2);
    writing_frames_.swap(frames_);
    writing_ = true;
    auto& c = app_.counters();
    c.writes.fetch_add(1, std::memory_order_relaxed);
    c.frames_written.fetch_add(writing_frames_.size(), std::memory_order_relaxed);
    stream_.expires_after(app_.options().write_timeout);
    net::async_write(
        stream_, buffers_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_write(ec, 1); });
  }

  void on_write(beast::error_code ec, int) {
    writing_ = false;
    writing_frames_.clear();
    if (ec) return finish(ec == beast::error::timeout);
    flush();
  }

  void finish(bool cut) {
    if (done_) return;
    done_ = true;
    if (cut) app_.counters().streams_cut.fetch_add(1, std::memory_order_relaxed);
    mailbox_.on_wake(nullptr);
    mailbox_.close();
    app_.close_stream(id_);
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  const net::any_io_executor executor_;
  Slot slot_;
  App& app_;
  ssepp::Mailbox mailbox_;
  ssepp::ClientId id_;
  bool chunked_;
  bool writing_ = false;
  bool done_ = false;
  std::string head_;
  std::vector<ssepp::Frame> frames_;
  std::vector<ssepp::Frame> writing_frames_;
  std::vector<net::const_buffer> buffers_;
  std::array<char, 24> chunk_size_{};
  std::array<char, 512> discard_{};
};

// ---------------------------------------------------------------------------------------------
// One HTTP connection: keep-alive request/response loop until it becomes a stream.

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket&& socket, App& app)
      : stream_(std::move(socket)), slot_(app.counters()), app_(app) {}

  void run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_header(); });
  }

 private:
  void read_header() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(app_.options().header_limit));
    parser_->body_limit(app_.options().body_limit);
    stream_.expires_after(app_.options().request_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return fail(ec);
    if (parser_->is_done()) return on_request();
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      continue_ = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      net::async_write(stream_, net::buffer(*continue_),
                       [self = shared_from_this()](beast::error_code e, std::size_t) {
                         if (e) return self->close();
                         self->read_body();
                       });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
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
      ssepp::MailboxOptions mo;
      mo.max_frames = app_.options().queue_frames;
      mo.max_bytes = app_.options().queue_bytes;
      mo.overflow = ssepp::Overflow::close;
      // A client cut by the bound missed more than the bound: room for its whole replay
      // (at most the history, in frames the history already holds) until the first write.
      mo.replay_frames = app_.options().history;
      mo.replay_bytes = SIZE_MAX;
      ssepp::Mailbox mailbox(mo);
      auto opened = app_.open_stream(req, mailbox);
      if (auto* start = std::get_if<StreamStart>(&opened)) {
        auto stream = std::make_shared<StreamSession>(std::move(stream_), std::move(slot_), app_,
                                                      std::move(mailbox), std::move(*start),
                                                      msg.version() >= 11);
        stream->start();
        return;  // this session ends here; the stream owns the connection now
      }
      return respond(std::move(std::get<Response>(opened)), keep_alive);
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
    stream_.expires_after(app_.options().request_timeout);
    http::async_write(stream_, *res_,
                      [self = shared_from_this(), keep_alive](beast::error_code ec, std::size_t) {
                        if (ec) return self->close();
                        if (!keep_alive) return self->linger();
                        self->read_header();
                      });
  }

  /// Ends the connection after a response: send FIN, then read and drop what the client still
  /// sends (the rest of an oversized request) for a moment, so that closing with unread bytes
  /// does not reset the connection before the client has read our answer.
  void linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(2));
    drain(0);
  }

  void drain(std::size_t total) {
    stream_.async_read_some(net::buffer(discard_), [self = shared_from_this(), total](
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
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
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
  Listener(net::io_context& ioc, App& app)
      : ioc_(ioc), acceptor_(net::make_strand(ioc)), retry_(ioc), app_(app) {}

  tcp::endpoint open(const tcp::endpoint& ep) {
    acceptor_.open(ep.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(net::socket_base::max_listen_connections);
    return acceptor_.local_endpoint();
  }

  void accept() {
    acceptor_.async_accept(net::make_strand(ioc_),
                           [self = shared_from_this()](beast::error_code ec, tcp::socket s) {
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
    if (c.connections_open.load(std::memory_order_relaxed) >= app_.options().max_connections) {
      c.connections_refused.fetch_add(1, std::memory_order_relaxed);
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<HttpSession>(std::move(socket), app_)->run();
    }
    accept();
  }

  net::io_context& ioc_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_;
  App& app_;
};

/// Calls app.tick() every 100 ms: heartbeats, history expiry, the price feed, job progress.
class Ticker : public std::enable_shared_from_this<Ticker> {
 public:
  Ticker(net::io_context& ioc, App& app) : timer_(net::make_strand(ioc)), app_(app) {}
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
  net::io_context ioc(static_cast<int>(opts.threads));
  auto listener = std::make_shared<Listener>(ioc, app);
  tcp::endpoint bound;
  try {
    bound = listener->open(tcp::endpoint(net::ip::make_address(opts.host), opts.port));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ssepp-demo: cannot listen on %s:%u: %s\n", opts.host.c_str(), opts.port,
                 e.what());
    return 1;
  }
  listener->accept();
  auto ticker = std::make_shared<Ticker>(ioc, app);
  ticker->start();

  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int) {
    listener->stop();
    ticker->stop();
    ioc.stop();
  });

  std::string host = bound.address().is_v6() ? "[" + bound.address().to_string() + "]"
                                             : bound.address().to_string();
  std::printf("ssepp-demo listening on http://%s:%u/\n", host.c_str(),
              static_cast<unsigned>(bound.port()));
  std::fflush(stdout);

  std::vector<std::thread> extra;
  for (unsigned i = 1; i < opts.threads; ++i) extra.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : extra) t.join();
  return 0;
}

}  // namespace demo
