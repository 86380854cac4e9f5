// The sans-IO client's state machine, driven with a fake clock.
#include <ssepp/client.hpp>

#include <set>
#include <string>
#include <vector>

#include "support/catch.hpp"

using namespace std::chrono_literals;
using Clock = ssepp::Client::Clock;

namespace {

struct Log {
  std::vector<std::string> events;
  void operator()(const ssepp::EventView& ev) {
    events.push_back(std::string(ev.type) + "|" + std::string(ev.data) + "|" + std::string(ev.id));
  }
};

ssepp::ClientOptions no_jitter() {
  ssepp::ClientOptions o;
  o.jitter = false;
  o.retry = 1000ms;
  o.max_delay = 10s;
  o.healthy_after = 5s;
  return o;
}

std::string header(const std::vector<ssepp::Header>& h, const std::string& name) {
  for (auto& [k, v] : h)
    if (k == name) return v;
  return "<none>";
}

}  // namespace

TEST_CASE("request headers: Accept, Cache-Control, then the caller's; Last-Event-ID once known") {
  ssepp::Client c(no_jitter());
  auto h = c.request_headers({{"Authorization", "Bearer t"}});
  REQUIRE(h.size() == 3);
  CHECK(h[0] == ssepp::Header{"Accept", "text/event-stream"});
  CHECK(h[1] == ssepp::Header{"Cache-Control", "no-cache"});
  CHECK(h[2] == ssepp::Header{"Authorization", "Bearer t"});
  CHECK(header(h, "Last-Event-ID") == "<none>");

  auto t0 = Clock::time_point{};
  REQUIRE(c.on_response(200, "text/event-stream", t0) == ssepp::Verdict::open);
  Log log;
  CHECK_FALSE(c.feed("id: 41\ndata: a\n\nid: 42\ndata: b\n", log));  // 42's event is unfinished
  CHECK(log.events == std::vector<std::string>{"message|a|41"});
  REQUIRE(c.on_disconnect(t0 + 1s));
  CHECK(header(c.request_headers(), "Last-Event-ID") == "41");
}

TEST_CASE("a Last-Event-ID from options is sent on the first request") {
  auto o = no_jitter();
  o.last_event_id = "99";
  ssepp::Client c(o);
  CHECK(header(c.request_headers(), "Last-Event-ID") == "99");
  CHECK(c.last_event_id() == "99");
}

TEST_CASE("200 with text/event-stream opens, whatever its parameters and case") {
  for (auto type : {"text/event-stream", "text/event-stream; charset=utf-8", "Text/Event-Stream",
                    " text/event-stream ;x=y"}) {
    ssepp::Client c(no_jitter());
    CHECK(c.state() == ssepp::ReadyState::connecting);
    CHECK(c.on_response(200, type, Clock::time_point{}) == ssepp::Verdict::open);
    CHECK(c.state() == ssepp::ReadyState::open);
    CHECK_FALSE(c.error());
  }
}

TEST_CASE("a wrong content type fails for good, with no reconnection") {
  for (auto type : {"text/plain", "text/event-streams", "", "application/json", "text/event"}) {
    ssepp::Client c(no_jitter());
    CHECK(c.on_response(200, type, Clock::time_point{}) == ssepp::Verdict::failed);
    CHECK(c.state() == ssepp::ReadyState::closed);
    CHECK(c.error() == ssepp::errc::bad_content_type);
    CHECK_FALSE(c.on_disconnect(Clock::time_point{}));
  }
}

TEST_CASE("any status but 200 and 204 fails for good") {
  for (int status : {500, 503, 404, 401, 301, 302, 307, 201}) {
    ssepp::Client c(no_jitter());
    CHECK(c.on_response(status, "text/event-stream", Clock::time_point{}) == ssepp::Verdict::failed);
    CHECK(c.state() == ssepp::ReadyState::closed);
    CHECK(c.error() == ssepp::errc::bad_status);
    CHECK_FALSE(c.on_disconnect(Clock::time_point{}));
  }
}

TEST_CASE("204 closes for good without an error") {
  ssepp::Client c(no_jitter());
  CHECK(c.on_response(204, "", Clock::time_point{}) == ssepp::Verdict::closed);
  CHECK(c.state() == ssepp::ReadyState::closed);
  CHECK_FALSE(c.error());
  CHECK_FALSE(c.on_disconnect(Clock::time_point{}));
  CHECK(c.on_response(200, "text/event-stream", Clock::time_point{}) == ssepp::Verdict::failed);
}

TEST_CASE("close() stops reconnection and feeding") {
  ssepp::Client c(no_jitter());
  REQUIRE(c.on_response(200, "text/event-stream", Clock::time_point{}) == ssepp::Verdict::open);
  c.close();
  CHECK(c.state() == ssepp::ReadyState::closed);
  Log log;
  CHECK(c.feed("data: x\n\n", log) == ssepp::errc::closed);
  CHECK(log.events.empty());
  CHECK_FALSE(c.on_disconnect(Clock::time_point{}));
}

TEST_CASE("feeding before a stream is open is refused") {
  ssepp::Client c(no_jitter());
  Log log;
  CHECK(c.feed("data: x\n\n", log) == ssepp::errc::closed);
  CHECK(log.events.empty());
}

TEST_CASE("backoff doubles per consecutive failure up to the cap") {
  ssepp::Client c(no_jitter());
  auto t = Clock::time_point{};
  std::vector<long long> delays;
  for (int i = 0; i < 7; ++i) delays.push_back(c.on_disconnect(t)->count());  // refused connects
  CHECK(delays == std::vector<long long>{1000, 2000, 4000, 8000, 10000, 10000, 10000});
  CHECK(c.state() == ssepp::ReadyState::connecting);
}

