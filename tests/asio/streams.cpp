// ssepp::asio on real loopback sockets (TCP and TLS): what EventStreams::serve answers, what an
// EventStream writes and when it ends. A Beast server reads each request and hands it over; the
// client is a raw socket whose bytes are de-chunked and parsed with ssepp::Parser. Built without
// BOOST_BEAST_USE_STD_STRING_VIEW (threads.cpp is built with it).
#include "support.hpp"

#include "../support/catch.hpp"

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/string_body.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>

using namespace asio_test;
using ssepp::asio::EndReason;
using ssepp::asio::EventStreams;
using ssepp::asio::ServeOptions;

namespace {

ssepp::Event ev(std::string type, std::string data) {
  return ssepp::Event{}.with_type(std::move(type)).with_data(std::move(data));
}

std::vector<std::string> datas(const Seen& s) {
  std::vector<std::string> out;
  for (const auto& e : s.events) out.push_back(e.data);
  return out;
}

std::string big(std::size_t n) { return std::string(n, 'x'); }

// A server (its own io_context thread), an EventStreams over a broadcaster, and a client loop.
struct Fixture {
  explicit Fixture(ServeOptions o = {}, std::shared_ptr<ssl::context> tls = nullptr,
                   ssepp::BroadcasterOptions bo = {})
      : hub(bo), sse(hub, with_endings(std::move(o))), server(server_loop.ioc(), sse, std::move(tls)) {}

  ServeOptions with_endings(ServeOptions o) {
    o.on_end = endings.hook();
    return o;
  }

  Endings endings;
  ssepp::Broadcaster<ssepp::Mailbox> hub;
  EventStreams sse;
  Loop server_loop;  // after hub and sse: its handlers and streams go first
  Server server;
  Loop client_loop;
};

}  // namespace

