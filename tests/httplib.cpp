// ssepp::httplib: EventEndpoint on a real cpp-httplib server, read by raw loopback sockets.
#include <ssepp/httplib.hpp>
#include <ssepp/testing.hpp>

#include "support/catch.hpp"
#include "support/httplib_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

// Debian's cpp-httplib is a compiled library, not built with ThreadSanitizer: its function-local
// statics and buffers are synchronised in code TSan cannot see (e.g. the final-chunk marker, a
// static initialised on one connection thread and read on another). Accesses its interceptors see
// from inside that library are not ours to judge; everything compiled here still is.
extern "C" const char* __tsan_default_suppressions() {
  return "called_from_lib:libcpp-httplib.so\n";
}

using namespace httplib_test;

TEST_CASE("httplib: the head and the preamble arrive at once on a quiet channel", "[httplib]") {
  ssepp::httplib::EndpointOptions o;
  o.preamble.retry = 1500ms;
  TestServer s(o);
  const auto t0 = Clock::now();
  RawClient c(s.port, "/events?channel=quiet", "Accept-Encoding: gzip, deflate\r\n");
  REQUIRE(c.read_until([&] { return c.body().size() >= 13; }, 2s));
  CHECK(Clock::now() - t0 < 1s);  // no event was sent: nothing but the preamble can bring it
  CHECK(c.status() == 200);
  CHECK(c.header("Content-Type") == "text/event-stream");  // the bare type: never compressed
  CHECK(c.header("Content-Encoding").empty());
  CHECK(c.header("Cache-Control") == "no-cache");
  CHECK(c.header("X-Accel-Buffering") == "no");
  CHECK(c.header("Transfer-Encoding") == "chunked");
  CHECK(c.body() == "retry: 1500\n\n");
  CHECK(s.hub.stats().clients == 1);
  CHECK(s.endpoint.open() == 1);

  // A live event then arrives on the open stream.
  REQUIRE(s.hub.publish("quiet", ev("hello")));
  REQUIRE(c.read_until([&] { return c.count() == 1; }));
  CHECK(c.events()[0].data == "hello");
  CHECK(c.events()[0].id == "1");
}

TEST_CASE("httplib: the default preamble is a bare comment", "[httplib]") {
  TestServer s;
  RawClient c(s.port, "/events");
  REQUIRE(c.read_until([&] { return c.body().size() >= 3; }, 2s));
  CHECK(c.body() == ":\n\n");
}

TEST_CASE("httplib: Last-Event-ID replay from the header or the query", "[httplib]") {
  TestServer s;
  for (const char* d : {"a", "b", "c"}) REQUIRE(s.hub.publish("c", ev(d)));  // ids 1, 2, 3
  REQUIRE(s.hub.publish("other", ev("not mine")));                            // id 4

  SECTION("header") {
    RawClient c(s.port, "/events?channel=c", "Last-Event-ID: 1\r\n");
    REQUIRE(c.read_until([&] { return c.count() == 2; }));
    CHECK(datas(c.events()) == std::vector<std::string>{"b", "c"});
    REQUIRE(s.hub.publish("c", ev("d")));
    REQUIRE(c.read_until([&] { return c.count() == 3; }));
    CHECK(c.events()[2].data == "d");
  }
  SECTION("query") {
    RawClient c(s.port, "/events?channel=c&lastEventId=2");
    REQUIRE(c.read_until([&] { return c.count() == 1; }));
    CHECK(datas(c.events()) == std::vector<std::string>{"c"});
  }
  SECTION("the header wins over the query") {
    RawClient c(s.port, "/events?channel=c&lastEventId=2", "Last-Event-ID: 1\r\n");
    REQUIRE(c.read_until([&] { return c.count() == 2; }));
    CHECK(datas(c.events()) == std::vector<std::string>{"b", "c"});
  }
  SECTION("a replay goes out with the preamble in one write") {
    for (int i = 0; i < 300; ++i) REQUIRE(s.hub.publish("c", ev("r" + std::to_string(i))));
    RawClient c(s.port, "/events?channel=c", "Last-Event-ID: 3\r\n");
    REQUIRE(c.read_until([&] { return c.count() == 300; }));
    CHECK(c.events().front().data == "r0");
    CHECK(c.events().back().data == "r299");
    REQUIRE(eventually([&] { return s.endpoint.stats().frames == 300; }));
    CHECK(s.endpoint.stats().writes == 1);
  }
}

