// Every public header in one translation unit, for clang-tidy and cppcheck (tests/lint).
#include <ssepp/ssepp.hpp>
#include <ssepp/client.hpp>
#include <ssepp/compress.hpp>
#include <ssepp/http.hpp>
#include <ssepp/redis.hpp>

#include <memory>

namespace {
struct NullSink {
  bool send(const ssepp::Frame&) { return true; }
};
}  // namespace

// Instantiate the templates so their bodies are analysed too.
template class ssepp::Broadcaster<NullSink>;
template class ssepp::Broadcaster<ssepp::Mailbox>;
template class ssepp::RedisStreamBus<ssepp::Mailbox>;
template class ssepp::RedisPubSubBridge<ssepp::Mailbox>;

int main() try {
  ssepp::Parser parser;
  std::string s = ssepp::encode(ssepp::Event{}.with_data("x"));
  (void)parser.feed(s, [](const ssepp::EventView&) {});
  ssepp::Client client;
  (void)client.request_headers();
  ssepp::Compressor gz(ssepp::negotiate_encoding("gzip, deflate"));
  std::vector<ssepp::Frame> batch{ssepp::Frame::keepalive()};
  std::string wire;
  (void)gz.compress_to(wire, batch);
  (void)gz.end_to(wire);
  ssepp::Decompressor inflater;
  std::string plain;
  (void)inflater.decompress_to(plain, wire);
  return 0;
} catch (...) {
  return 1;
}
