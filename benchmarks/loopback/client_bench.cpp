// ssepp-client-bench: how fast ssepp::asio::EventClient consumes a stream. Each corpus file is
// served over loopback (plain TCP and TLS with a certificate made at run time by the openssl
// command) as one long HTTP/1.1 chunked text/event-stream response (16 KiB chunks), by a server
// thread in this process that only writes the prepared bytes. Measured, in turns (so a slow moment
// of a shared machine falls on every side), median of --runs runs each:
//   - EventClient: wall clock from the response head (its first byte) to the stream's end, every
//     event delivered to an on_event callback;
//   - ssepp::Parser alone on the same bytes in memory, fed in 16 KiB chunks (the floor);
//   - a bare blocking socket reading the same response from the same server (a recv loop into
//     64 KiB, no HTTP): what the loopback socket alone costs;
//   - with --peer CMD: CMD URL --bytes B --events N --runs R is run (the npm eventsource client,
//     benchmarks/peers/client-eventsource.mjs) against the same plain server; it prints one JSON
//     line with "mb_per_s" and "events_per_s" (medians).
// Usage: ssepp-client-bench FILE... [--runs N] [--peer CMD] [--no-tls]
//        ssepp-client-bench FILE --serve   (serves FILE until killed; prints "listening on URL")
// Prints one figure line per measure: {"name":"client/<corpus> plain (MB/s)", ...}.
#include <ssepp/asio/client.hpp>
#include <ssepp/parser.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../bench.hpp"

namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t chunk_size = std::size_t{16} * 1024;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "ssepp-client-bench: cannot read %s\n", path.c_str());
    std::exit(2);
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// The whole response: head, the body in 16 KiB chunks, the last chunk.
std::string chunked_response(const std::string& body) {
  std::string r =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  r.reserve(body.size() + body.size() / chunk_size * 16 + 256);
  for (std::size_t at = 0; at < body.size(); at += chunk_size) {
    const std::size_t n = std::min(chunk_size, body.size() - at);
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", n);
    r += size;
    r.append(body, at, n);
    r += "\r\n";
  }
  r += "0\r\n\r\n";
  return r;
}

/// A self-signed certificate for 127.0.0.1 (its own CA), in a temporary directory.
struct Cert {
  std::string dir, cert, key;
  Cert() {
    char tmpl[] = "/tmp/ssepp-client-bench-XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    if (!d) std::exit(2);
    dir = d;
    cert = dir + "/cert.pem";
    key = dir + "/key.pem";
    const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                            "-nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
                            "-keyout " + key + " -out " + cert + " 2>/dev/null";
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "ssepp-client-bench: the openssl command failed\n");
      std::exit(2);
    }
  }
  ~Cert() {
    std::remove(cert.c_str());
    std::remove(key.c_str());
    ::rmdir(dir.c_str());
  }
};

/// Serves `response` to every connection on 127.0.0.1 (a free port), one thread each: reads the
/// request head, writes the prepared bytes, closes.
class Server {
 public:
  Server(const std::string& response, ssl::context* tls)
      : response_(response), tls_(tls),
        acceptor_(ioc_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    accepter_ = std::thread([this] { accept_loop(); });
  }
  ~Server() {
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    accepter_.join();
    std::lock_guard<std::mutex> lock(m_);
    for (auto& t : threads_) t.join();
  }
  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  std::string url() const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port()) +
           "/events";
  }

 private:
  void accept_loop() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket s(ioc_);
      acceptor_.accept(s, ec);
      if (ec) return;
      std::lock_guard<std::mutex> lock(m_);
      threads_.emplace_back([this, s = std::move(s)]() mutable { serve(std::move(s)); });
    }
  }
  template <class Stream>
  void exchange(Stream& s) {
    std::string head;
    char buf[4096];
    boost::system::error_code ec;
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < 65536) {
      const std::size_t n = s.read_some(net::buffer(buf), ec);
      if (ec) return;
      head.append(buf, n);
    }
    net::write(s, net::buffer(response_), ec);
  }
  void serve(tcp::socket s) {
    s.set_option(tcp::no_delay(true));
    if (tls_) {
      ssl::stream<tcp::socket&> t(s, *tls_);
      boost::system::error_code ec;
      t.handshake(ssl::stream_base::server, ec);
      if (ec) return;
      exchange(t);
      t.shutdown(ec);
    } else {
      exchange(s);
    }
    boost::system::error_code ignored;
    s.shutdown(tcp::socket::shutdown_both, ignored);
  }

  const std::string& response_;
  ssl::context* tls_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  std::thread accepter_;
  std::mutex m_;
  std::vector<std::thread> threads_;
};