TEST_CASE("httplib: an invalid Last-Event-ID is answered 400", "[httplib]") {
  ssepp::httplib::EndpointOptions o;
  o.max_last_event_id = 8;
  TestServer s(o);
  SECTION("too long") {
    RawClient c(s.port, "/events", "Last-Event-ID: 123456789\r\n");
    REQUIRE(c.read_until([&] { return c.has_head(); }));
    CHECK(c.status() == 400);
  }
  SECTION("a line break in the query") {
    RawClient c(s.port, "/events?lastEventId=a%0Ab");
    REQUIRE(c.read_until([&] { return c.has_head(); }));
    CHECK(c.status() == 400);
  }
  CHECK(s.hub.stats().clients == 0);
  CHECK(s.hub.stats().connects == 0);
  CHECK(s.endpoint.stats().refused == 1);
}

TEST_CASE("httplib: a missed replay reaches on_open, which sends a snapshot first", "[httplib]") {
  std::mutex m;
  std::vector<ssepp::Replay> seen;
  std::vector<std::string> paths;
  ssepp::httplib::EndpointOptions o;
  o.on_open = [&](const ::httplib::Request& req, ssepp::httplib::StreamStart& start) {
    {  // on a connection thread: recorded here, checked on the test's thread
      std::lock_guard<std::mutex> lock(m);
      seen.push_back(start.replay);
      paths.push_back(req.path);
    }
    if (start.replay_missed()) start.first += ssepp::encode(ev("state", "snapshot"));
  };
  ssepp::BroadcasterOptions bo;
  bo.history_size = 2;
  TestServer s(o, bo);
  for (const char* d : {"1", "2", "3", "4", "5"}) REQUIRE(s.hub.broadcast(ev(d)));  // keeps 4, 5

  auto expect = [&](const std::string& id, ssepp::Replay replay, std::vector<std::string> data) {
    RawClient c(s.port, "/events", "Last-Event-ID: " + id + "\r\n");
    REQUIRE(c.read_until([&] { return c.count() == data.size(); }));
    CHECK(datas(c.events()) == data);
    std::lock_guard<std::mutex> lock(m);
    REQUIRE(!seen.empty());
    CHECK(seen.back() == replay);
  };
  expect("1", ssepp::Replay::too_old, {"state"});
  expect("zzz", ssepp::Replay::unknown, {"state"});
  expect("4", ssepp::Replay::found, {"5"});
  std::lock_guard<std::mutex> lock(m);
  CHECK(paths == std::vector<std::string>(3, "/events"));
}

TEST_CASE("httplib: connect_options says who the client is, or refuses it", "[httplib]") {
  ssepp::httplib::EndpointOptions o;
  o.connect_options = [](const ::httplib::Request& req, ::httplib::Response& res)
      -> std::optional<ssepp::ConnectOptions> {
    std::string user = req.get_header_value("X-User");
    if (user == "mallory") return std::nullopt;  // no status set: 403
    if (user.empty()) {
      res.status = 401;
      return std::nullopt;
    }
    ssepp::ConnectOptions who;
    who.user = user;
    return who;
  };
  TestServer s(o);
  {
    RawClient anon(s.port, "/events");
    REQUIRE(anon.read_until([&] { return anon.has_head(); }));
    CHECK(anon.status() == 401);
    RawClient mallory(s.port, "/events", "X-User: mallory\r\n");
    REQUIRE(mallory.read_until([&] { return mallory.has_head(); }));
    CHECK(mallory.status() == 403);
  }
  RawClient bob(s.port, "/events", "X-User: bob\r\n");
  REQUIRE(bob.read_until([&] { return bob.body().size() >= 3; }));
  REQUIRE(eventually([&] { return s.hub.stats().clients == 1; }));
  REQUIRE(s.hub.send_to_user("bob", ev("for bob")));
  REQUIRE(bob.read_until([&] { return bob.count() == 1; }));
  CHECK(s.endpoint.stats().refused == 2);
}

