// ssepp::asio::EventClient against real loopback servers that fail the way servers do: killed
// mid-stream and restarted on the same port, rate limits with Retry-After, overloads, refusals,
// 303 and redirect loops, a line that never ends, a CA the client does not trust.
#include "client_support.hpp"

#include "../support/catch.hpp"

#include <boost/asio/post.hpp>

#include <future>

using namespace client_test;

namespace {

/// The events 1..n as the Record holds them: ids and data "1", "2", ...
std::vector<std::string> ids_of(Record& rec) {
  std::lock_guard<std::mutex> lock(rec.m);
  std::vector<std::string> ids;
  for (const auto& e : rec.events) {
    if (e.data != e.id) ids.push_back("mismatch:" + e.id + "/" + e.data);
    else ids.push_back(e.id);
  }
  return ids;
}

std::vector<std::string> numbers(int from, int to) {
  std::vector<std::string> r;
  for (int i = from; i <= to; ++i) r.push_back(std::to_string(i));
  return r;
}

/// Times at which a server's scripts reached a point, in order.
struct Stamps {
  std::mutex m;
  std::vector<Clock::time_point> at;
  void stamp() {
    std::lock_guard<std::mutex> lock(m);
    at.push_back(Clock::now());
  }
  std::vector<Clock::time_point> get() {
    std::lock_guard<std::mutex> lock(m);
    return at;
  }
};

}  // namespace

TEST_CASE("a server killed mid-stream and restarted on its port: every event once, in order",
          "[asio][client][transport]") {
  // The first server sends events 1..3 and half of event 4, then dies: its listening socket and
  // its connections closed. The restarted one resumes after the Last-Event-ID it is sent.
  auto first = std::make_unique<ScriptServer>([](Exchange& x) {
    x.stream_head();
    x.chunk(event_text(1) + event_text(2) + event_text(3));
    x.chunk("id: 4\ndata: 4\n");  // no blank line: never dispatched
    x.wait_closed(20s);
  });
  const unsigned short port = first->port();
  auto o = options(first->url());
  o.client.retry = 50ms;
  Record rec;
  Loop loop;
  auto c = make(loop.ioc(), o);
  c->start(rec.handlers());
  REQUIRE(rec.wait_events(3));
  first.reset();  // killed: acceptor and connections closed, threads joined
  // While it is down the client's attempts are refused (at least one), then it comes back.
  REQUIRE(rec.wait([&] { return rec.reconnects.size() >= 2; }));
  ScriptServer second(
      [](Exchange& x) {
        const std::string last = x.req.header("last-event-id");
        int from = 1;
        if (!last.empty()) from = std::stoi(last) + 1;
        x.stream_head();
        std::string all;
        for (int i = from; i <= 8; ++i) all += event_text(i);
        x.chunk(all);
        x.wait_closed(20s);
      },
      ScriptServer::Tls::none, port);
  REQUIRE(rec.wait_events(8));
  c->close();
  REQUIRE(rec.wait_closed());
  CHECK_FALSE(rec.close_error);
  CHECK(ids_of(rec) == numbers(1, 8));
  {
    std::lock_guard<std::mutex> lock(rec.m);
    REQUIRE(rec.reconnects.size() >= 2);
    CHECK(rec.reconnects[0] == code(boost::beast::http::error::partial_message));
    CHECK(rec.reconnects[1] == code(net::error::connection_refused));
  }
  auto reqs = second.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].header("last-event-id") == "3");
}

