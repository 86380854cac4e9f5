// Test support for ssepp::asio::EventClient: scripted HTTP(S) servers on loopback (one blocking
// thread per connection, so a test writes exactly the bytes it wants: events, silence, garbage),
// a tiny CONNECT proxy, and a CA with server certificates made by the openssl command.
#pragma once

#include <ssepp/asio/client.hpp>

#include "../support/catch.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

namespace client_test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/// Runs `cmd` with /bin/sh; aborts when it fails.
inline void run(const std::string& cmd) {
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "failed: %s\n", cmd.c_str());
    std::abort();
  }
}

/// A test CA, a server certificate it signed for localhost and 127.0.0.1, and one it signed for
/// another name only; made once per process in a temporary directory.
struct Pki {
  std::string dir, ca, cert, key, other_cert, other_key;
  static const Pki& get() {
    static const Pki p = [] {
      Pki r;
      char tmpl[] = "/tmp/ssepp-client-test-XXXXXX";
      const char* d = ::mkdtemp(tmpl);
      if (!d) std::abort();
      r.dir = d;
      r.ca = r.dir + "/ca.pem";
      r.cert = r.dir + "/srv.pem";
      r.key = r.dir + "/srv.key";
      r.other_cert = r.dir + "/other.pem";
      r.other_key = r.dir + "/other.key";
      const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
      run("cd " + r.dir + " && openssl req -x509" + ec +
          "-days 1 -subj /CN=ssepp-test-ca -keyout ca.key -out ca.pem 2>/dev/null");
      auto issue = [&](const std::string& name, const std::string& san) {
        run("cd " + r.dir + " && openssl req" + ec + "-subj /CN=" + name + " -keyout " + name +
            ".key -out " + name + ".csr 2>/dev/null && printf 'subjectAltName=" + san + "\\n' > " +
            name + ".ext && openssl x509 -req -in " + name + ".csr -CA ca.pem -CAkey ca.key " +
            "-CAcreateserial -days 1 -extfile " + name + ".ext -out " + name + ".pem 2>/dev/null");
      };
      issue("srv", "DNS:localhost,IP:127.0.0.1");
      issue("other", "DNS:other.example");
      return r;
    }();
    return p;
  }
};

/// One request as the server read it.
struct SeenRequest {
  std::string method, target, body;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

/// One connection of a ScriptServer, given to the script after the request was read.
class Exchange {
 public:
  SeenRequest req;
  std::size_t index = 0;  // 0 for the server's first request