TEST_CASE("httplib: a failed connect is answered 503", "[httplib]") {
  SECTION("after close_all") {
    TestServer s;
    REQUIRE(s.hub.close_all());
    RawClient c(s.port, "/events");
    REQUIRE(c.read_until([&] { return c.has_head(); }));
    CHECK(c.status() == 503);
  }
  SECTION("a replay that does not fit the mailbox") {
    ssepp::httplib::EndpointOptions o;
    o.mailbox.max_frames = 2;
    TestServer s(o);
    for (int i = 0; i < 5; ++i) REQUIRE(s.hub.broadcast(ev("x")));
    RawClient c(s.port, "/events", "Last-Event-ID: 1\r\n");
    REQUIRE(c.read_until([&] { return c.has_head(); }));
    CHECK(c.status() == 503);
    CHECK(s.hub.stats().clients == 0);
    CHECK(s.endpoint.open() == 0);
  }
}

TEST_CASE("httplib: a burst arrives complete and in order", "[httplib]") {
  ssepp::httplib::EndpointOptions o;
  o.mailbox.max_frames = 4096;  // the whole burst may be queued at once on a busy machine
  TestServer s(o);
  RawClient c(s.port, "/events");
  REQUIRE(c.read_until([&] { return c.body().size() >= 3; }));
  const auto writes_before = s.endpoint.stats().writes;
  constexpr int n = 2000;
  for (int i = 0; i < n; ++i) REQUIRE(s.hub.broadcast(ev(std::to_string(i)))->delivered == 1);
  REQUIRE(c.read_until([&] { return c.count() == n; }, 10s));
  auto got = c.events();
  for (int i = 0; i < n; ++i) {
    REQUIRE(got[static_cast<std::size_t>(i)].data == std::to_string(i));
    REQUIRE(got[static_cast<std::size_t>(i)].id == std::to_string(i + 1));
  }
  // How many writes depends on how the publisher and the writer interleave: at most one each.
  REQUIRE(eventually([&] { return s.endpoint.stats().frames == n; }));
  const auto writes = s.endpoint.stats().writes - writes_before;
  CHECK(writes <= n);
}

TEST_CASE("httplib: events queued while the writer is busy go out in one write", "[httplib]") {
  // on_open runs before the stream's first write: holding it there while events are published
  // (the client is connected already) stands for a writer busy with an earlier write.
  std::mutex m;
  std::condition_variable cv;
  bool go = false;
  ssepp::httplib::EndpointOptions o;
  o.on_open = [&](const ::httplib::Request&, ssepp::httplib::StreamStart&) {
    std::unique_lock<std::mutex> lock(m);
    cv.wait_for(lock, 5s, [&] { return go; });
  };
  TestServer s(o);
  RawClient c(s.port, "/events");
  REQUIRE(eventually([&] { return s.hub.stats().clients == 1; }));
  constexpr int n = 500;
  for (int i = 0; i < n; ++i) REQUIRE(s.hub.broadcast(ev(std::to_string(i))));
  {
    std::lock_guard<std::mutex> lock(m);
    go = true;
  }
  cv.notify_all();
  REQUIRE(c.read_until([&] { return c.count() == n; }, 10s));
  CHECK(c.events().back().data == std::to_string(n - 1));
  // (counted once the write returned, which may be after the client has the bytes)
  REQUIRE(eventually([&] { return s.endpoint.stats().frames == n; }));
  CHECK(s.endpoint.stats().writes == 1);  // the preamble and all 500 events
}