TEST_CASE("serve: head, preamble, replay after Last-Event-ID, then live events (HTTP/1.1 chunked)",
          "[asio]") {
  ServeOptions o;
  o.preamble.comment = "hello";
  o.cors = ssepp::CorsOptions{{"https://app.example"}};
  Fixture f(o);
  for (auto d : {"a", "b", "c"}) (void)f.hub.broadcast(ev("m", d));  // ids 1..3
  ssepp::asio::StreamStart opened;
  f.server.on_open = [&](ssepp::asio::StreamStart& s) { opened = s; };

  Client c(f.client_loop.ioc(), f.server.port(),
           Client::get("/events", "Last-Event-ID: 1\r\nOrigin: https://app.example\r\n"));
  c.read();
  REQUIRE(c.wait_events(2));
  const ssepp::ClientId id = f.server.client();
  REQUIRE(id != 0);
  CHECK(opened.id == id);
  CHECK(opened.replay == ssepp::Replay::found);
  CHECK(opened.replayed == 2);
  (void)f.hub.broadcast(ev("m", "d"));
  REQUIRE(c.wait_events(3));

  Seen s = c.seen();
  CHECK(s.status == 200);
  CHECK(s.head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(s.has_header("Content-Type: text/event-stream; charset=utf-8\r\n"));
  CHECK(s.has_header("Cache-Control: no-cache\r\n"));
  CHECK(s.has_header("Transfer-Encoding: chunked\r\n"));
  // Never reused after the stream (an end closes it): a keep-alive would invite the next request.
  CHECK(s.has_header("Connection: close\r\n"));
  CHECK_FALSE(s.has_header("keep-alive"));
  CHECK(s.has_header("Access-Control-Allow-Origin: https://app.example\r\n"));
  CHECK(s.body.rfind(": hello\n\n", 0) == 0);  // the preamble first
  CHECK(datas(s) == std::vector<std::string>{"b", "c", "d"});
  CHECK(s.events[0].id == "2");
  CHECK(s.events[2].id == "4");
  CHECK(f.sse.size() == 1);
  CHECK(f.hub.stats().clients == 1);
}

TEST_CASE("serve: a bad Last-Event-ID is answered 400; an unknown one lets the host send a "
          "snapshot first",
          "[asio]") {
  ServeOptions o;
  o.max_last_event_id = 8;
  Fixture f(o);
  (void)f.hub.broadcast(ev("m", "old"));

  SECTION("a line break in the query parameter") {
    Client c(f.client_loop.ioc(), f.server.port(), Client::get("/events?lastEventId=a%0Ab"));
    c.read();
    REQUIRE(c.wait_closed());
    Seen s = c.seen();
    CHECK(s.status == 400);
    CHECK(s.has_header("Connection: close\r\n"));
    CHECK(s.raw.find("invalid Last-Event-ID") != std::string::npos);
    REQUIRE(f.server.results().size() == 1);
    CHECK(f.server.results()[0].error() == ssepp::errc::invalid_last_event_id);
    CHECK(f.hub.stats().clients == 0);
    CHECK(f.sse.stats().refused == 1);
  }
  SECTION("longer than max_last_event_id") {
    Client c(f.client_loop.ioc(), f.server.port(), Client::get("/events", "Last-Event-ID: 123456789\r\n"));
    c.read();
    REQUIRE(c.wait_closed());
    CHECK(c.seen().status == 400);
  }
  SECTION("unknown: on_open sees it and writes a snapshot before anything else") {
    f.server.on_open = [](ssepp::asio::StreamStart& s) {
      if (s.replay_missed()) s.first += ssepp::encode(ev("snapshot", "everything"));
    };
    Client c(f.client_loop.ioc(), f.server.port(), Client::get("/events?lastEventId=nowhere"));
    c.read();
    REQUIRE(c.wait_events(1));
    (void)f.hub.broadcast(ev("m", "new"));
    REQUIRE(c.wait_events(2));
    Seen s = c.seen();
    CHECK(s.status == 200);
    CHECK(s.events[0].type == "snapshot");
    CHECK(s.events[1].data == "new");
  }
}

TEST_CASE("serve: the replay has room beyond the live bounds; one that does not fit is answered "
          "503",
          "[asio]") {
  ServeOptions o;
  o.mailbox.max_frames = 2;
  SECTION("the default replay room: a client that fell behind still resumes") {
    Fixture f(o);
    for (int i = 0; i < 100; ++i) (void)f.hub.broadcast(ev("m", std::to_string(i)));
    Client c(f.client_loop.ioc(), f.server.port(), Client::get("/events", "Last-Event-ID: 1\r\n"));
    c.read();
    REQUIRE(c.wait_events(99));
    CHECK(c.seen().status == 200);
    CHECK(c.seen().events.back().data == "99");
  }
  o.mailbox.replay_frames = 0;
  Fixture f(o);
  for (int i = 0; i < 5; ++i) (void)f.hub.broadcast(ev("m", std::to_string(i)));
  Client c(f.client_loop.ioc(), f.server.port(), Client::get("/events", "Last-Event-ID: 1\r\n"));
  c.read();
  REQUIRE(c.wait_closed());
  CHECK(c.seen().status == 503);
  REQUIRE(f.server.results().size() == 1);
  CHECK(f.server.results()[0].error() == ssepp::errc::sink_failed);
  CHECK(f.hub.stats().clients == 0);
}

TEST_CASE("serve: ServeOptions::connect stands in for hub.connect (e.g. a Redis bus)", "[asio]") {
  ServeOptions o;
  std::atomic<int> calls{0};
  ssepp::Broadcaster<ssepp::Mailbox>* hub = nullptr;
  std::atomic<bool> refuse{false};
  o.connect = [&](const ssepp::Mailbox& mailbox, ssepp::ConnectOptions who) -> ssepp::ConnectResult {
    ++calls;
    if (refuse) return ssepp::errc::closed;
    who.channels.push_back("added");  // proof that this path, not hub.connect, joined the client
    return hub->connect(mailbox, std::move(who));
  };
  Fixture f(o);
  hub = &f.hub;
  Client c(f.client_loop.ioc(), f.server.port(), Client::get("/events"));
  c.read();
  const ssepp::ClientId id = f.server.client();
  REQUIRE(id != 0);
  CHECK(calls == 1);
  REQUIRE(f.hub.client(id));
  CHECK(f.hub.client(id)->channels == std::vector<std::string>{"added"});
  (void)f.hub.publish("added", ev("m", "via the hook"));
  REQUIRE(c.wait_events(1));
  CHECK(c.seen().events[0].data == "via the hook");

  refuse = true;
  Client refused(f.client_loop.ioc(), f.server.port(), Client::get("/events"));
  refused.read();
  REQUIRE(refused.wait_closed());
  CHECK(refused.seen().status == 503);
  CHECK(calls == 2);
  CHECK(f.server.results().at(1).error() == ssepp::errc::closed);
}

TEST_CASE("HTTP/1.0: the body is delimited by the close, with no chunk framing", "[asio]") {
  Fixture f;
  Client c(f.client_loop.ioc(), f.server.port(), Client::get("/events", {}, "HTTP/1.0"));
  c.read();
  const ssepp::ClientId id = f.server.client();
  REQUIRE(id != 0);
  (void)f.hub.broadcast(ev("m", "one"));
  REQUIRE(c.wait_events(1));
  REQUIRE(f.sse.end(id, ev("bye", "!")));
  REQUIRE(c.wait_closed());
  auto end = f.endings.wait(id);
  REQUIRE(end);
  CHECK(end->reason == EndReason::ended);
  Seen s = c.seen();
  CHECK_FALSE(s.chunked);
  CHECK_FALSE(s.has_header("Connection: keep-alive"));
  CHECK(datas(s) == std::vector<std::string>{"one", "!"});
  CHECK(s.body == ":\n\nevent: m\nid: 1\ndata: one\n\nevent: bye\ndata: !\n\n");
}

TEST_CASE("a burst of publishes leaves in fewer writes than events", "[asio]") {
  ServeOptions o;
  o.mailbox.max_frames = 0;  // the flood below must not overflow
  o.mailbox.max_bytes = 0;
  Fixture f(o);
  Client c(f.client_loop.ioc(), f.server.port(), Client::get());
  c.read();
  REQUIRE(f.server.client() != 0);
  REQUIRE(c.wait([](const Seen& s) { return s.head_done; }));
  const auto before = f.sse.stats();

  // A handler on the server's loop publishes 200 events: the flush runs after it, once.
  constexpr int burst = 200;
  f.server_loop.sync([&] {
    for (int i = 0; i < burst; ++i) (void)f.hub.broadcast(ev("m", std::to_string(i)));
  });
  REQUIRE(c.wait_events(burst));
  auto after = f.sse.stats();
  const auto writes = after.writes - before.writes;
  const auto frames = after.frames - before.frames;
  CHECK(frames == burst);
  CHECK(after.batches - before.batches == 1);
  CHECK(writes == 1);
  WARN("same-thread burst: " << frames << " events in " << writes << " write(s)");

  // From another thread, as fast as it can: batches form while a write is under way.
  constexpr int flood = 5000;
  for (int i = 0; i < flood; ++i) (void)f.hub.broadcast(ev("m", std::to_string(i)));
  REQUIRE(c.wait_events(burst + flood));
  auto last = f.sse.stats();
  const auto w2 = last.writes - after.writes;
  CHECK(w2 < flood);
  WARN("cross-thread flood: " << flood << " events in " << w2 << " writes ("
                              << (static_cast<double>(w2) / flood) << " writes per event)");
  Seen s = c.seen();
  for (int i = 0; i < flood; ++i)
    if (s.events[static_cast<std::size_t>(burst + i)].data != std::to_string(i)) FAIL("order at " << i);
}

TEST_CASE("publishes in handlers queued one behind another leave in few writes", "[asio]") {
  // Pipelined POST /publish requests reach a server this way: each request's handler publishes
  // one event, and its next steps (write the answer, read the next request) are handlers posted
  // behind it, so the streams woken by one publish are flushed before the next one runs unless
  // the flush waits for the handlers that keep sending.
  ServeOptions o;
  o.mailbox.max_frames = 0;
  o.mailbox.max_bytes = 0;
  Fixture f(o);
  Client c1(f.client_loop.ioc(), f.server.port(), Client::get());
  c1.read();
  REQUIRE(c1.wait([](const Seen& s) { return s.head_done; }));
  Client c2(f.client_loop.ioc(), f.server.port(), Client::get());
  c2.read();
  REQUIRE(c2.wait([](const Seen& s) { return s.head_done; }));
  const auto before = f.sse.stats();

  constexpr int count = 200;
  constexpr int steps = 3;  // handlers per request; the first one publishes
  std::promise<void> done;
  std::function<void(int)> step = [&](int k) {
    if (k == count * steps) return done.set_value();
    if (k % steps == 0) (void)f.hub.broadcast(ev("m", std::to_string(k / steps)));
    net::post(f.server_loop.ioc(), [&step, k] { step(k + 1); });
  };
  net::post(f.server_loop.ioc(), [&step] { step(0); });
  done.get_future().wait();
  REQUIRE(c1.wait_events(count));
  REQUIRE(c2.wait_events(count));
  const auto after = f.sse.stats();
  const auto writes = after.writes - before.writes;
  CHECK(after.frames - before.frames == 2 * count);
  // One write per event per stream before the flush waited; a write carries many events now.
  // The bound leaves room for slow (sanitized) runs, where the gathering's 1 ms ends sooner.
  CHECK(writes * 8 <= 2 * count);
  WARN("queued handlers: " << 2 * count << " deliveries in " << writes << " writes");
  for (Client* c : {&c1, &c2}) {
    Seen s = c->seen();
    for (int i = 0; i < count; ++i)
      if (s.events[static_cast<std::size_t>(i)].data != std::to_string(i)) FAIL("order at " << i);
  }
}

TEST_CASE("a reader that stops reading is cut by its Mailbox bound", "[asio]") {
  ServeOptions o;
  o.mailbox.max_bytes = 256 * 1024;
  o.stream.write_timeout = 60s;  // the bound must act first
  Fixture f(o);
  f.server.sndbuf = 4096;
  Client c(f.client_loop.ioc(), f.server.port(), Client::get(), nullptr, 4096);  // never reads
  const ssepp::ClientId id = f.server.client();
  REQUIRE(id != 0);
  const std::string payload = big(16 * 1024);
  for (int i = 0; i < 200 && !f.endings.of(id); ++i) {
    (void)f.hub.broadcast(ev("m", payload));
    std::this_thread::sleep_for(1ms);  // let the stream fill its socket first
  }
  auto end = f.endings.wait(id);
  REQUIRE(end);
  CHECK(end->reason == EndReason::overflow);
  CHECK(f.hub.stats().clients == 0);
  CHECK(f.sse.size() == 0);
}

TEST_CASE("a reader whose socket stays full is cut by the write timeout", "[asio]") {
  ServeOptions o;
  o.mailbox.max_bytes = 0;  // no bound: only the timeout can act
  o.mailbox.max_frames = 0;
  o.stream.write_timeout = 300ms;
  Fixture f(o);
  f.server.sndbuf = 4096;
  Client c(f.client_loop.ioc(), f.server.port(), Client::get(), nullptr, 4096);  // never reads
  const ssepp::ClientId id = f.server.client();
  REQUIRE(id != 0);
  const auto start = Clock::now();
  for (int i = 0; i < 64; ++i) (void)f.hub.broadcast(ev("m", big(16 * 1024)));  // 1 MiB
  auto end = f.endings.wait(id);
  REQUIRE(end);
  CHECK(end->reason == EndReason::write_timeout);
  CHECK(end->at - start >= 300ms);
  CHECK(end->at - start < 5s);
  CHECK(f.hub.stats().clients == 0);
}

TEST_CASE("a vanished client is noticed at once: EOF and RST", "[asio]") {
  Fixture f;
  const bool reset = GENERATE(false, true);
  Client c(f.client_loop.ioc(), f.server.port(), Client::get());
  c.read();
  const ssepp::ClientId id = f.server.client();
  REQUIRE(id != 0);
  REQUIRE(c.wait([](const Seen& s) { return s.head_done; }));
  const auto start = Clock::now();
  c.close(reset);
  auto end = f.endings.wait(id);
  REQUIRE(end);
  CHECK(end->reason == EndReason::client_closed);
  CHECK(end->at - start < 1s);  // no write needed to notice it
  if (reset) CHECK(end->error == std::errc::connection_reset);
  CHECK(f.hub.stats().clients == 0);
  CHECK(f.sse.size() == 0);
}

TEST_CASE("end writes everything queued, the last event and the final chunk, then closes",
          "[asio]") {
  Fixture f;
  Client c(f.client_loop.ioc(), f.server.port(), Client::get());
  const ssepp::ClientId id = f.server.client();
  REQUIRE(id != 0);
  // The client is not reading yet: the frames queue up (or sit in the socket) when end comes.
  for (int i = 0; i < 100; ++i) (void)f.hub.broadcast(ev("m", std::to_string(i) + big(1000)));
  REQUIRE(f.sse.end(id, ev("bye", "see you")));
  REQUIRE(eventually([&] { return f.hub.stats().clients == 0; }));  // released: no more frames
  (void)f.hub.broadcast(ev("m", "too late"));
  c.read();
  REQUIRE(c.wait_closed());
  Seen s = c.seen();
  CHECK(s.final_chunk);
  CHECK(s.raw.size() >= 5);
  CHECK(s.raw.substr(s.raw.size() - 5) == "0\r\n\r\n");
  REQUIRE(s.events.size() == 101);
  CHECK(s.events.back().type == "bye");
  CHECK(s.error == net::error::eof);  // FIN, not a reset
  auto end = f.endings.wait(id);
  REQUIRE(end);
  CHECK(end->reason == EndReason::ended);
  CHECK(f.sse.end(id).error() == ssepp::errc::unknown_client);
}

TEST_CASE("cut closes at once, without the final chunk; so does Broadcaster::disconnect",
          "[asio]") {
  Fixture f;
  const bool by_hub = GENERATE(false, true);
  Client c(f.client_loop.ioc(), f.server.port(), Client::get());
  c.read();
  const ssepp::ClientId id = f.server.client();
  REQUIRE(id != 0);
  (void)f.hub.broadcast(ev("m", "one"));
  REQUIRE(c.wait_events(1));
  if (by_hub)
    REQUIRE(f.hub.disconnect(id));
  else
    REQUIRE(f.sse.cut(id));
  REQUIRE(c.wait_closed());
  auto end = f.endings.wait(id);
  REQUIRE(end);
  CHECK(end->reason == (by_hub ? EndReason::disconnected : EndReason::cut));
  CHECK_FALSE(c.seen().final_chunk);
  CHECK(f.hub.stats().clients == 0);
}

TEST_CASE("shutdown ends every stream with a last event, then refuses new requests", "[asio]") {
  Fixture f;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<Client>(f.client_loop.ioc(), f.server.port(), Client::get()));
    clients.back()->read();
  }
  REQUIRE(eventually([&] { return f.sse.size() == 3; }));
  (void)f.hub.broadcast(ev("m", "last news"));
  std::promise<void> done;
  f.sse.shutdown(f.server_loop.ioc().get_executor(), [&] { done.set_value(); },
                 ev("bye", "server stopping"), 5s);
  REQUIRE(done.get_future().wait_for(20s) == std::future_status::ready);
  for (auto& c : clients) {
    REQUIRE(c->wait_closed());
    Seen s = c->seen();
    CHECK(s.final_chunk);
    CHECK(datas(s) == std::vector<std::string>{"last news", "server stopping"});
  }
  CHECK(f.sse.size() == 0);
  CHECK(f.hub.stats().clients == 0);
  CHECK(f.sse.stats().ended[static_cast<std::size_t>(EndReason::ended)] == 3);

  Client late(f.client_loop.ioc(), f.server.port(), Client::get());
  late.read();
  REQUIRE(late.wait_closed());
  CHECK(late.seen().status == 503);
}

