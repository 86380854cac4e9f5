// The Redis bus from an outside project (ssepp::redis): it compiles and links with hiredis, and a
// send with no Redis to reach fails with bus_unavailable instead of throwing or blocking.
#include <ssepp/redis.hpp>
#include <ssepp/ssepp.hpp>

#include <cstdio>

int main() {
  ssepp::BroadcasterOptions bo;
  bo.id_order = ssepp::stream_id_order;
  ssepp::Broadcaster<ssepp::Mailbox> local(bo);
  ssepp::RedisOptions ro;
  ro.port = 1;  // nothing listens there
  ro.timeout = std::chrono::milliseconds(500);
  ssepp::RedisStreamBus<ssepp::Mailbox> bus(local, ro);
  auto sent = bus.publish("prices", ssepp::Event{}.with_data("1"));
  if (sent.error() != ssepp::errc::bus_unavailable) {
    std::fprintf(stderr, "expected bus_unavailable, got: %s\n", sent.error().message().c_str());
    return 1;
  }
  std::printf("redis consumer: %s\n", sent.error().message().c_str());
  return 0;
}
