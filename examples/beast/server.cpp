#include "server.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <sys/resource.h>

#include <array>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace demo {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

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
// One event-loop thread. Each has an io_context of its own (no strands: every connection lives on
// one loop), and collects the streams whose mailboxes woke up. It writes them only once it has run
// every handler that was ready, so when publishes arrive faster than one at a time (a burst, a
// busy moment), each stream gets all of them in one system call instead of one call per event.
// An idle server still writes at once: the loop is ready again right after the publish.

class StreamSession;

class Loop {
 public:
  Loop() : work_(ioc_.get_executor()) {}
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  net::io_context& context() noexcept { return ioc_; }

  /// Queues `stream` for the next flush. From any thread (a mailbox wakes on the sender's).
  void wake(std::shared_ptr<StreamSession> stream);

  /// Runs handlers and flushes woken streams until stop(). On the thread that owns the loop.
  void run();

  /// Ends run(); from any thread.
  void stop() { ioc_.stop(); }

 private:
  void flush();

  // The context first: the streams below hold sockets of it and must go before it.
  net::io_context ioc_{1};
  net::executor_work_guard<net::io_context::executor_type> work_;
  std::vector<std::shared_ptr<StreamSession>> ready_, flushing_;  // this loop's thread only
  std::mutex remote_mutex_;
  std::vector<std::shared_ptr<StreamSession>> remote_;  // woken from other threads
  bool remote_posted_ = false;
};

thread_local Loop* this_thread_loop = nullptr;

// ---------------------------------------------------------------------------------------------
// One event stream: a Mailbox the broadcaster fills, written by its loop. A flush takes every
// queued frame and writes them with one non-blocking gather write (chunk framing around them);
// only when the socket is full does the stream wait for it to drain, and only then is a write
// timeout armed, so a stream that keeps up costs no timer and no completion handler.

class StreamSession : public std::enable_shared_from_this<StreamSession> {
 public:
  StreamSession(tcp::socket&& socket, Loop& loop, Slot slot, App& app, ssepp::Mailbox mailbox,
                StreamStart start, bool chunked)
      : socket_(std::move(socket)),
        loop_(loop),
        timer_(socket_.get_executor()),
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

  /// On the loop's thread: writes the head, then whatever the mailbox holds.
  void start() {
    beast::error_code ec;
    socket_.non_blocking(true, ec);
    if (ec) return finish(false);
    watch();
    buffers_.emplace_back(head_.data(), head_.size());
    // The wake-up runs on whichever thread sent the frame: it only hands us to our loop.
    mailbox_.on_wake([weak = weak_from_this(), loop = &loop_] {
      if (auto self = weak.lock()) loop->wake(std::move(self));
    });
    write();
  }

  /// On the loop's thread, for a wake-up: writes what is queued, or ends a closed stream.
  void flush() {
    queued_ = false;
    if (done_) return;
    // Closed: by the broadcaster (disconnect) or by overflow (a client that does not read). Cut
    // at once, even with bytes unwritten: the client replays what it missed when it reconnects.
    if (mailbox_.closed()) return finish(mailbox_.stats().overflowed);
    if (!waiting_) write();
  }

  /// Marks the stream queued for a flush; false when it already is. The loop's thread only.
  bool mark_queued() noexcept { return !std::exchange(queued_, true); }

 private:
  static void append_chunk(std::string& out, std::string_view bytes) {
    char size[24];
    int n = std::snprintf(size, sizeof size, "%zx\r\n", bytes.size());
    out.append(size, static_cast<std::size_t>(n)).append(bytes).append("\r\n");
  }

  /// Watches the read side: an SSE client sends nothing after its request, so any completion
  /// but data means it is gone.
  void watch() {
    socket_.async_read_some(net::buffer(discard_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (self->done_) return;
                              if (ec) return self->finish(false);
                              self->watch();
                            });
  }

  /// Writes until the mailbox is empty or the socket is full.
  void write() {
    for (;;) {
      if (next_ == buffers_.size() && !take()) return;
      beast::error_code ec;
      const std::size_t n = socket_.write_some(
          beast::span<const net::const_buffer>(buffers_.data() + next_, buffers_.size() - next_),
          ec);
      if (ec == net::error::would_block || ec == net::error::try_again) return wait_writable();
      if (ec) return finish(false);
      consume(n);
    }
  }

  /// Takes every queued frame into one buffer sequence (one chunk); false when none.
  bool take() {
    frames_.clear();
    buffers_.clear();
    next_ = 0;
    if (!head_.empty()) std::string().swap(head_);  // written: an idle stream keeps no bytes
    if (mailbox_.take_all(frames_) == 0) return false;
    std::size_t total = 0;
    for (const auto& f : frames_) total += f.size();
    if (chunked_) {
      int n = std::snprintf(chunk_size_.data(), chunk_size_.size(), "%zx\r\n", total);
      buffers_.emplace_back(chunk_size_.data(), static_cast<std::size_t>(n));
    }
    for (const auto& f : frames_) buffers_.emplace_back(f.data(), f.size());
    if (chunked_) buffers_.emplace_back("\r\n", 2);
    auto& c = app_.counters();
    c.writes.fetch_add(1, std::memory_order_relaxed);
    c.frames_written.fetch_add(frames_.size(), std::memory_order_relaxed);
    return true;
  }

  /// Drops `n` written bytes from the front of the buffer sequence.
  void consume(std::size_t n) {
    while (n > 0 && next_ < buffers_.size()) {
      auto& b = buffers_[next_];
      if (n < b.size()) {
        b += n;
        return;
      }
      n -= b.size();
      ++next_;
    }
  }