TEST_CASE("the stream's retry overrides the default and is the first delay") {
  ssepp::Client c(no_jitter());
  auto t0 = Clock::time_point{};
  REQUIRE(c.on_response(200, "text/event-stream", t0) == ssepp::Verdict::open);
  struct H {
    std::vector<long long> retries;
    void on_event(const ssepp::EventView&) {}
    void on_retry(std::chrono::milliseconds ms) { retries.push_back(ms.count()); }
  } h;
  CHECK_FALSE(c.feed("retry: 250\n\nretry: x\n\n", h));
  CHECK(h.retries == std::vector<long long>{250});
  CHECK(c.reconnection_time() == 250ms);
  CHECK(c.on_disconnect(t0 + 6s) == 250ms);
  CHECK(c.on_disconnect(t0 + 7s) == 500ms);
  CHECK(c.on_disconnect(t0 + 8s) == 1000ms);
}

TEST_CASE("a stream retry above max_delay is honoured: never sooner than the server asked") {
  ssepp::Client c(no_jitter());  // max_delay 10 s
  auto t0 = Clock::time_point{};
  REQUIRE(c.on_response(200, "text/event-stream", t0) == ssepp::Verdict::open);
  Log log;
  CHECK_FALSE(c.feed("retry: 30000\n\n", log));
  CHECK(c.on_disconnect(t0 + 6s) == 30s);  // the cap rises to the server's time, no higher
  CHECK(c.on_disconnect(t0 + 7s) == 30s);
  CHECK(c.on_disconnect(t0 + 8s) == 30s);
  // With jitter too: every wait is exactly the server's time (nothing between it and the cap).
  auto o = no_jitter();
  o.jitter = true;
  ssepp::Client j(o);
  REQUIRE(j.on_response(200, "text/event-stream", t0) == ssepp::Verdict::open);
  CHECK_FALSE(j.feed("retry: 30000\n\n", log));
  for (int i = 0; i < 5; ++i) CHECK(j.on_disconnect(t0 + 6s) == 30s);
}

TEST_CASE("a connection that stayed healthy resets the backoff") {
  ssepp::Client c(no_jitter());
  auto t = Clock::time_point{};
  for (int i = 0; i < 4; ++i) (void)c.on_disconnect(t);
  CHECK(c.failures() == 4);
  REQUIRE(c.on_response(200, "text/event-stream", t) == ssepp::Verdict::open);
  CHECK(c.on_disconnect(t + 5s) == 1000ms);  // healthy_after reached: back to the retry time
  CHECK(c.failures() == 1);
}

TEST_CASE("a connection that dropped before it was healthy keeps backing off") {
  ssepp::Client c(no_jitter());
  auto t = Clock::time_point{};
  CHECK(c.on_disconnect(t) == 1000ms);
  REQUIRE(c.on_response(200, "text/event-stream", t) == ssepp::Verdict::open);
  CHECK(c.on_disconnect(t + 4999ms) == 2000ms);
  REQUIRE(c.on_response(200, "text/event-stream", t + 10s) == ssepp::Verdict::open);
  CHECK(c.on_disconnect(t + 11s) == 4000ms);
}

TEST_CASE("jitter stays between the reconnection time and the ceiling, and varies") {
  ssepp::ClientOptions o = no_jitter();
  o.jitter = true;
  o.seed = 42;
  ssepp::Client c(o);
  auto t = Clock::time_point{};
  CHECK(c.on_disconnect(t) == 1000ms);  // first reconnection after health: exactly the retry
  std::set<long long> seen;
  for (int i = 0; i < 200; ++i) {
    auto ceiling = c.delay_ceiling();
    auto d = c.on_disconnect(t);
    REQUIRE(d);
    CHECK(*d >= 1000ms);
    CHECK(*d <= ceiling);
    CHECK(*d <= 10s);
    seen.insert(d->count());
  }
  CHECK(seen.size() > 50);  // spread out, not one value

  ssepp::Client again(o);  // same seed, same sequence
  ssepp::Client other(o);
  for (int i = 0; i < 10; ++i) CHECK(again.on_disconnect(t) == other.on_disconnect(t));
}

TEST_CASE("an unfinished event is dropped at disconnect, the last event id survives") {
  ssepp::Client c(no_jitter());
  auto t = Clock::time_point{};
  REQUIRE(c.on_response(200, "text/event-stream", t) == ssepp::Verdict::open);
  Log log;
  CHECK_FALSE(c.feed("id: 1\ndata: one\n\nid: 2\ndata: cut", log));
  REQUIRE(c.on_disconnect(t + 1s));
  REQUIRE(c.on_response(200, "text/event-stream", t + 2s) == ssepp::Verdict::open);
  CHECK_FALSE(c.feed("\n\ndata: two\n\n", log));
  CHECK(log.events == std::vector<std::string>{"message|one|1", "message|two|1"});
  CHECK(c.last_event_id() == "1");
}

TEST_CASE("a stream past the parser's limits is an error the host sees") {
  ssepp::ClientOptions o = no_jitter();
  o.parser.limits.max_line = 16;
  ssepp::Client c(o);
  REQUIRE(c.on_response(200, "text/event-stream", Clock::time_point{}) == ssepp::Verdict::open);
  Log log;
  CHECK(c.feed("data: 0123456789abcdef0123\n\n", log) == ssepp::errc::line_too_long);
  CHECK(log.events.empty());
  // The host drops the connection; the next one starts clean.
  REQUIRE(c.on_disconnect(Clock::time_point{} + 1s));
  REQUIRE(c.on_response(200, "text/event-stream", Clock::time_point{} + 2s) == ssepp::Verdict::open);
  CHECK_FALSE(c.feed("data: ok\n\n", log));
  CHECK(log.events == std::vector<std::string>{"message|ok|"});
}
