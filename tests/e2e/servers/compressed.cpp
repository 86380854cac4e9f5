// A small compressed event-stream server for the end-to-end timing test (compress.e2e.mjs), on
// ssepp::asio with ServeOptions::compression: GET /events streams a "tick" every --interval ms
// whose data carries its publish time (Unix ms) so a client on this machine measures the delay;
// GET / is a page whose EventSource records every tick with its arrival time; GET /stats gives
// the streams' counters as JSON. Prints "ssepp-compressed-test listening on http://HOST:PORT/"
// first; SIGTERM ends every stream. Usage: [--host H] [--port P] [--interval MS]
#include <ssepp/asio.hpp>
#include <ssepp/compress.hpp>
#include <ssepp/ssepp.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

const char* const page = R"(<!doctype html>
<meta charset="utf-8"><title>compressed ticks</title>
<pre id="log"></pre>
<script>
window.received = [];
const es = new EventSource('/events');
es.addEventListener('tick', (e) => {
  const d = JSON.parse(e.data);
  window.received.push({ seq: d.seq, t: d.t, at: Date.now() });
  document.getElementById('log').textContent = window.received.length + ' ticks';
});
</script>
)";

struct Session : std::enable_shared_from_this<Session> {
  Session(tcp::socket s, ssepp::asio::EventStreams& streams) : stream(std::move(s)), sse(streams) {}
  void run() {
    http::async_read(stream, buffer, req, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (!ec) self->on_request();
    });
  }
  void on_request() {
    const std::string_view path =
        ssepp::target_path(std::string_view(req.target().data(), req.target().size()));
    if (path == "/events") return (void)sse.serve(std::move(stream), req);
    res = {http::status::ok, req.version()};
    res.keep_alive(false);
    if (path == "/") {
      res.set(http::field::content_type, "text/html; charset=utf-8");
      res.body() = page;
    } else if (path == "/stats") {
      const auto s = sse.stats();
      res.set(http::field::content_type, "application/json");
      res.body() = "{\"open\":" + std::to_string(s.open) +
                   ",\"compressed\":" + std::to_string(s.compressed) +
                   ",\"frames\":" + std::to_string(s.frames) +
                   ",\"uncompressed_bytes\":" + std::to_string(s.uncompressed_bytes) +
                   ",\"compressed_bytes\":" + std::to_string(s.compressed_bytes) + "}";
    } else {
      res.result(http::status::not_found);
      res.body() = "not found\n";
    }
    res.prepare_payload();
    http::async_write(stream, res, [self = shared_from_this()](beast::error_code, std::size_t) {
      beast::error_code ignored;
      self->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    });
  }
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  http::request<http::empty_body> req;
  http::response<http::string_body> res;
  ssepp::asio::EventStreams& sse;
};

void accept(tcp::acceptor& acceptor, ssepp::asio::EventStreams& sse) {
  acceptor.async_accept([&](beast::error_code ec, tcp::socket socket) {
    if (ec) return;
    std::make_shared<Session>(std::move(socket), sse)->run();
    accept(acceptor, sse);
  });
}

struct Ticker {
  net::steady_timer timer;
  ssepp::Broadcaster<ssepp::Mailbox>& hub;
  std::chrono::milliseconds interval;
  long seq = 0;

  void next() {
    timer.expires_after(interval);
    timer.async_wait([this](beast::error_code ec) {
      if (ec) return;
      const auto t = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
      (void)hub.broadcast(ssepp::Event{}.with_type("tick").with_data(
          "{\"seq\":" + std::to_string(++seq) + ",\"t\":" + std::to_string(t) +
          ",\"symbol\":\"ACME\",\"note\":\"a compressed tick, flushed on its own\"}"));
      hub.tick(std::chrono::steady_clock::now());
      next();
    });
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  long interval = 100;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--host") host = argv[i + 1];
    else if (flag == "--port") port = static_cast<unsigned short>(std::atoi(argv[i + 1]));
    else if (flag == "--interval") interval = std::atol(argv[i + 1]);
  }
  net::io_context ioc{1};
  ssepp::Broadcaster<ssepp::Mailbox> hub;
  ssepp::asio::ServeOptions options;
  options.compression = ssepp::compression();
  ssepp::asio::EventStreams sse(hub, options);
  tcp::acceptor acceptor(ioc, {net::ip::make_address(host), port});
  accept(acceptor, sse);
  Ticker ticker{net::steady_timer(ioc), hub, std::chrono::milliseconds(interval)};
  ticker.next();
  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int) {
    acceptor.close();
    ticker.timer.cancel();
    sse.shutdown(ioc.get_executor(), [&] { ioc.stop(); }, ssepp::Frame{}, std::chrono::seconds(2));
  });
  std::printf("ssepp-compressed-test listening on http://%s:%u/\n", host.c_str(),
              static_cast<unsigned>(acceptor.local_endpoint().port()));
  std::fflush(stdout);
  ioc.run();
  return 0;
}