  /// The socket is full: wait until it drains, cutting the stream if that takes longer than the
  /// write timeout (a client that stopped reading).
  void wait_writable() {
    waiting_ = true;
    socket_.async_wait(tcp::socket::wait_write, [self = shared_from_this()](beast::error_code ec) {
      self->waiting_ = false;
      if (self->done_) return;
      if (ec) return self->finish(false);
      self->timer_.cancel();
      self->write();
    });
    timer_.expires_after(app_.options().write_timeout);
    timer_.async_wait([weak = weak_from_this()](beast::error_code ec) {
      auto self = weak.lock();
      if (!ec && self && self->waiting_ && !self->done_) self->finish(true);
    });
  }

  void finish(bool cut) {
    if (done_) return;
    done_ = true;
    if (cut) app_.counters().streams_cut.fetch_add(1, std::memory_order_relaxed);
    mailbox_.on_wake(nullptr);
    mailbox_.close();
    app_.close_stream(id_);
    beast::error_code ignored;
    timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  tcp::socket socket_;
  Loop& loop_;
  net::steady_timer timer_;
  Slot slot_;
  App& app_;
  ssepp::Mailbox mailbox_;
  ssepp::ClientId id_;
  bool chunked_;
  bool queued_ = false;   // in the loop's ready list
  bool waiting_ = false;  // for the socket to drain
  bool done_ = false;
  std::string head_;
  std::vector<ssepp::Frame> frames_;  // being written; alive until written
  std::vector<net::const_buffer> buffers_;
  std::size_t next_ = 0;  // first buffer of buffers_ not fully written
  std::array<char, 24> chunk_size_{};
  std::array<char, 64> discard_{};
};

void Loop::wake(std::shared_ptr<StreamSession> stream) {
  if (this_thread_loop == this) {
    if (stream->mark_queued()) ready_.push_back(std::move(stream));
    return;
  }
  bool post = false;
  {
    std::lock_guard<std::mutex> lock(remote_mutex_);
    remote_.push_back(std::move(stream));
    post = !std::exchange(remote_posted_, true);
  }
  if (post) {
    net::post(ioc_, [this] {
      std::vector<std::shared_ptr<StreamSession>> woken;
      {
        std::lock_guard<std::mutex> lock(remote_mutex_);
        woken.swap(remote_);
        remote_posted_ = false;
      }
      for (auto& s : woken)
        if (s->mark_queued()) ready_.push_back(std::move(s));
    });
  }
}

void Loop::run() {
  this_thread_loop = this;
  // A bounded batch of ready handlers, then the flush: under a flood of requests the streams
  // still get written every few thousand handlers.
  constexpr int batch = 4096;
  while (ioc_.run_one() != 0) {
    for (int i = 1; i < batch && ioc_.poll_one() != 0; ++i) {
    }
    flush();
  }
  ready_.clear();
  {
    std::lock_guard<std::mutex> lock(remote_mutex_);
    remote_.clear();
  }
  this_thread_loop = nullptr;
}

void Loop::flush() {
  while (!ready_.empty()) {
    flushing_.swap(ready_);
    for (auto& s : flushing_) s->flush();
    flushing_.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// One HTTP connection: keep-alive request/response loop until it becomes a stream.

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket&& socket, Loop& loop, App& app)
      : stream_(std::move(socket)), loop_(loop), slot_(app.counters()), app_(app) {}

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
        stream_.expires_never();
        auto stream = std::make_shared<StreamSession>(
            stream_.release_socket(), loop_, std::move(slot_), app_, std::move(mailbox),
            std::move(*start), msg.version() >= 11);
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
  Loop& loop_;
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
  Listener(std::vector<std::unique_ptr<Loop>>& loops, App& app)
      : loops_(loops), acceptor_(loops[0]->context()), retry_(loops[0]->context()), app_(app) {}

  tcp::endpoint open(const tcp::endpoint& ep) {
    acceptor_.open(ep.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(net::socket_base::max_listen_connections);
    return acceptor_.local_endpoint();
  }

  void accept() {
    Loop& loop = *loops_[next_++ % loops_.size()];
    acceptor_.async_accept(loop.context(), [self = shared_from_this(), &loop](
                                               beast::error_code ec, tcp::socket s) {
      self->on_accept(ec, std::move(s), loop);
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
  void on_accept(beast::error_code ec, tcp::socket socket, Loop& loop) {
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
      std::make_shared<HttpSession>(std::move(socket), loop, app_)->run();
    }
    accept();
  }

  std::vector<std::unique_ptr<Loop>>& loops_;
  std::size_t next_ = 0;
  tcp::acceptor acceptor_;
  net::steady_timer retry_;
  App& app_;
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
  std::vector<std::unique_ptr<Loop>> loops;
  for (unsigned i = 0; i < opts.threads; ++i) loops.push_back(std::make_unique<Loop>());
  net::io_context& main = loops[0]->context();
  auto listener = std::make_shared<Listener>(loops, app);
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

  net::signal_set signals(main, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int) {
    listener->stop();
    ticker->stop();
    for (auto& loop : loops) loop->stop();
  });

  std::string host = bound.address().is_v6() ? "[" + bound.address().to_string() + "]"
                                             : bound.address().to_string();
  std::printf("ssepp-demo listening on http://%s:%u/\n", host.c_str(),
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