TEST_CASE("shutdown cuts what has not drained by the deadline", "[asio]") {
  ServeOptions o;
  o.mailbox.max_bytes = 0;
  o.mailbox.max_frames = 0;
  o.stream.write_timeout = 60s;
  Fixture f(o);
  f.server.sndbuf = 4096;
  Client reader(f.client_loop.ioc(), f.server.port(), Client::get());
  reader.read();
  REQUIRE(f.server.client(0) != 0);
  Client stuck(f.client_loop.ioc(), f.server.port(), Client::get(), nullptr, 4096);  // never reads
  const ssepp::ClientId stuck_id = f.server.client(1);
  REQUIRE(stuck_id != 0);
  for (int i = 0; i < 64; ++i) (void)f.hub.broadcast(ev("m", big(16 * 1024)));
  REQUIRE(reader.wait_events(64));
  const auto start = Clock::now();
  std::promise<void> done;
  f.sse.shutdown(f.server_loop.ioc().get_executor(), [&] { done.set_value(); }, ssepp::Frame{}, 300ms);
  REQUIRE(done.get_future().wait_for(20s) == std::future_status::ready);
  CHECK(Clock::now() - start >= 300ms);
  REQUIRE(reader.wait_closed());
  CHECK(reader.seen().final_chunk);
  CHECK(f.endings.wait(f.server.client(0))->reason == EndReason::ended);
  CHECK(f.endings.wait(stuck_id)->reason == EndReason::end_timeout);
}

