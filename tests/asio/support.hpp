// Test support for ssepp::asio: io_context threads, a Beast test server that hands requests to
// EventStreams (plain or TLS), and a client on real loopback sockets that decodes what arrives
// (HTTP head, chunked body, SSE events through ssepp::Parser).
#pragma once

#include <ssepp/asio.hpp>
#include <ssepp/parser.hpp>
#include <ssepp/ssepp.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace asio_test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/// Polls `cond` until it holds or `limit` passes; returns whether it holds.
template <class F>
bool eventually(F cond, std::chrono::milliseconds limit = 20s) {
  const auto deadline = Clock::now() + limit;
  while (!cond()) {
    if (Clock::now() > deadline) return cond();
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

/// An io_context run by `threads` threads until destroyed.
class Loop {
 public:
  explicit Loop(int threads = 1) : ioc_(threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
  }
  ~Loop() {
    work_.reset();
    ioc_.stop();
    for (auto& t : threads_) t.join();
  }
  net::io_context& ioc() { return ioc_; }
  /// Runs `f` on the loop and waits for it.
  template <class F>
  void sync(F f) {
    std::promise<void> done;
    net::post(ioc_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

 private:
  net::io_context ioc_;
  net::executor_work_guard<net::io_context::executor_type> work_{ioc_.get_executor()};
  std::vector<std::thread> threads_;
};

/// A self-signed certificate and key for "localhost", made once per process with the openssl
/// command in a temporary directory.
struct Certificate {
  std::string dir, cert, key;
  static const Certificate& get() {
    static const Certificate c = [] {
      Certificate r;
      char tmpl[] = "/tmp/ssepp-asio-test-XXXXXX";
      const char* d = ::mkdtemp(tmpl);
      if (!d) std::abort();
      r.dir = d;
      r.cert = r.dir + "/c";
      r.key = r.dir + "/k";
      std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                        "-days 1 -subj /CN=localhost -keyout " + r.key + " -out " + r.cert +
                        " 2>/dev/null";
      if (std::system(cmd.c_str()) != 0) {
        std::fprintf(stderr, "openssl req failed\n");
        std::abort();
      }
      return r;
    }();
    return c;
  }
};

inline std::shared_ptr<ssl::context> server_tls() {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->use_certificate_chain_file(Certificate::get().cert);
  ctx->use_private_key_file(Certificate::get().key, ssl::context::pem);
  return ctx;
}

inline std::shared_ptr<ssl::context> client_tls() {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->load_verify_file(Certificate::get().cert);
  ctx->set_verify_mode(ssl::verify_peer);
  return ctx;
}

/// Accepts on 127.0.0.1 (free port), reads one request per connection with Beast and hands it
/// to `sse.serve` with the ConnectOptions `who(req)` gives (default: none). TLS when `tls`.
class Server {
 public:
  using Request = http::request<http::empty_body>;

  Server(net::io_context& ioc, ssepp::asio::EventStreams& sse,
         std::shared_ptr<ssl::context> tls = nullptr, bool strands = false)
      : ioc_(ioc), acceptor_(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)),
        sse_(sse), tls_(std::move(tls)), strands_(strands) {
    accept();
  }
  ~Server() {
    std::promise<void> done;
    net::post(acceptor_.get_executor(), [&] {
      beast::error_code ignored;
      acceptor_.close(ignored);
      done.set_value();
    });
    done.get_future().wait();
  }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }

  std::function<ssepp::ConnectOptions(const Request&)> who;
  std::function<void(ssepp::asio::StreamStart&)> on_open;
  int sndbuf = 0;  // SO_SNDBUF of accepted sockets, when not 0
  /// Hand the streams over as beast::tcp_stream (under TLS too) whose request read had this
  /// timeout, instead of a bare socket: the stream must not inherit the timeout.
  std::optional<std::chrono::milliseconds> tcp_stream_timeout;

  /// Results of serve(), in order.
  std::vector<ssepp::Result<ssepp::ClientId>> results() {
    std::lock_guard<std::mutex> lock(m_);
    return results_;
  }
  /// The id of the n-th served stream (waits for it); 0 when it failed or never came.
  ssepp::ClientId client(std::size_t n = 0) {
    eventually([&] { return results().size() > n; });
    auto r = results();
    return r.size() > n && r[n] ? *r[n] : 0;
  }

 private:
  template <class Stream>
  struct Conn {
    explicit Conn(Stream&& s) : stream(std::move(s)) {}
    Stream stream;
    beast::flat_buffer buffer;
    Request req;
  };

  void accept() {
    auto on_accept = [this](beast::error_code ec, tcp::socket socket) {
      if (ec) return;
      if (sndbuf) socket.set_option(net::socket_base::send_buffer_size(sndbuf));
      if (tls_ && tcp_stream_timeout) {
        auto c = std::make_shared<Conn<ssl::stream<beast::tcp_stream>>>(
            ssl::stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), *tls_));
        beast::get_lowest_layer(c->stream).expires_after(*tcp_stream_timeout);
        c->stream.async_handshake(ssl::stream_base::server, [this, c](beast::error_code e) {
          if (!e) read(c);
        });
      } else if (tls_) {
        auto c = std::make_shared<Conn<ssl::stream<tcp::socket>>>(
            ssl::stream<tcp::socket>(std::move(socket), *tls_));
        c->stream.async_handshake(ssl::stream_base::server, [this, c](beast::error_code e) {
          if (!e) read(c);
        });
      } else if (tcp_stream_timeout) {
        auto c = std::make_shared<Conn<beast::tcp_stream>>(beast::tcp_stream(std::move(socket)));
        c->stream.expires_after(*tcp_stream_timeout);
        read(c);
      } else {
        read(std::make_shared<Conn<tcp::socket>>(std::move(socket)));
      }
      accept();
    };
    if (strands_)
      acceptor_.async_accept(net::make_strand(ioc_), on_accept);
    else
      acceptor_.async_accept(on_accept);
  }

  template <class C>
  void read(std::shared_ptr<C> c) {
    http::async_read(c->stream, c->buffer, c->req, [this, c](beast::error_code ec, std::size_t) {
      if (ec) return;
      ssepp::ConnectOptions w = who ? who(c->req) : ssepp::ConnectOptions{};
      auto r = sse_.serve(std::move(c->stream), c->req, std::move(w), on_open);
      std::lock_guard<std::mutex> lock(m_);
      results_.push_back(r);
    });
  }

  net::io_context& ioc_;
  tcp::acceptor acceptor_;
  ssepp::asio::EventStreams& sse_;
  std::shared_ptr<ssl::context> tls_;
  bool strands_;
  std::mutex m_;
  std::vector<ssepp::Result<ssepp::ClientId>> results_;
};