struct Run {
  double seconds = 0;
  std::size_t events = 0;
};

/// One EventClient reading the whole stream at `url`: seconds from the head to the end.
Run client_run(const std::string& url, const std::string& ca) {
  net::io_context ioc(1);
  ssepp::asio::EventClientOptions o;
  o.client.url = url;
  o.client.reconnect_on_end = false;
  o.reconnect = false;
  o.proxy_from_env = false;
  o.ca_file = ca;
  auto c = ssepp::asio::EventClient::create(ioc.get_executor(), o);
  if (!c) {
    std::fprintf(stderr, "ssepp-client-bench: %s\n", c.error().message().c_str());
    std::exit(1);
  }
  Run r;
  Clock::time_point first{}, last{};
  std::error_code error;
  ssepp::asio::EventHandlers h;
  h.on_open = [&](const ssepp::Url&) { first = Clock::now(); };
  h.on_event = [&](const ssepp::EventView& e) {
    ++r.events;
    bench::do_not_optimize(e.data.data());
  };
  h.on_close = [&](std::error_code ec) {
    last = Clock::now();
    error = ec;
  };
  (*c)->start(std::move(h));
  ioc.run();
  if (error) {
    std::fprintf(stderr, "ssepp-client-bench: %s: %s\n", url.c_str(), error.message().c_str());
    std::exit(1);
  }
  r.seconds = std::chrono::duration<double>(last - first).count();
  return r;
}

/// A bare blocking socket reading the same response from the same server into a 64 KiB buffer
/// (no HTTP, no parsing): what the loopback socket itself costs. Seconds from the first byte.
Run socket_run(unsigned short port) {
  net::io_context ioc;
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  const std::string req = "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  net::write(s, net::buffer(req));
  std::vector<char> buf(std::size_t{64} * 1024);
  Run r;
  Clock::time_point first{};
  boost::system::error_code ec;
  std::size_t total = 0;
  for (;;) {
    const std::size_t n = s.read_some(net::buffer(buf), ec);
    if (total == 0 && n > 0) first = Clock::now();
    total += n;
    if (ec) break;
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - first).count();
  r.events = total;
  return r;
}