TEST_CASE("over TLS: events, batches, end with the final chunk, a vanished client", "[asio][tls]") {
  Fixture f({}, server_tls());
  auto tls = client_tls();
  for (auto d : {"a", "b"}) (void)f.hub.broadcast(ev("m", d));
  Client c(f.client_loop.ioc(), f.server.port(), Client::get("/events", "Last-Event-ID: 1\r\n"), tls);
  c.read();
  REQUIRE(c.wait_events(1));
  const ssepp::ClientId id = f.server.client();
  REQUIRE(id != 0);
  const auto before = f.sse.stats();
  f.server_loop.sync([&] {
    for (int i = 0; i < 100; ++i) (void)f.hub.broadcast(ev("m", std::to_string(i)));
  });
  REQUIRE(c.wait_events(101));
  const auto after = f.sse.stats();
  CHECK(after.writes - before.writes == 1);  // one TLS write for the batch
  REQUIRE(f.sse.end(id, ev("bye", "tls")));
  REQUIRE(c.wait_closed());
  Seen s = c.seen();
  CHECK(s.status == 200);
  CHECK(s.final_chunk);
  CHECK(s.events.front().data == "b");
  CHECK(s.events.back().type == "bye");
  CHECK(s.error == net::error::eof);  // close_notify: a clean TLS end
  CHECK(f.endings.wait(id)->reason == EndReason::ended);

  Client gone(f.client_loop.ioc(), f.server.port(), Client::get(), tls);
  gone.read();
  const ssepp::ClientId gone_id = f.server.client(1);
  REQUIRE(gone_id != 0);
  REQUIRE(gone.wait([](const Seen& x) { return x.head_done; }));
  gone.close(true);
  auto end = f.endings.wait(gone_id);
  REQUIRE(end);
  CHECK(end->reason == EndReason::client_closed);
}

