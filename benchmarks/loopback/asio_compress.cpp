// ssepp-asio-compress: server CPU per delivery through ssepp::asio, plain against compressed
// (ServeOptions::compression), at a fixed load: N loopback clients (all asking for gzip), R price
// ticks per second for D seconds. The server's io_context thread (writes, and compression) and the
// publishing thread (Broadcaster::broadcast) are timed with their own CPU clocks; the clients run
// on another thread and only drain their sockets.
// Usage: ssepp-asio-compress [--clients N] [--rate R] [--seconds D] [--level L]
// Prints one JSON line per mode (plain, gzip).
#include <ssepp/asio.hpp>
#include <ssepp/compress.hpp>
#include <ssepp/ssepp.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

double thread_cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

struct Session : std::enable_shared_from_this<Session> {
  Session(tcp::socket s, ssepp::asio::EventStreams& streams) : stream(std::move(s)), sse(streams) {}
  void run() {
    http::async_read(stream, buffer, req, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (!ec) (void)self->sse.serve(std::move(self->stream), self->req);
    });
  }
  tcp::socket stream;
  beast::flat_buffer buffer;
  http::request<http::empty_body> req;
  ssepp::asio::EventStreams& sse;
};

void accept(tcp::acceptor& acceptor, ssepp::asio::EventStreams& sse) {
  acceptor.async_accept([&](beast::error_code ec, tcp::socket socket) {
    if (ec) return;
    std::make_shared<Session>(std::move(socket), sse)->run();
    accept(acceptor, sse);
  });
}

struct Result {
  double io_cpu_us = 0, publish_cpu_us = 0;
  std::uint64_t deliveries = 0, wire_bytes = 0, plain_bytes = 0, coded_bytes = 0;
};

Result run(bool compress, int clients, int rate, int seconds, int level) {
  net::io_context ioc{1};
  ssepp::Broadcaster<ssepp::Mailbox> hub;
  ssepp::asio::ServeOptions options;
  if (compress) {
    ssepp::CompressOptions co;
    co.compressor.level = level;
    options.compression = ssepp::compression(co);
  }
  ssepp::asio::EventStreams sse(hub, options);
  tcp::acceptor acceptor(ioc, {net::ip::make_address("127.0.0.1"), 0});
  const unsigned short port = acceptor.local_endpoint().port();
  accept(acceptor, sse);
  auto work = net::make_work_guard(ioc);
  std::thread io([&] { ioc.run(); });

  // The clients: connect, ask for gzip, then drain until told to stop.
  std::vector<int> fds;
  for (int i = 0; i < clients; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::abort();
    const std::string req = "GET /events HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n";
    if (::send(fd, req.data(), req.size(), 0) != static_cast<ssize_t>(req.size())) std::abort();
    fds.push_back(fd);
  }
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> received{0};
  std::thread drain([&] {
    std::vector<pollfd> p;
    for (int fd : fds) p.push_back({fd, POLLIN, 0});
    char buf[65536];
    while (!stop.load()) {
      if (::poll(p.data(), p.size(), 50) <= 0) continue;
      for (auto& x : p)
        if (x.revents & POLLIN) {
          const ssize_t n = ::recv(x.fd, buf, sizeof buf, MSG_DONTWAIT);
          if (n > 0) received += static_cast<std::uint64_t>(n);
        }
    }
  });
  while (sse.size() < static_cast<std::size_t>(clients)) std::this_thread::sleep_for(std::chrono::milliseconds(5));

  const auto frames0 = sse.stats().frames;
  double io0 = 0, io1 = 0;
  auto io_cpu = [&](double& out) {
    std::atomic<bool> done{false};
    net::post(ioc, [&] { out = thread_cpu_us(); done = true; });
    while (!done) std::this_thread::yield();
  };
  io_cpu(io0);
  const double pub0 = thread_cpu_us();
  const auto period = std::chrono::nanoseconds(1000000000LL / rate);
  auto next = std::chrono::steady_clock::now();
  const long total = static_cast<long>(rate) * seconds;
  for (long i = 0; i < total; ++i) {
    next += period;
    std::this_thread::sleep_until(next);
    (void)hub.broadcast(ssepp::Event{}.with_type("price").with_data(
        R"({"symbol":"ACME","price":)" + std::to_string(100 + i % 37) + "." +
        std::to_string(i % 100) + R"(,"currency":"EUR","venue":"XPAR"})"));
  }
  const double pub1 = thread_cpu_us();
  const auto want = frames0 + static_cast<std::uint64_t>(total) * static_cast<std::uint64_t>(clients);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (sse.stats().frames < want && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  io_cpu(io1);
  const auto st = sse.stats();
  Result r;
  r.io_cpu_us = io1 - io0;
  r.publish_cpu_us = pub1 - pub0;
  r.deliveries = st.frames - frames0;
  r.wire_bytes = st.bytes;
  r.plain_bytes = st.uncompressed_bytes;
  r.coded_bytes = st.compressed_bytes;

  stop = true;
  drain.join();
  for (int fd : fds) ::close(fd);
  bool down = false;
  net::post(ioc, [&] {
    acceptor.close();
    sse.shutdown(ioc.get_executor(), [&] { down = true; }, ssepp::Frame{}, std::chrono::seconds(1));
  });
  work.reset();
  io.join();
  (void)down;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  int clients = 200, rate = 100, seconds = 5, level = 6;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (f == "--clients") clients = v;
    else if (f == "--rate") rate = v;
    else if (f == "--seconds") seconds = v;
    else if (f == "--level") level = v;
  }
  for (bool compress : {false, true}) {
    const Result r = run(compress, clients, rate, seconds, level);
    const double d = r.deliveries ? static_cast<double>(r.deliveries) : 1.0;
    std::printf("{\"bench\":\"asio-compress\",\"mode\":\"%s\",\"clients\":%d,\"rate\":%d,"
                "\"seconds\":%d,\"level\":%d,\"deliveries\":%llu,\"io_cpu_us_per_delivery\":%.3f,"
                "\"publish_cpu_us_per_delivery\":%.3f,\"cpu_us_per_delivery\":%.3f,"
                "\"wire_bytes_per_delivery\":%.1f,\"ratio\":%.2f}\n",
                compress ? "gzip" : "plain", clients, rate, seconds, level,
                static_cast<unsigned long long>(r.deliveries), r.io_cpu_us / d,
                r.publish_cpu_us / d, (r.io_cpu_us + r.publish_cpu_us) / d,
                static_cast<double>(r.wire_bytes) / d,
                r.coded_bytes ? static_cast<double>(r.plain_bytes) / static_cast<double>(r.coded_bytes)
                              : 1.0);
    std::fflush(stdout);
  }
  return 0;
}