TEST_CASE("api policy: 429 waits its Retry-After, 503 is retried, 401 fails at once",
          "[asio][client][transport]") {
  SECTION("429 with Retry-After: 1, then 200") {
    Stamps answered;  // when the 429 was written, then when the retry arrived
    ScriptServer server([&](Exchange& x) {
      if (x.index == 0) {
        x.write("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 4\r\n\r\nslow");
        answered.stamp();
        return;
      }
      answered.stamp();
      x.stream_head();
      x.chunk(event_text(1) + event_text(2));
      x.last_chunk();
    });
    auto o = options(server.url());
    o.client.policy = ssepp::RetryPolicy::api;
    o.client.reconnect_on_end = false;
    Record rec;
    Loop loop;
    auto c = make(loop.ioc(), o);
    c->start(rec.handlers());
    REQUIRE(rec.wait_closed());
    CHECK_FALSE(rec.close_error);
    CHECK(ids_of(rec) == numbers(1, 2));
    CHECK(server.requests().size() == 2);  // exactly one retry
    CHECK(rec.reconnects.size() == 1);
    const auto at = answered.get();
    REQUIRE(at.size() == 2);
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(at[1] - at[0]);
    INFO("retried after " << waited.count() << " ms");
    CHECK(waited >= 1000ms);  // the client reads the 429 after it was written
    CHECK(waited < 10s);
  }
  SECTION("503, then 200") {
    ScriptServer server([](Exchange& x) {
      if (x.index == 0) {
        x.write("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy");
        return;
      }
      x.stream_head();
      x.chunk(event_text(1));
      x.last_chunk();
    });
    auto o = options(server.url());
    o.client.policy = ssepp::RetryPolicy::api;
    o.client.reconnect_on_end = false;
    Record rec;
    Loop loop;
    auto c = make(loop.ioc(), o);
    c->start(rec.handlers());
    REQUIRE(rec.wait_closed());
    CHECK_FALSE(rec.close_error);
    CHECK(ids_of(rec) == numbers(1, 1));
    CHECK(server.requests().size() == 2);
    CHECK(rec.reconnects.size() == 1);
  }
  SECTION("401 under both policies: one request, then errc::bad_status") {
    for (auto policy : {ssepp::RetryPolicy::browser, ssepp::RetryPolicy::api}) {
      INFO("policy " << to_string(policy));
      ScriptServer server([](Exchange& x) {
        x.write("HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\n\r\nno such key!");
      });
      auto o = options(server.url());
      o.client.policy = policy;
      o.client.retry = 1ms;  // a retry would come at once
      Record rec;
      Loop loop;
      auto c = make(loop.ioc(), o);
      c->start(rec.handlers());
      REQUIRE(rec.wait_closed());
      CHECK(rec.close_error == ssepp::errc::bad_status);
      CHECK(rec.reconnects.empty());
      CHECK(c->attempts() == 1);
      CHECK(server.requests().size() == 1);
      CHECK(server.connections() == 1);
      CHECK(c->client().status() == 401);
      CHECK(c->client().error_body() == "no such key!");
    }
  }
}