TEST_CASE("beast::tcp_stream, plain and under TLS: the request's timeout does not reach the stream",
          "[asio][tls]") {
  const bool tls = GENERATE(false, true);
  Fixture f({}, tls ? server_tls() : nullptr);
  f.server.tcp_stream_timeout = 300ms;  // set for the request read, never cleared by the host
  Client c(f.client_loop.ioc(), f.server.port(), Client::get(), tls ? client_tls() : nullptr);
  c.read();
  const ssepp::ClientId id = f.server.client();
  REQUIRE(id != 0);
  (void)f.hub.broadcast(ev("m", "early"));
  REQUIRE(c.wait_events(1));
  std::this_thread::sleep_for(600ms);  // past the request's timeout
  (void)f.hub.broadcast(ev("m", "late"));
  REQUIRE(c.wait_events(2));
  CHECK_FALSE(f.endings.of(id));
  REQUIRE(f.sse.end(id));
  REQUIRE(c.wait_closed());
  CHECK(c.seen().final_chunk);
  CHECK(f.endings.wait(id)->reason == EndReason::ended);
}

TEST_CASE("EventStream on its own: a socket, a mailbox, the hooks", "[asio]") {
  Loop loop;
  tcp::acceptor acceptor(loop.ioc(), tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  std::promise<tcp::socket> accepted;
  acceptor.async_accept([&](beast::error_code, tcp::socket s) { accepted.set_value(std::move(s)); });
  Loop client_loop;
  Client c(client_loop.ioc(), acceptor.local_endpoint().port(), Client::get());
  c.read();
  tcp::socket socket = accepted.get_future().get();
  const auto fd = socket.native_handle();
  const auto nodelay = [fd] {
    int on = 0;
    socklen_t len = sizeof on;
    return ::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0 && on != 0;
  };
  CHECK_FALSE(nodelay());  // an accepted socket starts with Nagle on

  ssepp::Mailbox mailbox;
  using Stream = ssepp::asio::EventStream<tcp::socket>;
  auto stream = std::make_shared<Stream>(std::move(socket), mailbox, 7);
  std::atomic<int> released{0};
  Endings endings;
  ssepp::asio::StreamHooks hooks;
  hooks.on_release = [&](ssepp::ClientId id) { released += id == 7 ? 1 : 100; };
  hooks.on_end = endings.hook();
  ssepp::asio::StreamHead head;
  const std::string first = ssepp::encode(ev("hello", "first"));
  head.first = first;
  head.headers.push_back({"X-Test", "1"});
  stream->start(head, std::move(hooks));
  (void)mailbox.send(ssepp::Frame::from_event(ev("m", "queued")));
  REQUIRE(c.wait_events(2));
  CHECK(nodelay());  // StreamOptions::no_delay: batches are written whole, Nagle only delays
  stream->end();
  REQUIRE(c.wait_closed());
  Seen s = c.seen();
  CHECK(s.has_header("X-Test: 1\r\n"));
  CHECK(datas(s) == std::vector<std::string>{"first", "queued"});
  CHECK(s.final_chunk);
  auto end = endings.wait(7);
  REQUIRE(end);
  CHECK(end->reason == EndReason::ended);
  CHECK(released == 1);
  CHECK(mailbox.closed());
  auto st = stream->stats();
  CHECK(st.ended);
  CHECK(st.frames == 1);
  CHECK(st.bytes == s.raw.size());
  CHECK(ssepp::asio::to_string(EndReason::write_timeout) == "write_timeout");
}

// The manual's "add SSE to a Beast server" snippet, compiled here (the lines between the marks).
namespace readme_snippet {
ssepp::Event snapshot() { return ssepp::Event{}.with_type("snapshot").with_data("{}"); }
std::string user_of(const http::request<http::string_body>&) { return "alice"; }
struct Session {
  beast::tcp_stream stream_;
  http::request<http::string_body> req_;
  ssepp::asio::EventStreams& sse;
  net::io_context& ioc;
  void on_read() {
    // ---- snippet
    if (ssepp::target_path({req_.target().data(), req_.target().size()}) == "/events") {
      ssepp::ConnectOptions who;
      who.user = user_of(req_);  // pools, channels: who gets what
      who.channels = ssepp::query_parameters({req_.target().data(), req_.target().size()}, "channel").values;
      (void)sse.serve(std::move(stream_), req_, who, [](ssepp::asio::StreamStart& s) {
        if (s.replay_missed()) s.first += ssepp::encode(snapshot());  // resumed from an unknown id
      });
      return;  // the stream owns the connection now
    }
    // ---- end of snippet
  }
  void on_signal() {
    sse.shutdown(ioc.get_executor(), [this] { ioc.stop(); },
                 ssepp::Event{}.with_type("bye").with_data("server stopping"));
  }
};
}  // namespace readme_snippet