  /// Writes raw bytes; false once the client is gone.
  bool write(const std::string& bytes) {
    beast::error_code ec;
    if (tls_) net::write(*tls_, net::buffer(bytes), ec);
    else net::write(sock_, net::buffer(bytes), ec);
    if (!ec) written_ += bytes.size();
    return !ec;
  }
  std::size_t written() const { return written_; }
  /// A 200 text/event-stream head, chunked unless `chunked` is false (then the body ends at
  /// the close).
  bool stream_head(bool chunked = true) {
    return write(std::string("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n") +
                 (chunked ? "Transfer-Encoding: chunked\r\n" : "Connection: close\r\n") + "\r\n");
  }
  /// One HTTP/1.1 chunk.
  bool chunk(const std::string& data) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    return write(size + data + "\r\n");
  }
  bool last_chunk() { return write("0\r\n\r\n"); }
  /// Blocks until the client closes (or `limit` passes); true when it closed.
  bool wait_closed(std::chrono::milliseconds limit = 20s) {
    timeval tv{};
    tv.tv_sec = static_cast<long>(limit.count() / 1000);
    tv.tv_usec = static_cast<long>((limit.count() % 1000) * 1000);
    ::setsockopt(sock().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    for (;;) {
      const ::ssize_t n = ::recv(sock().native_handle(), buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

  Exchange(tcp::socket s, ssl::context* tls) : sock_(std::move(s)) {
    if (tls) tls_ = std::make_unique<ssl::stream<tcp::socket&>>(sock_, *tls);
  }
  bool handshake() {
    if (!tls_) return true;
    beast::error_code ec;
    tls_->handshake(ssl::stream_base::server, ec);
    return !ec;
  }
  bool read_request() {
    beast::flat_buffer buf;
    http::request<http::string_body> r;
    beast::error_code ec;
    if (tls_) http::read(*tls_, buf, r, ec);
    else http::read(sock_, buf, r, ec);
    if (ec) return false;
    req.method = std::string(r.method_string());
    req.target = std::string(r.target());
    req.body = r.body();
    for (const auto& f : r) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req.headers[name] = std::string(f.value());
    }
    return true;
  }
  tcp::socket& sock() { return sock_; }

 private:
  tcp::socket sock_;
  std::unique_ptr<ssl::stream<tcp::socket&>> tls_;
  std::size_t written_ = 0;
};

/// An HTTP(S) server on 127.0.0.1 (free port): each connection on its own thread reads one
/// request, records it, and runs `script` (which writes the response and returns; the
/// connection is then closed).
class ScriptServer {
 public:
  using Script = std::function<void(Exchange&)>;
  enum class Tls { none, good, other_name };

  /// `port` 0: a free one; else that port (SO_REUSEADDR: a server restarted on its old port).
  explicit ScriptServer(Script script, Tls tls = Tls::none, unsigned short port = 0)
      : script_(std::move(script)),
        acceptor_(ioc_, tcp::endpoint(net::ip::make_address("127.0.0.1"), port)) {
    if (tls != Tls::none) {
      const Pki& p = Pki::get();
      tls_ = std::make_unique<ssl::context>(ssl::context::tls_server);
      tls_->use_certificate_chain_file(tls == Tls::good ? p.cert : p.other_cert);
      tls_->use_private_key_file(tls == Tls::good ? p.key : p.other_key, ssl::context::pem);
    }
    accepter_ = std::thread([this] { accept_loop(); });
  }
  ~ScriptServer() {
    stop_ = true;
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    accepter_.join();
    {
      std::lock_guard<std::mutex> lock(m_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : threads_) t.join();
  }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  std::string url(const std::string& target = "/events") const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port()) + target;
  }
  std::vector<SeenRequest> requests() {
    std::lock_guard<std::mutex> lock(m_);
    return requests_;
  }
  std::size_t connections() const { return connections_.load(); }
  /// Waits until `n` requests were read.
  bool wait_requests(std::size_t n, std::chrono::milliseconds limit = 20s) {
    std::unique_lock<std::mutex> lock(m_);
    return cv_.wait_for(lock, limit, [&] { return requests_.size() >= n; });
  }

 private:
  void accept_loop() {
    for (;;) {
      beast::error_code ec;
      tcp::socket s(ioc_);
      acceptor_.accept(s, ec);
      if (ec || stop_) return;
      ++connections_;
      std::lock_guard<std::mutex> lock(m_);
      fds_.push_back(s.native_handle());
      threads_.emplace_back([this, s = std::move(s)]() mutable { serve(std::move(s)); });
    }
  }
  void serve(tcp::socket s) {
    Exchange x(std::move(s), tls_.get());
    if (!x.handshake() || !x.read_request()) return forget(x.sock());
    {
      std::lock_guard<std::mutex> lock(m_);
      x.index = requests_.size();
      requests_.push_back(x.req);
    }
    cv_.notify_all();
    script_(x);
    forget(x.sock());
  }
  void forget(tcp::socket& s) {
    std::lock_guard<std::mutex> lock(m_);
    for (auto it = fds_.begin(); it != fds_.end(); ++it)
      if (*it == s.native_handle()) {
        fds_.erase(it);
        break;
      }
    beast::error_code ignored;
    s.shutdown(tcp::socket::shutdown_both, ignored);
    s.close(ignored);
  }

  Script script_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::unique_ptr<ssl::context> tls_;
  std::thread accepter_;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> connections_{0};
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<SeenRequest> requests_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
};

/// A CONNECT proxy on 127.0.0.1: tunnels each CONNECT to its target, records the targets.
class Proxy {
 public:
  Proxy() : acceptor_(ioc_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    accepter_ = std::thread([this] { accept_loop(); });
  }
  ~Proxy() {
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    accepter_.join();
    {
      std::lock_guard<std::mutex> lock(m_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : threads_) t.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()); }
  std::vector<std::string> targets() {
    std::lock_guard<std::mutex> lock(m_);
    return targets_;
  }

 private:
  void accept_loop() {
    for (;;) {
      beast::error_code ec;
      auto s = std::make_shared<tcp::socket>(ioc_);
      acceptor_.accept(*s, ec);
      if (ec) return;
      std::lock_guard<std::mutex> lock(m_);
      fds_.push_back(s->native_handle());
      threads_.emplace_back([this, s] { serve(s); });
    }
  }
  void serve(std::shared_ptr<tcp::socket> s) {
    auto up = std::make_shared<tcp::socket>(ioc_);
    tunnel(*s, *up);
    std::lock_guard<std::mutex> lock(m_);
    for (tcp::socket* sock : {s.get(), up.get()}) {
      if (!sock->is_open()) continue;
      for (auto it = fds_.begin(); it != fds_.end(); ++it)
        if (*it == sock->native_handle()) {
          fds_.erase(it);
          break;
        }
      beast::error_code ignored;
      sock->close(ignored);
    }
  }
  void tunnel(tcp::socket& s0, tcp::socket& up0) {
    tcp::socket* s = &s0;
    tcp::socket* up = &up0;
    beast::flat_buffer buf;
    http::request_parser<http::empty_body> parser;
    beast::error_code ec;
    http::read_header(*s, buf, parser, ec);
    if (ec) return;
    const auto& r = parser.get();
    const std::string target(r.target());
    {
      std::lock_guard<std::mutex> lock(m_);
      targets_.push_back(std::string(r.method_string()) + " " + target);
    }
    const auto colon = target.rfind(':');
    if (r.method() != http::verb::connect || colon == std::string::npos) {
      net::write(*s, net::buffer(std::string("HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")), ec);
      return;
    }
    up->connect(tcp::endpoint(net::ip::make_address(target.substr(0, colon)),
                              static_cast<unsigned short>(std::stoi(target.substr(colon + 1)))),
                ec);
    if (ec) {
      net::write(*s, net::buffer(std::string("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")), ec);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(m_);
      fds_.push_back(up->native_handle());
    }
    net::write(*s, net::buffer(std::string("HTTP/1.1 200 Connection established\r\n\r\n")), ec);
    auto pump = [](tcp::socket& from, tcp::socket& to) {
      char b[16384];
      for (;;) {
        const ::ssize_t n = ::recv(from.native_handle(), b, sizeof b, 0);
        if (n <= 0) break;
        beast::error_code e;
        net::write(to, net::buffer(b, static_cast<std::size_t>(n)), e);
        if (e) break;
      }
      ::shutdown(to.native_handle(), SHUT_RDWR);
      ::shutdown(from.native_handle(), SHUT_RDWR);
    };
    std::thread back([&] { pump(*up, *s); });
    pump(*s, *up);
    back.join();
  }

  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::thread accepter_;
  std::mutex m_;
  std::vector<std::string> targets_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
};

/// What an EventClient did, recorded by its handlers (on the client's executor).
struct Record {
  struct Ev {
    std::string type, data, id;
  };
  std::mutex m;
  std::condition_variable cv;
  std::vector<Ev> events;
  std::vector<std::string> comments;
  std::vector<std::error_code> reconnects;  // why each attempt ended before a reconnection
  bool closed = false;
  int closes = 0;
  std::error_code close_error;

  ssepp::asio::EventHandlers handlers() {
    ssepp::asio::EventHandlers h;
    h.on_event = [this](const ssepp::EventView& e) {
      note([&] { events.push_back({std::string(e.type), std::string(e.data), std::string(e.id)}); });
    };
    h.on_comment = [this](std::string_view c) { note([&] { comments.emplace_back(c); }); };
    h.on_reconnect = [this](std::chrono::milliseconds, std::error_code why) {
      note([&] { reconnects.push_back(why); });
    };
    h.on_close = [this](std::error_code ec) {
      note([&] {
        closed = true;
        ++closes;
        close_error = ec;
      });
    };
    return h;
  }
  template <class F>
  void note(F f) {
    std::lock_guard<std::mutex> lock(m);  // notified under the lock: a waiter may destroy us
    f();
    cv.notify_all();
  }
  template <class P>
  bool wait(P pred, std::chrono::milliseconds limit = 20s) {
    std::unique_lock<std::mutex> lock(m);
    return cv.wait_for(lock, limit, [&] { return pred(); });
  }
  bool wait_closed(std::chrono::milliseconds limit = 20s) {
    return wait([&] { return closed; }, limit);
  }
  bool wait_events(std::size_t n, std::chrono::milliseconds limit = 20s) {
    return wait([&] { return events.size() >= n; }, limit);
  }
};

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

 private:
  net::io_context ioc_;
  net::executor_work_guard<net::io_context::executor_type> work_{ioc_.get_executor()};
  std::vector<std::thread> threads_;
};

/// An Asio or Beast error as the std::error_code the client reports.
template <class E>
std::error_code code(E e) {
  return std::error_code(boost::system::error_code(e));
}

/// One event with id `i`.
inline std::string event_text(int i) {
  return "id: " + std::to_string(i) + "\ndata: " + std::to_string(i) + "\n\n";
}

/// A client made by EventClient::create (the test fails when it refuses the options).
inline std::shared_ptr<ssepp::asio::EventClient> make(net::io_context& ioc,
                                                      const ssepp::asio::EventClientOptions& o) {
  auto c = ssepp::asio::EventClient::create(ioc.get_executor(), o);
  REQUIRE(c);
  return *c;
}

/// One event: `data`, with an `id` line when `id` is not empty.
inline std::string event(const std::string& data, const std::string& id = {}) {
  return (id.empty() ? std::string() : "id: " + id + "\n") + "data: " + data + "\n\n";
}

/// Options for a test client: fast reconnection without jitter, no proxy from the environment.
inline ssepp::asio::EventClientOptions options(const std::string& url) {
  ssepp::asio::EventClientOptions o;
  o.client.url = url;
  o.client.retry = 20ms;
  o.client.jitter = false;
  o.proxy_from_env = false;
  o.ca_file = Pki::get().ca;
  return o;
}

}  // namespace client_test
