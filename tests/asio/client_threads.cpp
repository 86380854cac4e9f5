// ssepp::asio::EventClient with threads (runs under ThreadSanitizer): a 2-thread io_context,
// the client on a strand, a stream that never ends, and close() from another thread.
#include "client_support.hpp"

#include "../support/catch.hpp"

#include <boost/asio/strand.hpp>

using namespace client_test;

TEST_CASE("close() from another thread stops a live stream once, with no error",
          "[asio][client][threads]") {
  std::atomic<bool> stop{false};
  ScriptServer server([&](Exchange& x) {
    x.stream_head();
    for (int i = 0; !stop && x.chunk(event_text(i)); ++i) std::this_thread::sleep_for(1ms);
  });
  Record rec;
  Loop loop(2);
  auto o = options(server.url());
  auto c = ssepp::asio::EventClient::create(net::make_strand(loop.ioc()), o);
  REQUIRE(c);
  (*c)->start(rec.handlers());
  REQUIRE(rec.wait_events(20));
  std::thread closer([&] { (*c)->close(); });
  closer.join();
  REQUIRE(rec.wait_closed());
  CHECK_FALSE(rec.close_error);
  const std::size_t seen = [&] {
    std::lock_guard<std::mutex> lock(rec.m);
    return rec.events.size();
  }();
  std::this_thread::sleep_for(50ms);  // nothing more arrives after on_close
  {
    std::lock_guard<std::mutex> lock(rec.m);
    CHECK(rec.events.size() == seen);
    CHECK(rec.closes == 1);
  }
  CHECK((*c)->closed());
  (*c)->close();  // idempotent
  stop = true;
}

TEST_CASE("close() at any moment (connecting, streaming, waiting to reconnect) ends once",
          "[asio][client][threads]") {
  ScriptServer server([&](Exchange& x) {
    x.stream_head();
    x.chunk(event_text(static_cast<int>(x.index)));
    if (x.index % 2 == 0) x.last_chunk();  // a clean end: the client waits to reconnect
    else x.wait_closed(5s);
  });
  Loop loop(2);
  for (int i = 0; i < 40; ++i) {
    Record rec;
    auto o = options(server.url());
    o.client.retry = std::chrono::milliseconds(i % 3);
    auto c = ssepp::asio::EventClient::create(net::make_strand(loop.ioc()), o);
    REQUIRE(c);
    (*c)->start(rec.handlers());
    std::thread closer([&] {
      std::this_thread::sleep_for(std::chrono::microseconds(250 * (i % 8)));
      (*c)->close();
    });
    closer.join();
    REQUIRE(rec.wait_closed());
    std::this_thread::sleep_for(2ms);
    std::lock_guard<std::mutex> lock(rec.m);
    CHECK(rec.closes == 1);
    CHECK_FALSE(rec.close_error);
  }
}