/// ssepp::Parser alone on the same bytes, 16 KiB chunks.
Run parser_run(const std::string& body) {
  Run r;
  const auto t0 = Clock::now();
  ssepp::Parser parser;
  auto count = [&r](const ssepp::EventView& e) {
    ++r.events;
    bench::do_not_optimize(e.data.data());
  };
  const std::string_view all(body);
  for (std::size_t at = 0; at < all.size(); at += chunk_size)
    if (!parser.feed(all.substr(at, chunk_size), count)) std::exit(1);
  if (!parser.finish()) std::exit(1);
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// A number after `"key":` in a JSON line, or 0.
double json_number(const std::string& line, const std::string& key) {
  const auto at = line.find("\"" + key + "\":");
  if (at == std::string::npos) return 0;
  return std::strtod(line.c_str() + at + key.size() + 3, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Args args(argv + 1, argv + argc);
  std::vector<std::string> files;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--runs" || args[i] == "--peer") {
      ++i;
      continue;
    }
    if (args[i].rfind("--", 0) == 0) continue;
    files.push_back(args[i]);
  }
  if (files.empty()) {
    std::fprintf(stderr,
                 "usage: ssepp-client-bench FILE... [--runs N] [--peer CMD] [--no-tls]\n"
                 "       ssepp-client-bench FILE --serve\n");
    return 2;
  }
  const int runs = std::max(1, std::atoi(bench::option(args, "--runs", "5").c_str()));
  const std::string peer = bench::option(args, "--peer", "");
  const bool with_tls = !bench::has_flag(args, "--no-tls");

  if (bench::has_flag(args, "--serve")) {
    const std::string response = chunked_response(read_file(files[0]));
    Server server(response, nullptr);
    std::printf("listening on %s\n", server.url().c_str());
    std::fflush(stdout);
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }

  Cert cert;
  ssl::context tls(ssl::context::tls_server);
  tls.use_certificate_chain_file(cert.cert);
  tls.use_private_key_file(cert.key, ssl::context::pem);

  for (const auto& file : files) {
    std::string name = file.substr(file.find_last_of('/') + 1);
    name = name.substr(0, name.find('.'));
    const std::string body = read_file(file);
    const std::string response = chunked_response(body);
    const double mb = static_cast<double>(body.size()) / 1e6;
    Server plain(response, nullptr);
    std::unique_ptr<Server> secure;
    if (with_tls) secure = std::make_unique<Server>(response, &tls);

    const std::size_t events = parser_run(body).events;
    std::vector<double> parser_s, socket_s, plain_s, tls_s;
    for (int i = 0; i < runs; ++i) {  // in turns: a slow moment falls on every side
      parser_s.push_back(parser_run(body).seconds);
      const Run raw = socket_run(plain.port());
      if (raw.events != response.size()) {
        std::fprintf(stderr, "ssepp-client-bench: the bare socket read %zu bytes, %zu sent\n",
                     raw.events, response.size());
        return 1;
      }
      socket_s.push_back(raw.seconds);
      const Run p = client_run(plain.url(), {});
      if (p.events != events) {
        std::fprintf(stderr, "ssepp-client-bench: %zu events over TCP, %zu expected\n", p.events, events);
        return 1;
      }
      plain_s.push_back(p.seconds);
      if (secure) {
        const Run t = client_run(secure->url(), cert.cert);
        if (t.events != events) {
          std::fprintf(stderr, "ssepp-client-bench: %zu events over TLS, %zu expected\n", t.events, events);
          return 1;
        }
        tls_s.push_back(t.seconds);
      }
    }
    const double parser_mb = mb / median(parser_s);
    const double parser_ev = static_cast<double>(events) / median(parser_s);
    const std::string floor = "ssepp::Parser alone, same bytes in memory";
    const auto emit = [&](const std::string& mode, double seconds) {
      bench::print_figure("client/" + name + " " + mode + " (MB/s)", mb / seconds, "MB/s", floor, parser_mb);
      bench::print_figure("client/" + name + " " + mode + " (events/s)",
                          static_cast<double>(events) / seconds, "events/s", floor, parser_ev);
    };
    emit("plain", median(plain_s));
    bench::print_figure("client/" + name + " plain (MB/s)", mb / median(plain_s), "MB/s",
                        "bare socket reading the same response (recv loop, no HTTP)",
                        mb / median(socket_s));
    if (!tls_s.empty()) emit("tls", median(tls_s));

    if (!peer.empty()) {
      const std::string cmd = peer + " " + plain.url() + " --bytes " + std::to_string(body.size()) +
                              " --events " + std::to_string(events) + " --runs " +
                              std::to_string(runs);
      FILE* p = ::popen(cmd.c_str(), "r");
      std::string out;
      if (p) {
        char buf[4096];
        std::size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
      }
      if (!p || ::pclose(p) != 0 || json_number(out, "mb_per_s") <= 0) {
        std::fprintf(stderr, "ssepp-client-bench: the peer failed: %s\n%s", cmd.c_str(), out.c_str());
        return 1;
      }
      const std::string who = "npm eventsource 4.1.1 (Node), same server";
      const double peer_mb = json_number(out, "mb_per_s");
      const double peer_ev = json_number(out, "events_per_s");
      bench::print_figure("client/" + name + " plain (MB/s)", mb / median(plain_s), "MB/s", who, peer_mb);
      bench::print_figure("client/" + name + " plain (events/s)",
                          static_cast<double>(events) / median(plain_s), "events/s", who, peer_ev);
    }
  }
  return 0;
}