/// One received event.
struct Received {
  std::string type, data, id;
};

/// What a client saw, decoded.
struct Seen {
  std::string raw;   // every byte received
  bool head_done = false;
  int status = 0;
  std::string head;  // status line and headers
  bool chunked = false;
  std::string body;  // the body, de-chunked
  bool final_chunk = false;
  std::vector<Received> events;
  std::vector<std::string> comments;
  bool closed = false;  // EOF, reset or error
  beast::error_code error;

  bool has_header(std::string_view line) const { return head.find(line) != std::string::npos; }
};

/// An HTTP client on a loopback socket (TLS when `tls`): connects and sends its request from the
/// calling thread, then reads on `ioc` once `read()` is called, decoding as bytes arrive.
class Client {
 public:
  Client(net::io_context& ioc, unsigned short port, std::string request,
         std::shared_ptr<ssl::context> tls = nullptr, int rcvbuf = 0)
      : tls_(std::move(tls)), socket_(ioc) {
    socket_.open(tcp::v4());
    if (rcvbuf) socket_.set_option(net::socket_base::receive_buffer_size(rcvbuf));
    socket_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    if (tls_) {
      ssl_.emplace(std::move(socket_), *tls_);
      ssl_->handshake(ssl::stream_base::client);
      net::write(*ssl_, net::buffer(request));
    } else {
      net::write(socket_, net::buffer(request));
    }
  }
  ~Client() { close(); }

  /// A GET request for `target` with `headers` ("Name: value\r\n" lines).
  static std::string get(std::string target = "/events", std::string headers = {},
                         std::string version = "HTTP/1.1") {
    return "GET " + target + " " + version + "\r\nHost: localhost\r\nAccept: text/event-stream\r\n" +
           headers + "\r\n";
  }

  /// Starts reading (on the io_context).
  void read() {
    net::post(executor(), [this] { read_some(); });
  }

  /// Waits until `pred(seen)` holds; returns whether it did.
  bool wait(std::function<bool(const Seen&)> pred, std::chrono::milliseconds limit = 20s) {
    std::unique_lock<std::mutex> lock(m_);
    return cv_.wait_for(lock, limit, [&] { return pred(seen_); });
  }
  bool wait_events(std::size_t n, std::chrono::milliseconds limit = 20s) {
    return wait([n](const Seen& s) { return s.events.size() >= n; }, limit);
  }
  bool wait_closed(std::chrono::milliseconds limit = 20s) {
    return wait([](const Seen& s) { return s.closed; }, limit);
  }
  Seen seen() {
    std::lock_guard<std::mutex> lock(m_);
    return seen_;
  }

