// Every public header in one translation unit, for clang-tidy and cppcheck (tests/lint).
#include <ssepp/ssepp.hpp>
#include <ssepp/asio.hpp>
#include <ssepp/asio/client.hpp>
#include <ssepp/asio/decompress.hpp>
#include <ssepp/client.hpp>
#include <ssepp/cors.hpp>
#include <ssepp/coding.hpp>
#include <ssepp/compress.hpp>
#include <ssepp/http.hpp>
#include <ssepp/httplib.hpp>
#include <ssepp/redis.hpp>
#include <ssepp/testing.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <memory>

namespace {
struct NullSink {
  bool send(const ssepp::Frame&) { return true; }
};
}  // namespace

// Instantiate the templates so their bodies are analysed too.
template class ssepp::Broadcaster<NullSink>;
template class ssepp::Broadcaster<ssepp::Mailbox>;
template class ssepp::Broadcaster<ssepp::RecordingSink>;
template class ssepp::RedisStreamBus<ssepp::Mailbox>;
template class ssepp::RedisPubSubBridge<ssepp::Mailbox>;
template class ssepp::asio::EventStream<boost::beast::tcp_stream>;
template class ssepp::asio::EventStream<boost::beast::ssl_stream<boost::beast::tcp_stream>>;

int main() try {
  ssepp::Parser parser;
  std::string s = ssepp::encode(ssepp::Event{}.with_data("x"));
  (void)parser.feed(s, [](const ssepp::EventView&) {});
  (void)ssepp::parse_events(s);
  ssepp::Mailbox box;
  (void)box.send(ssepp::Frame(s));
  std::vector<ssepp::Frame> out;
  (void)box.take_all(out);
  ssepp::Client client;
  (void)client.request_headers();
  ssepp::Frame f = ssepp::format_frame({"t", "1"}, "{} {}", 1, s);
  (void)ssepp::try_format_frame({"t"}, "{}", 2.5);
  (void)ssepp::make_frame({}, s);
  s = fmt::format("{} {:?} {} {:?} {:>8} {:?}", ssepp::Event{}, ssepp::Event{}, f, f,
                  ssepp::errc::closed, ssepp::Replay::found);
  s += fmt::format("{} {:?}", ssepp::EventView{}, ssepp::EventView{});
  ssepp::Compressor gz(ssepp::negotiate_encoding("gzip, deflate"));
  std::vector<ssepp::Frame> batch{ssepp::Frame::keepalive()};
  std::string wire;
  (void)gz.compress_to(wire, batch);
  (void)gz.end_to(wire);
  ssepp::Decompressor inflater;
  std::string plain;
  (void)inflater.decompress_to(plain, wire);
  boost::asio::io_context ioc;
  ssepp::asio::EventClientOptions copts;
  copts.client.url = "http://127.0.0.1:1/";
  ssepp::asio::accept_compressed(copts);
  if (auto made = ssepp::asio::EventClient::create(ioc.get_executor(), copts)) {
    (*made)->start();
    (*made)->async_next([](const ssepp::Result<ssepp::Event>&) {});
    (*made)->close();
  }
  return 0;
} catch (...) {
  return 1;
}
