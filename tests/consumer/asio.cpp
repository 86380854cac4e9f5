// ssepp::asio from an outside project: it compiles and links with Boost and OpenSSL, and one
// request answered on a loopback socket gives a stream that shutdown ends with the final chunk.
#include <ssepp/asio.hpp>
#include <ssepp/ssepp.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>

#include <cstdio>
#include <string>

int main() {
  namespace net = boost::asio;
  namespace http = boost::beast::http;
  using tcp = net::ip::tcp;

  net::io_context ioc;
  ssepp::Broadcaster<ssepp::Mailbox> hub;
  ssepp::asio::ServeOptions options;
  options.stream.close_timeout = std::chrono::milliseconds(100);
  ssepp::asio::EventStreams sse(hub, options);

  tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  tcp::socket client(ioc);
  client.connect(acceptor.local_endpoint());
  tcp::socket server = acceptor.accept();

  http::request<http::empty_body> req{http::verb::get, "/events", 11};
  auto id = sse.serve(std::move(server), req);
  if (!id) return 1;
  (void)hub.broadcast(ssepp::Event{}.with_data("hello"));
  sse.shutdown(ioc.get_executor(), [] {}, ssepp::Event{}.with_type("bye").with_data("done"));
  ioc.run();

  std::string got;
  boost::system::error_code ec;
  char buf[4096];
  for (std::size_t n; (n = client.read_some(net::buffer(buf), ec)) > 0;) got.append(buf, n);
  const bool ok = got.rfind("HTTP/1.1 200 OK\r\n", 0) == 0 && got.find("data: hello\n") != std::string::npos &&
                  got.size() > 5 && got.compare(got.size() - 5, 5, "0\r\n\r\n") == 0;
  std::printf("asio consumer: %zu bytes, %s\n", got.size(), ok ? "ok" : "unexpected");
  return ok ? 0 : 1;
}
