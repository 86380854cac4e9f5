// A complete event-stream server on ssepp::asio: GET /events streams a "tick" event every second
// to every client (with Last-Event-ID resumption and heartbeats), POST /publish sends its body to
// every client as one event, anything else gets 404, and Ctrl-C ends every stream with a last
// "bye" event. Usage: ssepp-asio-example [PORT]
#include <ssepp/asio.hpp>
#include <ssepp/ssepp.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

using Hub = ssepp::Broadcaster<ssepp::Mailbox>;

// One HTTP connection: reads requests; hands the connection to the event streams on
// GET /events, answers anything else and reads the next request (keep-alive).
struct Session : std::enable_shared_from_this<Session> {
  Session(tcp::socket s, Hub& h, ssepp::asio::EventStreams& streams)
      : stream(std::move(s)), hub(h), sse(streams) {}
  void run() {
    req = {};
    http::async_read(stream, buffer, req, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (!ec) self->on_request();
    });
  }
  void on_request() {
    std::string_view path = ssepp::target_path({req.target().data(), req.target().size()});
    if (req.method() == http::verb::get && path == "/events")
      return (void)sse.serve(std::move(stream), req);  // the stream owns the connection now
    res = {http::status::not_found, req.version()};
    res.body() = "try /events\n";
    if (req.method() == http::verb::post && path == "/publish") {  // the body is the event's data
      bool sent = hub.broadcast(ssepp::Event{}.with_data(req.body())).has_value();
      res.result(sent ? http::status::accepted : http::status::bad_request);
      res.body() = sent ? "sent\n" : "not an event\n";
    }
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    http::async_write(stream, res, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (!ec && self->res.keep_alive()) self->run();
    });
  }
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  http::request<http::string_body> req;
  http::response<http::string_body> res;
  Hub& hub;
  ssepp::asio::EventStreams& sse;
};

void accept(tcp::acceptor& acceptor, Hub& hub, ssepp::asio::EventStreams& sse) {
  acceptor.async_accept([&](beast::error_code ec, tcp::socket socket) {
    if (ec) return;  // the acceptor was closed: shutting down
    socket.set_option(tcp::no_delay(true), ec);  // /publish replies go out now (streams set it too)
    std::make_shared<Session>(std::move(socket), hub, sse)->run();
    accept(acceptor, hub, sse);
  });
}

void publish_every_second(net::steady_timer& timer, Hub& hub) {
  timer.expires_after(std::chrono::seconds(1));
  timer.async_wait([&](beast::error_code ec) {
    if (ec) return;
    (void)hub.broadcast(ssepp::Event{}.with_type("tick").with_data(std::to_string(std::time(nullptr))));
    hub.tick(std::chrono::steady_clock::now());  // heartbeats to idle streams, history expiry
    publish_every_second(timer, hub);
  });
}

int main(int argc, char** argv) {
  net::io_context ioc{1};
  Hub hub;
  ssepp::asio::EventStreams sse(hub);
  const auto port = static_cast<unsigned short>(argc > 1 ? std::atoi(argv[1]) : 8080);
  tcp::acceptor acceptor(ioc, {net::ip::make_address("127.0.0.1"), port});
  accept(acceptor, hub, sse);
  net::steady_timer timer(ioc);
  publish_every_second(timer, hub);
  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int) {
    acceptor.close();
    timer.cancel();
    sse.shutdown(ioc.get_executor(), [&] { ioc.stop(); },
                 ssepp::Event{}.with_type("bye").with_data("server stopping"), std::chrono::seconds(2));
  });
  std::printf("listening on http://127.0.0.1:%u/events\n", acceptor.local_endpoint().port());
  std::fflush(stdout);
  ioc.run();
}
