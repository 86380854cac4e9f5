// README, Boost.Beast: a request handler hands GET /events to ssepp::asio.
#include <ssepp/asio.hpp>
#include <ssepp/ssepp.hpp>

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <string>
#include <string_view>

namespace http = boost::beast::http;
ssepp::Event snapshot();
std::string user_of(const http::request<http::string_body>& req);

void on_request(ssepp::asio::EventStreams& sse, boost::beast::tcp_stream stream,
                const http::request<http::string_body>& req) {
  const std::string_view target(req.target().data(), req.target().size());
// @snippet
}
