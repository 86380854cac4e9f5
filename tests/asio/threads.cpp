// ssepp::asio with threads everywhere (runs under ThreadSanitizer): a 2-thread io_context whose
// connections live on strands, TCP and TLS streams in one EventStreams, two publisher threads,
// a cut and stats read from other threads, then a shutdown. Built with
// BOOST_BEAST_USE_STD_STRING_VIEW (streams.cpp is built without it).
#include "support.hpp"

#include "../support/catch.hpp"

#include <atomic>

using namespace asio_test;
using ssepp::asio::EndReason;

TEST_CASE("a 2-thread io_context: publishers, a cut and stats from other threads, shutdown",
          "[asio][threads]") {
  Endings endings;
  ssepp::Broadcaster<ssepp::Mailbox> hub;
  ssepp::asio::ServeOptions o;
  o.mailbox.max_frames = 0;  // every client must get every event
  o.mailbox.max_bytes = 0;
  o.on_end = endings.hook();
  ssepp::asio::EventStreams sse(hub, o);
  Loop server_loop(2);
  Server plain(server_loop.ioc(), sse, nullptr, true);
  Server tls(server_loop.ioc(), sse, server_tls(), true);
  Loop client_loop;

  constexpr std::size_t n_plain = 6, n_tls = 2;
  std::vector<std::unique_ptr<Client>> clients;
  for (std::size_t i = 0; i < n_plain; ++i) {  // one at a time: plain.client(i) is clients[i]
    clients.push_back(std::make_unique<Client>(client_loop.ioc(), plain.port(), Client::get()));
    REQUIRE(eventually([&] { return plain.results().size() == i + 1; }));
  }
  auto ctx = client_tls();
  for (std::size_t i = 0; i < n_tls; ++i)
    clients.push_back(std::make_unique<Client>(client_loop.ioc(), tls.port(), Client::get(), ctx));
  for (auto& c : clients) c->read();
  REQUIRE(eventually([&] { return sse.size() == n_plain + n_tls; }));
  const ssepp::ClientId victim = plain.client(0);
  REQUIRE(victim != 0);

  constexpr int per_publisher = 1000;
  std::atomic<bool> go{false};
  std::atomic<bool> stop_stats{false};
  std::vector<std::thread> threads;
  for (int p = 0; p < 2; ++p) {
    threads.emplace_back([&, p] {
      while (!go) std::this_thread::yield();
      for (int i = 0; i < per_publisher; ++i)
        (void)hub.broadcast(ssepp::Event{}.with_type("p" + std::to_string(p)).with_data(std::to_string(i)));
    });
  }
  threads.emplace_back([&] {  // cuts one stream mid-flood
    while (!go) std::this_thread::yield();
    std::this_thread::sleep_for(1ms);
    (void)sse.cut(victim);
  });
  std::thread stats_reader([&] {
    while (!stop_stats) {
      auto s = sse.stats();
      (void)s;
      std::this_thread::yield();
    }
  });
  go = true;
  for (auto& t : threads) t.join();

  constexpr std::size_t total = 2 * per_publisher;
  for (std::size_t i = 1; i < clients.size(); ++i) {
    REQUIRE(clients[i]->wait_events(total));
    Seen s = clients[i]->seen();
    // Every event once, in id order; each publisher's events in its own order.
    int next[2] = {0, 0};
    for (std::size_t k = 0; k < s.events.size(); ++k) {
      const auto& e = s.events[k];
      REQUIRE(e.id == std::to_string(k + 1));
      const int p = e.type == "p0" ? 0 : 1;
      REQUIRE(e.data == std::to_string(next[p]++));
    }
  }
  REQUIRE(clients[0]->wait_closed());
  CHECK(endings.wait(victim)->reason == EndReason::cut);

  std::promise<void> done;
  sse.shutdown(server_loop.ioc().get_executor(), [&] { done.set_value(); },
               ssepp::Event{}.with_type("bye").with_data("bye"), 10s);
  REQUIRE(done.get_future().wait_for(30s) == std::future_status::ready);
  stop_stats = true;
  stats_reader.join();
  for (std::size_t i = 1; i < clients.size(); ++i) {
    REQUIRE(clients[i]->wait_closed());
    Seen s = clients[i]->seen();
    CHECK(s.final_chunk);
    CHECK(s.events.back().type == "bye");
  }
  CHECK(hub.stats().clients == 0);
  const auto st = sse.stats();
  CHECK(st.open == 0);
  CHECK(st.ended[static_cast<std::size_t>(EndReason::ended)] == n_plain + n_tls - 1);
  WARN("2 threads, " << clients.size() << " streams, " << total << " events each: " << st.writes
                     << " writes for " << st.frames << " frames");
}