TEST_CASE("httplib: a client that goes away is removed from the broadcaster", "[httplib]") {
  TestServer s;
  {
    RawClient c(s.port, "/events");
    REQUIRE(c.read_until([&] { return c.body().size() >= 3; }));
    REQUIRE(s.hub.stats().clients == 1);
    linger l{1, 0};  // close with RST
    ::setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  // A write to the vanished peer fails: the stream ends and the client leaves the broadcaster.
  CHECK(eventually([&] {
    (void)s.hub.broadcast(ev("anyone?"));
    return s.hub.stats().clients == 0 && s.endpoint.open() == 0;
  }, 5s));
  auto ends = s.ended();
  REQUIRE(ends.size() == 1);
  CHECK(ends[0].second == ssepp::httplib::EndReason::write_failed);
}

TEST_CASE("httplib: shutdown ends every open stream within a second", "[httplib]") {
  TestServer s;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<RawClient>(s.port, "/events"));
    REQUIRE(clients.back()->read_until([&] { return clients.back()->body().size() >= 3; }));
  }
  REQUIRE(s.endpoint.open() == 4);
  REQUIRE(s.hub.broadcast(ev("queued")));
  const auto t0 = Clock::now();
  auto left = s.endpoint.shutdown(ev("bye", "shutdown"));
  REQUIRE(left);
  CHECK(*left == 0);
  for (auto& c : clients) {
    bool complete = false;
    REQUIRE(c->read_until([&] { return c->eof; }, 2s));
    CHECK(datas(ssepp::parse_events(c->body(&complete)).value().events) ==
          std::vector<std::string>{"queued", "bye"});
    CHECK(complete);  // the final chunk, then the connection closed
  }
  CHECK(Clock::now() - t0 < 1s);
  auto ends = s.ended();
  CHECK(ends.size() == 4);
  for (auto& e : ends) CHECK(e.second == ssepp::httplib::EndReason::ended);
  // New requests are refused.
  RawClient late(s.port, "/events");
  REQUIRE(late.read_until([&] { return late.has_head(); }));
  CHECK(late.status() == 503);
}

TEST_CASE("httplib: a server stop ends idle streams within a second", "[httplib]") {
  TestServer s;
  RawClient a(s.port, "/events"), b(s.port, "/events?channel=x");
  REQUIRE(a.read_until([&] { return a.body().size() >= 3; }));
  REQUIRE(b.read_until([&] { return b.body().size() >= 3; }));
  const auto t0 = Clock::now();
  s.stop();  // returns once every connection thread is done
  CHECK(Clock::now() - t0 < 1s);
  CHECK(a.read_until([&] { return a.eof; }, 1s));
  CHECK(b.read_until([&] { return b.eof; }, 1s));
  CHECK(s.hub.stats().clients == 0);
  CHECK(s.endpoint.open() == 0);
  auto ends = s.ended();
  REQUIRE(ends.size() == 2);
  for (auto& e : ends) CHECK(e.second == ssepp::httplib::EndReason::stopped);
}

TEST_CASE("httplib: a client that overflows its mailbox is cut", "[httplib]") {
  ssepp::httplib::EndpointOptions o;
  o.mailbox.max_bytes = 256 << 10;
  TestServer s(o);
  RawClient c(s.port, "/events");
  REQUIRE(c.read_until([&] { return c.body().size() >= 3; }));
  // The client reads nothing: the socket fills, then the mailbox overflows.
  const std::string big(64 << 10, 'x');
  REQUIRE(eventually([&] {
    (void)s.hub.broadcast(ev(big));
    return s.hub.stats().clients == 0;
  }, 10s));
  // Once it reads again, the stream is cut: no final chunk.
  REQUIRE(c.read_until([&] { return c.eof; }, 5s));
  bool complete = true;
  (void)c.body(&complete);
  CHECK_FALSE(complete);
  REQUIRE(eventually([&] { return s.ended().size() == 1; }));
  CHECK(s.ended()[0].second == ssepp::httplib::EndReason::cut);
}

TEST_CASE("httplib: HEAD answers the headers without connecting a client", "[httplib]") {
  TestServer s;
  RawClient c(s.port, "/events", "", "HEAD");
  REQUIRE(c.read_until([&] { return c.has_head(); }));
  CHECK(c.status() == 200);
  CHECK(c.header("Content-Type") == "text/event-stream");
  CHECK(s.hub.stats().connects == 0);
  CHECK(s.endpoint.stats().opened == 0);
  CHECK(to_string(ssepp::httplib::EndReason::cut) == "cut");
  CHECK(to_string(ssepp::httplib::EndReason::write_failed) == "write_failed");
}

TEST_CASE("httplib: an invalid preamble is refused at construction", "[httplib]") {
  Hub hub;
  ssepp::httplib::EndpointOptions o;
  o.preamble.retry = std::chrono::milliseconds(-1);
  auto made = ssepp::httplib::EventEndpoint::try_create(hub, o);
  REQUIRE_FALSE(made);
  CHECK(made.error() == ssepp::errc::invalid_retry);
  auto handler = ssepp::httplib::serve_events(hub);
  CHECK(static_cast<bool>(handler));
}