  /// Closes (FIN) or resets (RST: SO_LINGER 0) the connection, on the io_context.
  void close(bool reset = false) {
    std::promise<void> done;
    net::post(executor(), [&] {
      auto& s = lowest();
      beast::error_code ignored;
      if (s.is_open()) {
        if (reset) s.set_option(net::socket_base::linger(true, 0), ignored);
        else s.shutdown(tcp::socket::shutdown_both, ignored);
        s.close(ignored);
      }
      done.set_value();
    });
    done.get_future().wait();
  }

 private:
  tcp::socket& lowest() { return ssl_ ? ssl_->next_layer() : socket_; }
  net::any_io_executor executor() { return ssl_ ? ssl_->get_executor() : socket_.get_executor(); }

  void read_some() {
    auto h = [this](beast::error_code ec, std::size_t n) {
      {
        std::lock_guard<std::mutex> lock(m_);
        if (n) decode(std::string_view(buf_, n));
        if (ec) {
          seen_.closed = true;
          seen_.error = ec;
        }
      }
      cv_.notify_all();
      if (!ec) read_some();
    };
    if (ssl_) ssl_->async_read_some(net::buffer(buf_), h);
    else socket_.async_read_some(net::buffer(buf_), h);
  }

  void decode(std::string_view bytes) {
    seen_.raw.append(bytes);
    if (!seen_.head_done) {
      auto end = seen_.raw.find("\r\n\r\n");
      if (end == std::string::npos) return;
      seen_.head_done = true;
      seen_.head = seen_.raw.substr(0, end + 2);
      seen_.status = std::atoi(seen_.head.c_str() + 9);
      seen_.chunked = seen_.has_header("Transfer-Encoding: chunked\r\n");
      pos_ = end + 4;
    }
    if (!seen_.chunked) {
      feed(std::string_view(seen_.raw).substr(pos_));
      pos_ = seen_.raw.size();
      return;
    }
    for (;;) {  // de-chunk what is complete
      if (seen_.final_chunk) return;
      auto line = seen_.raw.find("\r\n", pos_);
      if (line == std::string::npos) return;
      const std::size_t size = std::strtoul(seen_.raw.c_str() + pos_, nullptr, 16);
      if (seen_.raw.size() < line + 2 + size + 2) return;
      if (size == 0) {
        seen_.final_chunk = true;
        pos_ = line + 4;
        return;
      }
      feed(std::string_view(seen_.raw).substr(line + 2, size));
      pos_ = line + 2 + size + 2;
    }
  }

  void feed(std::string_view body) {
    seen_.body.append(body);
    struct Handler {
      Seen* s;
      void on_event(const ssepp::EventView& e) const {
        s->events.push_back({std::string(e.type), std::string(e.data), std::string(e.id)});
      }
      void on_comment(std::string_view c) const { s->comments.emplace_back(c); }
    };
    (void)parser_.feed(body, Handler{&seen_});
  }

  std::shared_ptr<ssl::context> tls_;
  tcp::socket socket_;
  std::optional<ssl::stream<tcp::socket>> ssl_;
  char buf_[16384];
  std::mutex m_;
  std::condition_variable cv_;
  Seen seen_;
  std::size_t pos_ = 0;
  ssepp::Parser parser_;
};

/// Records every stream ending (the `on_end` of ServeOptions).
struct Endings {
  struct One {
    ssepp::ClientId id;
    ssepp::asio::EndReason reason;
    std::error_code error;
    Clock::time_point at;
  };
  std::mutex m;
  std::vector<One> all;
  std::function<void(ssepp::ClientId, ssepp::asio::EndReason, std::error_code)> hook() {
    return [this](ssepp::ClientId id, ssepp::asio::EndReason r, std::error_code ec) {
      std::lock_guard<std::mutex> lock(m);
      all.push_back({id, r, ec, Clock::now()});
    };
  }
  std::optional<One> of(ssepp::ClientId id) {
    std::lock_guard<std::mutex> lock(m);
    for (auto& o : all)
      if (o.id == id) return o;
    return std::nullopt;
  }
  /// Waits for `id`'s ending and returns its reason.
  std::optional<One> wait(ssepp::ClientId id, std::chrono::milliseconds limit = 20s) {
    eventually([&] { return of(id).has_value(); }, limit);
    return of(id);
  }
};

}  // namespace asio_test
