// Every public header in one translation unit, for clang-tidy and cppcheck (tests/lint).
#include <ssepp/ssepp.hpp>
#include <ssepp/client.hpp>
#include <ssepp/cors.hpp>
#include <ssepp/http.hpp>
#include <ssepp/redis.hpp>
#include <ssepp/testing.hpp>

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
  return 0;
} catch (...) {
  return 1;
}