TEST_CASE("redirects: 303 turns a POST into a bodiless GET, 307/308 keep it; a loop ends at "
          "max_redirects",
          "[asio][client][transport]") {
  SECTION("303") {
    ScriptServer server([](Exchange& x) {
      if (x.req.target == "/submit") {
        x.write("HTTP/1.1 303 See Other\r\nLocation: /result\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      const bool bodiless_get = x.req.method == "GET" && x.req.body.empty() &&
                                x.req.header("content-type").empty() &&
                                x.req.header("content-length").empty() &&
                                x.req.header("transfer-encoding").empty();
      if (!bodiless_get) {
        x.write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      x.stream_head();
      x.chunk(event("result"));
      x.last_chunk();
    });
    auto o = options(server.url("/submit"));
    o.client.method = "POST";
    o.client.body = R"({"q":1})";
    o.client.headers = {{"Content-Type", "application/json"}};
    o.reconnect = false;
    Record rec;
    Loop loop;
    auto c = make(loop.ioc(), o);
    c->start(rec.handlers());
    REQUIRE(rec.wait_closed());
    CHECK_FALSE(rec.close_error);
    REQUIRE(rec.events.size() == 1);
    CHECK(rec.events[0].data == "result");
    auto reqs = server.requests();
    REQUIRE(reqs.size() == 2);
    CHECK(reqs[0].method == "POST");
    CHECK(reqs[0].body == R"({"q":1})");
    CHECK(reqs[0].header("content-type") == "application/json");
    CHECK(reqs[1].target == "/result");
    CHECK(reqs[1].method == "GET");
    CHECK(reqs[1].body.empty());
    CHECK(reqs[1].header("content-type").empty());
    CHECK(reqs[1].header("content-length").empty());
  }
  SECTION("a 307 then a 308 keep the POST and its body") {
    ScriptServer server([](Exchange& x) {
      if (x.req.target == "/one") {
        x.write("HTTP/1.1 307 Temporary Redirect\r\nLocation: /two\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      if (x.req.target == "/two") {
        x.write("HTTP/1.1 308 Permanent Redirect\r\nLocation: /three\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      x.stream_head();
      x.chunk(event(x.req.method + " " + x.req.body + " " + x.req.header("content-type")));
      x.last_chunk();
    });
    auto o = options(server.url("/one"));
    o.client.method = "POST";
    o.client.body = "payload";
    o.client.headers = {{"Content-Type", "text/plain"}};
    o.reconnect = false;
    Record rec;
    Loop loop;
    auto c = make(loop.ioc(), o);
    c->start(rec.handlers());
    REQUIRE(rec.wait_closed());
    CHECK_FALSE(rec.close_error);
    REQUIRE(rec.events.size() == 1);
    CHECK(rec.events[0].data == "POST payload text/plain");
    auto reqs = server.requests();
    REQUIRE(reqs.size() == 3);
    CHECK(reqs[1].target == "/two");
    CHECK(reqs[2].target == "/three");
  }
  SECTION("A -> B -> A ... past max_redirects") {
    ScriptServer server([](Exchange& x) {
      const std::string to = x.req.target == "/a" ? "/b" : "/a";
      x.write("HTTP/1.1 302 Found\r\nLocation: " + to + "\r\nContent-Length: 0\r\n\r\n");
    });
    auto o = options(server.url("/a"));
    o.client.max_redirects = 5;
    o.client.retry = 1ms;
    Record rec;
    Loop loop;
    auto c = make(loop.ioc(), o);
    c->start(rec.handlers());
    REQUIRE(rec.wait_closed());
    CHECK(rec.close_error == ssepp::errc::too_many_redirects);
    CHECK(rec.reconnects.empty());  // a policy failure, not retried
    auto reqs = server.requests();
    REQUIRE(reqs.size() == 6);  // the first request and 5 redirects followed
    for (std::size_t i = 0; i < reqs.size(); ++i) CHECK(reqs[i].target == (i % 2 ? "/b" : "/a"));
  }
}

TEST_CASE("10 MiB without a line break: line_too_long, the parser's memory stays bounded",
          "[asio][client][transport]") {
  constexpr std::size_t total = std::size_t{10} << 20;
  std::atomic<std::size_t> written{0};
  std::atomic<bool> finished{false};
  ScriptServer server([&](Exchange& x) {
    x.write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked"
            "\r\n\r\n");
    x.chunk("data: ");
    const std::string block(std::size_t{64} * 1024, 'x');
    std::size_t sent = 0;
    while (sent < total && x.chunk(block)) sent += block.size();
    written = sent;
    finished = true;
  });
  auto o = options(server.url());
  o.reconnect = false;  // default parser limits: max_line 1 MiB
  const std::size_t max_line = o.client.parser.limits.max_line;
  REQUIRE(max_line < total);
  Record rec;
  Loop loop;
  auto c = make(loop.ioc(), o);
  c->start(rec.handlers());
  REQUIRE(rec.wait_closed());
  CHECK(rec.close_error == ssepp::errc::line_too_long);
  CHECK(rec.events.empty());
  // Read on the client's executor, once its work is over.
  std::promise<std::size_t> capacity;
  net::post(loop.ioc(), [&] { capacity.set_value(c->client().parser().buffer_capacity()); });
  const std::size_t held = capacity.get_future().get();
  INFO("parser buffers " << held << " bytes");
  CHECK(held <= 2 * max_line);  // not the 10 MiB offered
  // The server's script ends (its writes fail once the client is gone, or all 10 MiB went into
  // the socket buffers): nothing hangs. That the client stops reading long before the end of a
  // longer flood is checked by the "endless line" section of client.cpp (64 MiB offered).
  const auto deadline = Clock::now() + 20s;
  while (!finished && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  CHECK(finished);
  CHECK(written <= total);
}

TEST_CASE("a CA the client does not trust: a TLS error and no retry storm",
          "[asio][client][transport]") {
  for (auto policy : {ssepp::RetryPolicy::browser, ssepp::RetryPolicy::api}) {
    INFO("policy " << to_string(policy));
    ScriptServer server([](Exchange& x) { x.stream_head(); }, ScriptServer::Tls::good);
    auto o = options(server.url());
    o.ca_file = Pki::get().other_cert;  // a valid PEM certificate, not the server's CA
    o.client.policy = policy;
    o.client.retry = 1ms;
    Record rec;
    Loop loop;
    auto c = make(loop.ioc(), o);
    c->start(rec.handlers());
    REQUIRE(rec.wait_closed());
    CHECK(rec.close_error.category().name() == std::string("asio.ssl"));
    CHECK(rec.close_error.message().find("certificate verify failed") != std::string::npos);
    CHECK(rec.reconnects.empty());
    CHECK(c->attempts() == 1);
    CHECK(server.requests().empty());
    CHECK(server.connections() <= 1);  // at most one handshake
  }
}
