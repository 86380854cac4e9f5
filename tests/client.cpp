// The sans-IO client's state machine, driven with a fake clock.
#include <ssepp/client.hpp>

#include <iterator>
#include <random>
#include <set>
#include <string>
#include <system_error>
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

// The delay of an on_disconnect result, or -1 ms when it says to stop.
std::chrono::milliseconds delay(const ssepp::Result<std::chrono::milliseconds>& r) {
  return r ? *r : std::chrono::milliseconds(-1);
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
  CHECK(c.feed("id: 41\ndata: a\n\nid: 42\ndata: b\n", log));  // 42's event is unfinished
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
  CHECK(c.feed("data: x\n\n", log).error() == ssepp::errc::closed);
  CHECK(log.events.empty());
  CHECK_FALSE(c.on_disconnect(Clock::time_point{}));
}

TEST_CASE("feeding before a stream is open is refused") {
  ssepp::Client c(no_jitter());
  Log log;
  CHECK(c.feed("data: x\n\n", log).error() == ssepp::errc::closed);
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
  CHECK(c.feed("retry: 250\n\nretry: x\n\n", h));
  CHECK(h.retries == std::vector<long long>{250});
  CHECK(c.reconnection_time() == 250ms);
  CHECK(delay(c.on_disconnect(t0 + 6s)) == 250ms);
  CHECK(delay(c.on_disconnect(t0 + 7s)) == 500ms);
  CHECK(delay(c.on_disconnect(t0 + 8s)) == 1000ms);
}

TEST_CASE("a stream retry above max_delay is honoured: never sooner than the server asked") {
  ssepp::Client c(no_jitter());  // max_delay 10 s
  auto t0 = Clock::time_point{};
  REQUIRE(c.on_response(200, "text/event-stream", t0) == ssepp::Verdict::open);
  Log log;
  CHECK(c.feed("retry: 30000\n\n", log));
  CHECK(delay(c.on_disconnect(t0 + 6s)) == 30s);  // the cap rises to the server's time, no higher
  CHECK(delay(c.on_disconnect(t0 + 7s)) == 30s);
  CHECK(delay(c.on_disconnect(t0 + 8s)) == 30s);
  // With jitter too: every wait is exactly the server's time (nothing between it and the cap).
  auto o = no_jitter();
  o.jitter = true;
  ssepp::Client j(o);
  REQUIRE(j.on_response(200, "text/event-stream", t0) == ssepp::Verdict::open);
  CHECK(j.feed("retry: 30000\n\n", log));
  for (int i = 0; i < 5; ++i) CHECK(delay(j.on_disconnect(t0 + 6s)) == 30s);
}

TEST_CASE("a connection that stayed healthy resets the backoff") {
  ssepp::Client c(no_jitter());
  auto t = Clock::time_point{};
  for (int i = 0; i < 4; ++i) (void)c.on_disconnect(t);
  CHECK(c.failures() == 4);
  REQUIRE(c.on_response(200, "text/event-stream", t) == ssepp::Verdict::open);
  CHECK(delay(c.on_disconnect(t + 5s)) == 1000ms);  // healthy_after reached: back to the retry time
  CHECK(c.failures() == 1);
}

TEST_CASE("a connection that dropped before it was healthy keeps backing off") {
  ssepp::Client c(no_jitter());
  auto t = Clock::time_point{};
  CHECK(delay(c.on_disconnect(t)) == 1000ms);
  REQUIRE(c.on_response(200, "text/event-stream", t) == ssepp::Verdict::open);
  CHECK(delay(c.on_disconnect(t + 4999ms)) == 2000ms);
  REQUIRE(c.on_response(200, "text/event-stream", t + 10s) == ssepp::Verdict::open);
  CHECK(delay(c.on_disconnect(t + 11s)) == 4000ms);
}

TEST_CASE("jitter stays between the reconnection time and the ceiling, and varies") {
  ssepp::ClientOptions o = no_jitter();
  o.jitter = true;
  o.seed = 42;
  ssepp::Client c(o);
  auto t = Clock::time_point{};
  CHECK(delay(c.on_disconnect(t)) == 1000ms);  // first reconnection after health: exactly the retry
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
  for (int i = 0; i < 10; ++i) CHECK(delay(again.on_disconnect(t)) == delay(other.on_disconnect(t)));
}

TEST_CASE("an unfinished event is dropped at disconnect, the last event id survives") {
  ssepp::Client c(no_jitter());
  auto t = Clock::time_point{};
  REQUIRE(c.on_response(200, "text/event-stream", t) == ssepp::Verdict::open);
  Log log;
  CHECK(c.feed("id: 1\ndata: one\n\nid: 2\ndata: cut", log));
  REQUIRE(c.on_disconnect(t + 1s));
  REQUIRE(c.on_response(200, "text/event-stream", t + 2s) == ssepp::Verdict::open);
  CHECK(c.feed("\n\ndata: two\n\n", log));
  CHECK(log.events == std::vector<std::string>{"message|one|1", "message|two|1"});
  CHECK(c.last_event_id() == "1");
}

TEST_CASE("a stream past the parser's limits is an error the host sees") {
  ssepp::ClientOptions o = no_jitter();
  o.parser.limits.max_line = 16;
  ssepp::Client c(o);
  REQUIRE(c.on_response(200, "text/event-stream", Clock::time_point{}) == ssepp::Verdict::open);
  Log log;
  CHECK(c.feed("data: 0123456789abcdef0123\n\n", log).error() == ssepp::errc::line_too_long);
  CHECK(log.events.empty());
  // The host drops the connection; the next one starts clean.
  REQUIRE(c.on_disconnect(Clock::time_point{} + 1s));
  REQUIRE(c.on_response(200, "text/event-stream", Clock::time_point{} + 2s) == ssepp::Verdict::open);
  CHECK(c.feed("data: ok\n\n", log));
  CHECK(log.events == std::vector<std::string>{"message|ok|"});
}

// ---------------------------------------------------------------------------------------------
// The transport-facing state machine: request(), on_response(head), feed, on_end /
// on_network_error, Action.

namespace {

using ssepp::Next;
using ssepp::RetryPolicy;
using ssepp::Verdict;
constexpr auto t0 = Clock::time_point{};

ssepp::ResponseHead head(int status, std::string_view content_type = "",
                         std::string_view location = "", std::string_view retry_after = "",
                         std::string_view date = "") {
  ssepp::ResponseHead h;
  h.status = status;
  h.content_type = content_type;
  h.location = location;
  h.retry_after = retry_after;
  h.date = date;
  return h;
}

ssepp::ClientOptions api_options(std::string url = "https://api.example.com/v1/chat") {
  auto o = no_jitter();
  o.url = std::move(url);
  o.policy = RetryPolicy::api;
  return o;
}

ssepp::Request req(const ssepp::Client& c, const std::vector<ssepp::Header>& extra = {}) {
  auto r = c.request(extra);
  REQUIRE(r);
  return *r;
}

struct Outcome {
  Verdict verdict;
  ssepp::Action action;
  ssepp::ReadyState state;
  std::error_code error;
};

// One attempt answered by `status` (an event-stream when 200), body ended cleanly.
Outcome answer(RetryPolicy policy, int status, std::string_view location = "/next") {
  auto o = no_jitter();
  o.url = "http://example.com/feed";
  o.policy = policy;
  ssepp::Client c(o);
  Outcome out{};
  out.verdict = c.on_response(head(status, "text/event-stream", location), t0);
  Log log;
  if (out.verdict != Verdict::closed) {
    auto fed = c.feed("data: x\n\n", log);
    CHECK(fed);
  }
  out.action = c.on_end(t0 + 1s);
  out.state = c.state();
  out.error = c.error();
  CHECK(out.action.error == out.error);
  return out;
}

}  // namespace

TEST_CASE("to_string names every public enum value") {
  using ssepp::to_string;
  CHECK(to_string(ssepp::ReadyState::connecting) == "connecting");
  CHECK(to_string(ssepp::ReadyState::open) == "open");
  CHECK(to_string(ssepp::ReadyState::closed) == "closed");
  CHECK(to_string(Verdict::open) == "open");
  CHECK(to_string(Verdict::closed) == "closed");
  CHECK(to_string(Verdict::failed) == "failed");
  CHECK(to_string(Verdict::redirect) == "redirect");
  CHECK(to_string(Verdict::retry) == "retry");
  CHECK(to_string(RetryPolicy::browser) == "browser");
  CHECK(to_string(RetryPolicy::api) == "api");
  CHECK(to_string(Next::reconnect) == "reconnect");
  CHECK(to_string(Next::redirect) == "redirect");
  CHECK(to_string(Next::stop) == "stop");
  static_assert(to_string(Next::stop) == "stop", "usable in constant expressions");
}

TEST_CASE("the new error codes have their own messages") {
  using ssepp::errc;
  for (auto e : {errc::invalid_url, errc::bad_redirect, errc::too_many_redirects,
                 errc::insecure_redirect, errc::retries_exhausted}) {
    std::error_code ec = e;
    CHECK(ec.category().name() == std::string("ssepp"));
    CHECK(ec.message() != "unknown ssepp error");
  }
  CHECK(std::error_code(errc::too_many_redirects).message() == "too many redirects");
}

TEST_CASE("both policies, status by status: what the response does and what comes next") {
  struct Row {
    int status;
    Verdict verdict;
    Next next;
    std::error_code error;
    ssepp::ReadyState state;
  };
  using ssepp::errc;
  using RS = ssepp::ReadyState;
  const std::error_code none;
  const std::error_code bad = errc::bad_status;
  // The same for both policies.
  const std::vector<Row> common = {
      {200, Verdict::open, Next::reconnect, none, RS::connecting},  // a clean end reconnects
      {204, Verdict::closed, Next::stop, none, RS::closed},
      {301, Verdict::redirect, Next::redirect, none, RS::connecting},
      {302, Verdict::redirect, Next::redirect, none, RS::connecting},
      {303, Verdict::redirect, Next::redirect, none, RS::connecting},
      {307, Verdict::redirect, Next::redirect, none, RS::connecting},
      {308, Verdict::redirect, Next::redirect, none, RS::connecting},
      {401, Verdict::failed, Next::stop, bad, RS::closed},
      {404, Verdict::failed, Next::stop, bad, RS::closed},
      {201, Verdict::failed, Next::stop, bad, RS::closed},
  };
  for (auto policy : {RetryPolicy::browser, RetryPolicy::api}) {
    for (const auto& row : common) {
      INFO(ssepp::to_string(policy) << " " << row.status);
      auto out = answer(policy, row.status);
      CHECK(out.verdict == row.verdict);
      CHECK(out.action.next == row.next);
      CHECK(out.error == row.error);
      CHECK(out.state == row.state);
    }
  }
  // Where they differ: 408, 429 and 5xx.
  for (int status : {408, 429, 500, 502, 503, 504}) {
    INFO(status);
    auto browser = answer(RetryPolicy::browser, status);
    CHECK(browser.verdict == Verdict::failed);
    CHECK(browser.action.next == Next::stop);
    CHECK(browser.error == bad);
    CHECK(browser.state == RS::closed);
    auto api = answer(RetryPolicy::api, status);
    CHECK(api.verdict == Verdict::retry);
    CHECK(api.action.next == Next::reconnect);
    CHECK(api.action.delay == 1000ms);
    CHECK_FALSE(api.error);
    CHECK(api.state == RS::connecting);
  }
}

TEST_CASE("a network error reconnects under both policies, with backoff") {
  for (auto policy : {RetryPolicy::browser, RetryPolicy::api}) {
    auto o = no_jitter();
    o.url = "http://example.com/";
    o.policy = policy;
    ssepp::Client c(o);
    auto a = c.on_network_error(t0);  // refused connection
    CHECK(a.next == Next::reconnect);
    CHECK(a.delay == 1000ms);
    CHECK(c.on_network_error(t0).delay == 2000ms);
    // A stream that drops before it is healthy keeps backing off...
    REQUIRE(c.on_response(head(200, "text/event-stream"), t0) == Verdict::open);
    CHECK(c.on_network_error(t0 + 1s).delay == 4000ms);
    // ...one that was healthy starts over at the reconnection time.
    REQUIRE(c.on_response(head(200, "text/event-stream"), t0) == Verdict::open);
    a = c.on_network_error(t0 + 5s);
    CHECK(a.next == Next::reconnect);
    CHECK(a.delay == 1000ms);
    CHECK(c.state() == ssepp::ReadyState::connecting);
  }
}

TEST_CASE("a one-shot stream (reconnect_on_end = false) stops at its clean end") {
  for (auto policy : {RetryPolicy::browser, RetryPolicy::api}) {
    auto o = api_options();
    o.policy = policy;
    o.method = "POST";
    o.body = R"({"stream":true})";
    o.reconnect_on_end = false;
    ssepp::Client c(o);
    REQUIRE(c.on_response(head(200, "text/event-stream"), t0) == Verdict::open);
    Log log;
    CHECK(c.feed("data: tok\n\ndata: [DONE]\n\n", log));
    auto a = c.on_end(t0 + 1s);
    CHECK(a.next == Next::stop);
    CHECK_FALSE(a.error);  // a normal end, not a failure
    CHECK(c.state() == ssepp::ReadyState::closed);
    CHECK(c.request().error() == ssepp::errc::closed);  // no second request
    CHECK(log.events.size() == 2);
  }
  // A drop before the end is still retried (the stream did not finish).
  auto o = api_options();
  o.reconnect_on_end = false;
  ssepp::Client c(o);
  REQUIRE(c.on_response(head(200, "text/event-stream"), t0) == Verdict::open);
  CHECK(c.on_network_error(t0 + 1s).next == Next::reconnect);
  // The host that cannot tell an end from a drop (on_disconnect) gets the safe answer: stop.
  REQUIRE(c.on_response(head(200, "text/event-stream"), t0 + 2s) == Verdict::open);
  auto r = c.on_disconnect(t0 + 3s);
  CHECK_FALSE(r);
  CHECK(r.error() == ssepp::errc::closed);
}

TEST_CASE("an EventSource stream (the default) reconnects after a clean end") {
  ssepp::Client c(no_jitter());
  REQUIRE(c.on_response(head(200, "text/event-stream"), t0) == Verdict::open);
  auto a = c.on_end(t0 + 20s);
  CHECK(a.next == Next::reconnect);
  CHECK(a.delay == 1000ms);
}

TEST_CASE("request(): method, URL, headers and body from the options") {
  auto o = api_options("https://API.Example.com:8443/v1/chat?x=1");
  o.method = "POST";
  o.body = R"({"model":"m"})";
  o.headers = {{"Content-Type", "application/json"}};
  o.last_event_id = "7";
  ssepp::Client c(o);
  auto r = req(c, {{"Authorization", "Bearer k"}});
  CHECK(r.method == "POST");
  CHECK(r.url.scheme == "https");
  CHECK(r.url.host == "api.example.com");
  CHECK(r.url.port == 8443);
  CHECK(r.url.target() == "/v1/chat?x=1");
  CHECK(r.url.host_header() == "api.example.com:8443");
  CHECK(r.has_body);
  CHECK(r.body == R"({"model":"m"})");
  CHECK(r.headers == std::vector<ssepp::Header>{{"Accept", "text/event-stream"},
                                                {"Cache-Control", "no-cache"},
                                                {"Last-Event-ID", "7"},
                                                {"Content-Type", "application/json"},
                                                {"Authorization", "Bearer k"}});
  CHECK(c.method() == "POST");
  REQUIRE(c.url());
  CHECK(c.url()->str() == "https://api.example.com:8443/v1/chat?x=1");
}

TEST_CASE("request(): a body goes with any method but GET and HEAD, or when there is one") {
  auto with = [](std::string method, std::string body) {
    auto o = no_jitter();
    o.url = "http://h/";
    o.method = std::move(method);
    o.body = std::move(body);
    ssepp::Client c(o);
    return req(c).has_body;
  };
  CHECK_FALSE(with("GET", ""));
  CHECK_FALSE(with("HEAD", ""));
  CHECK(with("POST", ""));  // Content-Length: 0
  CHECK(with("PUT", "x"));
  CHECK(with("GET", "x"));
}

TEST_CASE("request(): no URL, an invalid URL, a closed client") {
  ssepp::Client none(no_jitter());
  CHECK(none.request().error() == ssepp::errc::invalid_url);
  CHECK(none.state() == ssepp::ReadyState::connecting);  // the header-only use still works

  for (auto url : {"ftp://h/", "/relative", "http://", "http://a b/", "http://h:0/",
                   "http://h:65536/", "http://h:8x/", "http://u:p@h/", "http://[::1/",
                   "http://[zz]/", "http://h\r\nX: y/"}) {
    INFO(url);
    auto o = no_jitter();
    o.url = url;
    ssepp::Client c(o);
    CHECK(c.state() == ssepp::ReadyState::closed);
    CHECK(c.error() == ssepp::errc::invalid_url);
    CHECK(c.request().error() == ssepp::errc::invalid_url);
    CHECK(c.on_network_error(t0).error == ssepp::errc::invalid_url);
  }

  auto o = no_jitter();
  o.url = "http://h/";
  ssepp::Client c(o);
  c.close();
  CHECK(c.request().error() == ssepp::errc::closed);
  auto a = c.on_end(t0);
  CHECK(a.next == Next::stop);
  CHECK_FALSE(a.error);
}

TEST_CASE("fail(): the host's own final error stops the client") {
  ssepp::Client c(api_options());
  c.fail(std::make_error_code(std::errc::permission_denied));  // e.g. TLS verification
  CHECK(c.state() == ssepp::ReadyState::closed);
  auto a = c.on_network_error(t0);
  CHECK(a.next == Next::stop);
  CHECK(a.error == std::errc::permission_denied);
  CHECK(c.request().error() == std::errc::permission_denied);
}

TEST_CASE("max_retries: consecutive failures end in retries_exhausted") {
  auto o = api_options();
  o.max_retries = 3;
  ssepp::Client c(o);
  CHECK(c.on_network_error(t0).next == Next::reconnect);
  REQUIRE(c.on_response(head(503), t0) == Verdict::retry);
  CHECK(c.on_end(t0).next == Next::reconnect);
  CHECK(c.on_network_error(t0).next == Next::reconnect);
  auto a = c.on_network_error(t0);
  CHECK(a.next == Next::stop);
  CHECK(a.error == ssepp::errc::retries_exhausted);
  CHECK(c.error() == ssepp::errc::retries_exhausted);
  CHECK(c.state() == ssepp::ReadyState::closed);

  // A healthy stream resets the count.
  ssepp::Client h(o);
  for (int i = 0; i < 2; ++i) CHECK(h.on_network_error(t0).next == Next::reconnect);
  REQUIRE(h.on_response(head(200, "text/event-stream"), t0) == Verdict::open);
  CHECK(h.on_end(t0 + 10s).next == Next::reconnect);
  for (int i = 0; i < 2; ++i) CHECK(h.on_network_error(t0).next == Next::reconnect);
  CHECK(h.on_network_error(t0).error == ssepp::errc::retries_exhausted);
}

// ---------------------------------------------------------------------------------------------
// Retry-After

TEST_CASE("Retry-After in seconds is a floor on the api policy's delay") {
  ssepp::Client c(api_options());
  REQUIRE(c.on_response(head(429, "application/json", "", "5"), t0) == Verdict::retry);
  REQUIRE(c.retry_after());
  CHECK(*c.retry_after() == 5s);
  auto a = c.on_end(t0);
  CHECK(a.next == Next::reconnect);
  CHECK(a.delay == 5s);  // backoff alone would be 1 s
  // Without Retry-After the next one is plain backoff (ceiling 2 s, no jitter).
  REQUIRE(c.on_response(head(503), t0) == Verdict::retry);
  CHECK_FALSE(c.retry_after());
  CHECK(c.on_end(t0).delay == 2000ms);
  // A Retry-After shorter than the backoff does not shorten it.
  REQUIRE(c.on_response(head(503, "", "", "1"), t0) == Verdict::retry);
  CHECK(c.on_end(t0).delay == 4000ms);
  // Whitespace around the value is allowed; 0 is valid (no floor beyond backoff).
  REQUIRE(c.on_response(head(503, "", "", " 0 "), t0) == Verdict::retry);
  CHECK(c.retry_after() == std::optional<std::chrono::milliseconds>(0ms));
  // Retry-After above max_delay is still honoured (the server's word, like `retry`).
  REQUIRE(c.on_response(head(503, "", "", "120"), t0) == Verdict::retry);
  CHECK(c.on_end(t0).delay == 120s);
}

TEST_CASE("Retry-After is a floor over backoff with jitter") {
  auto o = api_options();
  o.jitter = true;
  o.seed = 7;
  ssepp::Client c(o);
  for (int i = 0; i < 3; ++i) (void)c.on_network_error(t0);  // ceiling now 8 s
  for (int i = 0; i < 100; ++i) {
    auto ceiling = c.delay_ceiling();
    REQUIRE(c.on_response(head(429, "", "", "3"), t0) == Verdict::retry);
    auto d = c.on_end(t0).delay;
    CHECK(d >= 3s);  // never sooner than the server asked
    CHECK(d <= std::max<std::chrono::milliseconds>(ceiling, 3s));
  }
  // A floor above every possible draw is exact.
  REQUIRE(c.on_response(head(429, "", "", "600"), t0) == Verdict::retry);
  CHECK(c.on_end(t0).delay == 600s);
}

TEST_CASE("Retry-After as an HTTP date, in all three forms, against the response's Date") {
  // 784111777 = Sun, 06 Nov 1994 08:49:37 GMT
  const std::string date = "Sun, 06 Nov 1994 08:49:37 GMT";
  for (auto when : {"Sun, 06 Nov 1994 08:50:07 GMT", "Sunday, 06-Nov-94 08:50:07 GMT",
                    "Sun Nov  6 08:50:07 1994"}) {
    INFO(when);
    ssepp::Client c(api_options());
    auto h = head(503, "", "", when, date);
    REQUIRE(c.on_response(h, t0) == Verdict::retry);
    REQUIRE(c.retry_after());
    CHECK(*c.retry_after() == 30s);
    CHECK(c.on_end(t0).delay == 30s);
  }
  // Without a Date header the host's wall clock is the reference.
  ssepp::Client c(api_options());
  auto h = head(503, "", "", "Sun, 06 Nov 1994 08:49:47 GMT");
  h.wall_now = std::chrono::system_clock::time_point(std::chrono::seconds(784111777));
  REQUIRE(c.on_response(h, t0) == Verdict::retry);
  CHECK(c.retry_after() == std::optional<std::chrono::milliseconds>(10s));
  // An invalid Date falls back to the wall clock too.
  h.date = "yesterday";
  REQUIRE(c.on_response(h, t0) == Verdict::retry);
  CHECK(c.retry_after() == std::optional<std::chrono::milliseconds>(10s));
  // Neither known: a date cannot be measured and is ignored.
  REQUIRE(c.on_response(head(503, "", "", "Sun, 06 Nov 1994 08:49:47 GMT"), t0) == Verdict::retry);
  CHECK_FALSE(c.retry_after());
  // A date in the past means no wait beyond the backoff.
  h = head(503, "", "", "Sun, 06 Nov 1994 08:49:00 GMT", date);
  REQUIRE(c.on_response(h, t0) == Verdict::retry);
  CHECK(c.retry_after() == std::optional<std::chrono::milliseconds>(0ms));
}

TEST_CASE("an invalid Retry-After is ignored: plain backoff") {
  for (auto v : {"", "soon", "-5", "5s", "1.5", "5 5", "0x10", "Sun, 06 Nov 1994 08:49:37 UTC",
                 "sun, 06 Nov 1994 08:49:37 GMT", "Sun, 6 Nov 1994 08:49:37 GMT",
                 "Sun, 06 Nov 1994 8:49:37 GMT", "Sun, 31 Nov 1994 08:49:37 GMT",
                 "Sun, 29 Feb 1995 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
                 "Sun, 06 Nov 1994 08:60:00 GMT", "Sun, 06 Nov 1994 08:49:37 GMT x",
                 "Sun, 06 Foo 1994 08:49:37 GMT", "Sunday, 06-Nov-1994 08:49:37 GMT",
                 "Sun Nov 6 08:49:37 1994", "Sun Nov  6 08:49:37 94"}) {
    INFO("'" << v << "'");
    ssepp::Client c(api_options());
    auto h = head(503, "", "", v, "Sun, 06 Nov 1994 08:00:00 GMT");
    REQUIRE(c.on_response(h, t0) == Verdict::retry);
    CHECK_FALSE(c.retry_after());
    CHECK(c.on_end(t0).delay == 1000ms);
  }
}

TEST_CASE("Retry-After is the api policy's: the browser policy fails a 503 regardless") {
  auto o = api_options();
  o.policy = RetryPolicy::browser;
  ssepp::Client c(o);
  CHECK(c.on_response(head(503, "", "", "1"), t0) == Verdict::failed);
  CHECK(c.on_end(t0).next == Next::stop);
}

TEST_CASE("HTTP dates: the three forms, leap days, leap seconds, RFC 850 centuries") {
  using ssepp::detail::parse_http_date;
  using Sys = std::chrono::system_clock;
  const Sys::time_point now(std::chrono::seconds(1700000000));  // 2023-11-14
  auto secs = [](std::optional<Sys::time_point> t) {
    return t ? std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count() : -1;
  };
  CHECK(secs(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", now)) == 784111777);
  CHECK(secs(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", now)) == 784111777);
  CHECK(secs(parse_http_date("Sun Nov  6 08:49:37 1994", now)) == 784111777);
  CHECK(secs(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT", now)) == 0);
  CHECK(secs(parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT", now)) == 1709164800);
  CHECK(secs(parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT", now)) == 951782400);
  CHECK(secs(parse_http_date("Mon, 01 Mar 2100 00:00:00 GMT", now)) == 4107542400);
  CHECK(secs(parse_http_date("Mon, 29 Feb 2100 00:00:00 GMT", now)) == -1);  // 2100: no leap
  CHECK(secs(parse_http_date("Sat, 31 Dec 2016 23:59:60 GMT", now)) == 1483228800);
  CHECK(secs(parse_http_date("Thu Feb 29 00:00:00 2024", now)) == 1709164800);
  CHECK(secs(parse_http_date("Wed Nov 15 00:00:00 2023", now)) == 1700006400);
  // RFC 850 two-digit years: more than 50 years ahead of now means the previous century.
  CHECK(secs(parse_http_date("Monday, 01-Jan-73 00:00:00 GMT", now)) == 3250454400);  // 2073
  CHECK(secs(parse_http_date("Monday, 01-Jan-74 00:00:00 GMT", now)) == 126230400);   // 1974
  CHECK(secs(parse_http_date("Friday, 01-Jan-24 00:00:00 GMT", now)) == 1704067200);  // 2024
}

// ---------------------------------------------------------------------------------------------
// Redirects

TEST_CASE("redirects: each status's method and body rules") {
  struct Row {
    int status;
    std::string method;
    std::string method_after;
    bool body_after;
  };
  const std::vector<Row> rows = {
      {301, "POST", "GET", false}, {301, "GET", "GET", false},  {301, "PUT", "PUT", true},
      {301, "HEAD", "HEAD", false}, {302, "POST", "GET", false}, {302, "PUT", "PUT", true},
      {302, "DELETE", "DELETE", true}, {303, "POST", "GET", false}, {303, "PUT", "GET", false},
      {303, "GET", "GET", false},  {303, "HEAD", "HEAD", false}, {307, "POST", "POST", true},
      {307, "PUT", "PUT", true},   {307, "GET", "GET", false},  {308, "POST", "POST", true},
      {308, "PATCH", "PATCH", true},
  };
  for (const auto& row : rows) {
    INFO(row.status << " " << row.method);
    auto o = api_options("http://h/a");
    o.method = row.method;
    if (row.method != "GET" && row.method != "HEAD") o.body = "payload";
    o.headers = {{"Content-Type", "application/json"}, {"X-Trace", "1"}};
    ssepp::Client c(o);
    REQUIRE(c.on_response(head(row.status, "text/html", "/b"), t0) == Verdict::redirect);
    CHECK(c.state() == ssepp::ReadyState::connecting);
    auto a = c.on_end(t0);
    CHECK(a.next == Next::redirect);
    CHECK(a.delay == 0ms);
    auto r = req(c);
    CHECK(r.method == row.method_after);
    CHECK(r.url.str() == "http://h/b");
    CHECK(r.has_body == row.body_after);
    CHECK(r.body == (row.body_after ? "payload" : ""));
    // Turned into a GET: the body's Content-* headers go with it; others stay.
    const bool to_get = row.method_after != row.method;
    CHECK(header(r.headers, "Content-Type") == (to_get ? "<none>" : "application/json"));
    CHECK(header(r.headers, "X-Trace") == "1");
    CHECK(c.redirects() == 1);
  }
}

TEST_CASE("a redirect chain is followed, then the stream opens; reconnection starts over") {
  auto o = api_options("https://a.example/start");
  o.method = "POST";
  o.body = "q";
  ssepp::Client c(o);
  REQUIRE(c.on_response(head(307, "", "/step2"), t0) == Verdict::redirect);
  CHECK(c.on_end(t0).next == Next::redirect);
  REQUIRE(c.on_response(head(303, "", "https://b.example/result?id=1"), t0) == Verdict::redirect);
  CHECK(c.on_network_error(t0).next == Next::redirect);  // an unread redirect body is no failure
  auto r = req(c);
  CHECK(r.method == "GET");
  CHECK_FALSE(r.has_body);
  CHECK(r.url.str() == "https://b.example/result?id=1");
  REQUIRE(c.on_response(head(200, "text/event-stream"), t0) == Verdict::open);
  CHECK(c.redirects() == 2);
  CHECK(c.on_network_error(t0 + 1s).next == Next::reconnect);
  r = req(c);  // back to the original request
  CHECK(r.method == "POST");
  CHECK(r.body == "q");
  CHECK(r.url.str() == "https://a.example/start");
  CHECK(c.redirects() == 0);
}

TEST_CASE("a redirect loop past max_redirects fails for good") {
  auto o = no_jitter();
  o.url = "http://h/a";
  o.max_redirects = 5;
  ssepp::Client c(o);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(c.on_response(head(302, "", i % 2 ? "/a" : "/b"), t0) == Verdict::redirect);
    REQUIRE(c.on_end(t0).next == Next::redirect);
  }
  CHECK(c.on_response(head(302, "", "/b"), t0) == Verdict::failed);
  CHECK(c.error() == ssepp::errc::too_many_redirects);
  CHECK(c.state() == ssepp::ReadyState::closed);
  auto a = c.on_end(t0);
  CHECK(a.next == Next::stop);
  CHECK(a.error == ssepp::errc::too_many_redirects);

  o.max_redirects = 0;  // follow none
  ssepp::Client none(o);
  CHECK(none.on_response(head(301, "", "/b"), t0) == Verdict::failed);
  CHECK(none.error() == ssepp::errc::too_many_redirects);
}

TEST_CASE("https -> http is refused unless allowed; http -> https is fine") {
  auto o = no_jitter();
  o.url = "https://h/a";
  ssepp::Client c(o);
  CHECK(c.on_response(head(301, "", "http://h/a"), t0) == Verdict::failed);
  CHECK(c.error() == ssepp::errc::insecure_redirect);
  CHECK(c.on_end(t0).error == ssepp::errc::insecure_redirect);

  o.allow_insecure_redirect = true;
  ssepp::Client allowed(o);
  CHECK(allowed.on_response(head(301, "", "http://h/a"), t0) == Verdict::redirect);
  CHECK(req(allowed).url.str() == "http://h/a");

  o = no_jitter();
  o.url = "http://h/a";
  ssepp::Client up(o);
  CHECK(up.on_response(head(301, "", "https://h/a"), t0) == Verdict::redirect);
  CHECK(req(up).url.str() == "https://h/a");
}

TEST_CASE("an unusable Location fails with bad_redirect; a missing one is a bad status") {
  for (auto loc : {"ftp://h/x", "mailto:a@b", "http://", "http://a b/", "http://h:99999/",
                   "//[oops/"}) {
    INFO(loc);
    auto o = no_jitter();
    o.url = "http://h/a";
    ssepp::Client c(o);
    CHECK(c.on_response(head(302, "", loc), t0) == Verdict::failed);
    CHECK(c.error() == ssepp::errc::bad_redirect);
  }
  auto o = no_jitter();
  o.url = "http://h/a";
  ssepp::Client c(o);
  CHECK(c.on_response(head(302), t0) == Verdict::failed);
  CHECK(c.error() == ssepp::errc::bad_status);
  // Without a base URL only an absolute Location can be followed.
  ssepp::Client bare(no_jitter());
  CHECK(bare.on_response(head(302, "", "/x"), t0) == Verdict::failed);
  CHECK(bare.error() == ssepp::errc::bad_redirect);
  ssepp::Client bare2(no_jitter());
  CHECK(bare2.on_response(head(302, "", "http://h/x"), t0) == Verdict::redirect);
  CHECK(req(bare2).url.str() == "http://h/x");
}

TEST_CASE("a Location with control characters or spaces cannot forge a request line") {
  auto o = no_jitter();
  o.url = "http://h/a";
  ssepp::Client c(o);
  REQUIRE(c.on_response(head(302, "", "/b c\r\nX-Evil: 1?q=\x01\xff"), t0) == Verdict::redirect);
  auto target = req(c).url.target();
  CHECK(target == "/b%20c%0D%0AX-Evil:%201?q=%01%FF");
  CHECK(target.find_first_of("\r\n ") == std::string::npos);
}

TEST_CASE("leaving the origin drops Authorization and Cookie; the fragment is inherited") {
  auto o = no_jitter();
  o.url = "https://a.example/x#frag";
  o.headers = {{"Authorization", "Bearer secret"}, {"cookie", "s=1"}, {"X-Keep", "k"}};
  ssepp::Client c(o);
  auto r = req(c, {{"AUTHORIZATION", "Bearer extra"}});
  CHECK(header(r.headers, "Authorization") == "Bearer secret");
  REQUIRE(c.on_response(head(302, "", "/same-origin"), t0) == Verdict::redirect);
  r = req(c);
  CHECK(header(r.headers, "Authorization") == "Bearer secret");  // same origin: kept
  CHECK(r.url.fragment == std::optional<std::string>("frag"));
  REQUIRE(c.on_response(head(302, "", "https://b.example/y"), t0) == Verdict::redirect);
  r = req(c, {{"AUTHORIZATION", "Bearer extra"}});
  CHECK(header(r.headers, "Authorization") == "<none>");
  CHECK(header(r.headers, "AUTHORIZATION") == "<none>");
  CHECK(header(r.headers, "cookie") == "<none>");
  CHECK(header(r.headers, "X-Keep") == "k");
  // Another port is another origin too.
  REQUIRE(c.on_response(head(307, "", "https://a.example:8443/z#other"), t0) == Verdict::redirect);
  r = req(c);
  CHECK(header(r.headers, "Authorization") == "<none>");
  CHECK(r.url.fragment == std::optional<std::string>("other"));
  // Back on the original origin, the credentials go again.
  REQUIRE(c.on_response(head(307, "", "https://a.example/back"), t0) == Verdict::redirect);
  CHECK(header(req(c).headers, "Authorization") == "Bearer secret");
}

TEST_CASE("relative Location: RFC 3986 section 5.4.1 normal examples, through the client") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"g", "http://a/b/c/g"},        {"./g", "http://a/b/c/g"},
      {"g/", "http://a/b/c/g/"},      {"/g", "http://a/g"},
      {"//g", "http://g/"},           {"?y", "http://a/b/c/d;p?y"},
      {"g?y", "http://a/b/c/g?y"},    {"#s", "http://a/b/c/d;p?q#s"},
      {"g#s", "http://a/b/c/g#s"},    {"g?y#s", "http://a/b/c/g?y#s"},
      {";x", "http://a/b/c/;x"},      {"g;x", "http://a/b/c/g;x"},
      {"g;x?y#s", "http://a/b/c/g;x?y#s"}, {".", "http://a/b/c/"},
      {"./", "http://a/b/c/"},        {"..", "http://a/b/"},
      {"../", "http://a/b/"},         {"../g", "http://a/b/g"},
      {"../..", "http://a/"},         {"../../", "http://a/"},
      {"../../g", "http://a/g"},
  };
  for (const auto& [ref, want] : cases) {
    INFO(ref);
    auto o = no_jitter();
    o.url = "http://a/b/c/d;p?q";
    ssepp::Client c(o);
    REQUIRE(c.on_response(head(302, "", ref), t0) == Verdict::redirect);
    CHECK(req(c).url.str() == want);
  }
}

TEST_CASE("RFC 3986 section 5.4: reference resolution, normal and abnormal examples") {
  using ssepp::detail::resolve_reference;
  const std::string base = "http://a/b/c/d;p?q";
  const std::vector<std::pair<std::string, std::string>> normal = {
      {"g:h", "g:h"},
      {"g", "http://a/b/c/g"},
      {"./g", "http://a/b/c/g"},
      {"g/", "http://a/b/c/g/"},
      {"/g", "http://a/g"},
      {"//g", "http://g"},
      {"?y", "http://a/b/c/d;p?y"},
      {"g?y", "http://a/b/c/g?y"},
      {"#s", "http://a/b/c/d;p?q#s"},
      {"g#s", "http://a/b/c/g#s"},
      {"g?y#s", "http://a/b/c/g?y#s"},
      {";x", "http://a/b/c/;x"},
      {"g;x", "http://a/b/c/g;x"},
      {"g;x?y#s", "http://a/b/c/g;x?y#s"},
      {"", "http://a/b/c/d;p?q"},
      {".", "http://a/b/c/"},
      {"./", "http://a/b/c/"},
      {"..", "http://a/b/"},
      {"../", "http://a/b/"},
      {"../g", "http://a/b/g"},
      {"../..", "http://a/"},
      {"../../", "http://a/"},
      {"../../g", "http://a/g"},
  };
  for (const auto& [ref, want] : normal) {
    INFO("normal: '" << ref << "'");
    CHECK(resolve_reference(base, ref) == want);
  }
  const std::vector<std::pair<std::string, std::string>> abnormal = {
      {"../../../g", "http://a/g"},
      {"../../../../g", "http://a/g"},
      {"/./g", "http://a/g"},
      {"/../g", "http://a/g"},
      {"g.", "http://a/b/c/g."},
      {".g", "http://a/b/c/.g"},
      {"g..", "http://a/b/c/g.."},
      {"..g", "http://a/b/c/..g"},
      {"./../g", "http://a/b/g"},
      {"./g/.", "http://a/b/c/g/"},
      {"g/./h", "http://a/b/c/g/h"},
      {"g/../h", "http://a/b/c/h"},
      {"g;x=1/./y", "http://a/b/c/g;x=1/y"},
      {"g;x=1/../y", "http://a/b/c/y"},
      {"g?y/./x", "http://a/b/c/g?y/./x"},
      {"g?y/../x", "http://a/b/c/g?y/../x"},
      {"g#s/./x", "http://a/b/c/g#s/./x"},
      {"g#s/../x", "http://a/b/c/g#s/../x"},
      {"http:g", "http:g"},  // strict parser
  };
  for (const auto& [ref, want] : abnormal) {
    INFO("abnormal: '" << ref << "'");
    CHECK(resolve_reference(base, ref) == want);
  }
  // A base with an authority and an empty path merges under "/".
  CHECK(resolve_reference("http://a", "g") == "http://a/g");
  CHECK(resolve_reference("http://a?q", "") == "http://a?q");
  CHECK(ssepp::detail::remove_dot_segments("/a/b/c/./../../g") == "/a/g");
  CHECK(ssepp::detail::remove_dot_segments("mid/content=5/../6") == "mid/6");
}

TEST_CASE("Url::parse: what a transport needs, validated") {
  auto u = ssepp::Url::parse("HTTPS://Example.COM");
  REQUIRE(u);
  CHECK(u->scheme == "https");
  CHECK(u->host == "example.com");
  CHECK(u->port == 443);
  CHECK(u->target() == "/");
  CHECK(u->host_header() == "example.com");
  CHECK(u->str() == "https://example.com/");
  u = ssepp::Url::parse("http://[::1]:8080/p?");
  REQUIRE(u);
  CHECK(u->host == "::1");
  CHECK(u->port == 8080);
  CHECK(u->target() == "/p?");
  CHECK(u->host_header() == "[::1]:8080");
  CHECK(u->str() == "http://[::1]:8080/p?");
  u = ssepp::Url::parse("http://127.0.0.1:80/a%20b?x=%41");
  REQUIRE(u);
  CHECK(u->host_header() == "127.0.0.1");  // default port omitted
  CHECK(u->target() == "/a%20b?x=%41");    // already-encoded bytes stay as they are
  u = ssepp::Url::parse("http://h:/x");    // an empty port is the default
  REQUIRE(u);
  CHECK(u->port == 80);
  CHECK(ssepp::Url::parse("http://h:1/")->port == 1);
  CHECK(ssepp::Url::parse("http://h:65535/")->port == 65535);
  CHECK(ssepp::Url::parse("http://h:000080/").error() == ssepp::errc::invalid_url);
  CHECK(ssepp::Url::parse("http://[::1]x/").error() == ssepp::errc::invalid_url);
  CHECK(ssepp::Url::parse("http://[]/").error() == ssepp::errc::invalid_url);
  CHECK(ssepp::Url::parse("http://h\x01/").error() == ssepp::errc::invalid_url);
  CHECK(ssepp::Url::parse("http:/h").error() == ssepp::errc::invalid_url);
  CHECK_FALSE(ssepp::Url::parse("http://a/b").value().same_origin(*ssepp::Url::parse("https://a/b")));
  CHECK(ssepp::Url::parse("http://A:80/b").value().same_origin(*ssepp::Url::parse("http://a/c")));
}

// ---------------------------------------------------------------------------------------------
// Error bodies

TEST_CASE("a failed response's body stays readable, up to its bound") {
  auto o = api_options();
  o.max_error_body = 16;
  ssepp::Client c(o);
  REQUIRE(c.on_response(head(401, "application/json"), t0) == Verdict::failed);
  CHECK(c.status() == 401);
  Log log;
  CHECK(c.feed(R"({"error":)", log));
  CHECK(c.feed(R"("bad key"})", log));
  CHECK(log.events.empty());
  CHECK(c.error_body() == R"({"error":"bad ke)");  // 16 bytes
  CHECK(c.error_body_truncated());
  CHECK(c.feed("more", log));  // still accepted (and discarded): the transport may drain
  CHECK(c.error_body().size() == 16);
  auto a = c.on_end(t0);
  CHECK(a.error == ssepp::errc::bad_status);
  CHECK(c.error_body() == R"({"error":"bad ke)");  // readable after the stop
  CHECK(c.feed("x", log).error() == ssepp::errc::closed);

  ssepp::Client fits(api_options());
  REQUIRE(fits.on_response(head(404, "text/plain"), t0) == Verdict::failed);
  CHECK(fits.feed("no such model", log));
  CHECK(fits.error_body() == "no such model");
  CHECK_FALSE(fits.error_body_truncated());
}

TEST_CASE("a retried response's body is kept until the next response") {
  ssepp::Client c(api_options());
  REQUIRE(c.on_response(head(429, "application/json", "", "1"), t0) == Verdict::retry);
  Log log;
  CHECK(c.feed(R"({"error":"rate limited"})", log));
  CHECK(c.error_body() == R"({"error":"rate limited"})");
  CHECK(c.on_end(t0).next == Next::reconnect);
  CHECK(c.error_body() == R"({"error":"rate limited"})");
  CHECK(c.status() == 429);
  REQUIRE(c.on_response(head(200, "text/event-stream"), t0) == Verdict::open);
  CHECK(c.error_body().empty());
  CHECK(c.feed("data: ok\n\n", log));
  CHECK(log.events == std::vector<std::string>{"message|ok|"});
  // A wrong content type keeps its body too (an HTML error page from a proxy).
  ssepp::Client w(api_options());
  REQUIRE(w.on_response(head(200, "text/html"), t0) == Verdict::failed);
  CHECK(w.error() == ssepp::errc::bad_content_type);
  CHECK(w.feed("<h1>Bad gateway</h1>", log));
  CHECK(w.error_body() == "<h1>Bad gateway</h1>");
}

TEST_CASE("Retry-After extremes saturate instead of overflowing") {
  ssepp::Client c(api_options());
  REQUIRE(c.on_response(head(503, "", "", "99999999999999999999999999999"), t0) == Verdict::retry);
  REQUIRE(c.retry_after());
  CHECK(*c.retry_after() == ssepp::detail::max_retry_after);
  auto h = head(503, "", "", "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT");
  REQUIRE(c.on_response(h, t0) == Verdict::retry);
  REQUIRE(c.retry_after());
  CHECK(*c.retry_after() == ssepp::detail::max_retry_after);
  h = head(503, "", "", "Mon, 01 Jan 0001 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT");
  REQUIRE(c.on_response(h, t0) == Verdict::retry);
  CHECK(c.retry_after() == std::optional<std::chrono::milliseconds>(0ms));
}

TEST_CASE("the remaining transitions: an end before any response, a drop while reading a body") {
  // The server closed before sending a head: a failed attempt, backed off.
  ssepp::Client c(api_options());
  auto a = c.on_end(t0);
  CHECK(a.next == Next::reconnect);
  CHECK(a.delay == 1000ms);
  CHECK(c.failures() == 1);
  // A retried response whose body is cut: still the retry decided on its head, Retry-After kept.
  REQUIRE(c.on_response(head(503, "", "", "7"), t0) == Verdict::retry);
  a = c.on_network_error(t0);
  CHECK(a.next == Next::reconnect);
  CHECK(a.delay == 7s);
  // A failed response whose body is cut: still a stop with its error.
  REQUIRE(c.on_response(head(403), t0) == Verdict::failed);
  a = c.on_network_error(t0);
  CHECK(a.next == Next::stop);
  CHECK(a.error == ssepp::errc::bad_status);
  // Once stopped, every call says so and nothing restarts it.
  CHECK(c.on_end(t0).error == ssepp::errc::bad_status);
  CHECK(c.on_network_error(t0).error == ssepp::errc::bad_status);
  CHECK(c.on_response(head(200, "text/event-stream"), t0) == Verdict::failed);
  CHECK(c.request().error() == ssepp::errc::bad_status);
  CHECK(c.on_disconnect(t0).error() == ssepp::errc::bad_status);
}

TEST_CASE("on_disconnect: a redirect is a zero delay, a stop carries its reason") {
  auto o = no_jitter();
  o.url = "http://h/a";
  ssepp::Client c(o);
  REQUIRE(c.on_response(head(307, "", "/b"), t0) == Verdict::redirect);
  auto d = c.on_disconnect(t0);
  REQUIRE(d);
  CHECK(*d == 0ms);
  CHECK(req(c).url.str() == "http://h/b");
  REQUIRE(c.on_response(head(204), t0) == Verdict::closed);
  d = c.on_disconnect(t0);
  CHECK_FALSE(d);
  CHECK(d.error() == ssepp::errc::closed);  // a normal stop
  ssepp::Client f(o);
  REQUIRE(f.on_response(head(200, "text/plain"), t0) == Verdict::failed);
  CHECK(f.on_disconnect(t0).error() == ssepp::errc::bad_content_type);
}

TEST_CASE("a stream in an attempt opened after redirects parses from a clean state") {
  auto o = no_jitter();
  o.url = "http://h/a";
  ssepp::Client c(o);
  REQUIRE(c.on_response(head(200, "text/event-stream"), t0) == Verdict::open);
  Log log;
  CHECK(c.feed("id: 5\ndata: half", log));
  CHECK(c.on_network_error(t0 + 1s).next == Next::reconnect);
  CHECK(header(req(c).headers, "Last-Event-ID") == "<none>");  // nothing was dispatched
  REQUIRE(c.on_response(head(302, "", "/b"), t0 + 2s) == Verdict::redirect);
  CHECK(c.feed("data: redirect body is not a stream\n\n", log));
  REQUIRE(c.on_end(t0 + 2s).next == Next::redirect);
  REQUIRE(c.on_response(head(200, "text/event-stream"), t0 + 2s) == Verdict::open);
  CHECK(c.feed("id: 6\ndata: whole\n\n", log));
  CHECK(log.events == std::vector<std::string>{"message|whole|6"});
  CHECK(c.last_event_id() == "6");
}

TEST_CASE("close() and fail() after a failure keep the first error") {
  ssepp::Client c(api_options());
  REQUIRE(c.on_response(head(404), t0) == Verdict::failed);
  c.close();
  CHECK(c.error() == ssepp::errc::bad_status);
  c.fail(std::make_error_code(std::errc::timed_out));
  CHECK(c.error() == ssepp::errc::bad_status);
  Log log;
  CHECK(c.feed("x", log).error() == ssepp::errc::closed);  // close() ends the body reading too

  ssepp::Client clean(api_options());  // closed without an error: fail() may still say why
  clean.close();
  CHECK_FALSE(clean.error());
  clean.fail({});
  CHECK(clean.error() == ssepp::errc::closed);
}

TEST_CASE("untrusted heads (random Location, Retry-After, Date, content type) never break it") {
  std::mt19937 rng(12345);
  const std::string alphabet = "htps:/?#[]@.%-_~!$&'()*+,;=0123456789abcdefGMTSunNov \t\r\n\x01\x7f\xff";
  auto random_text = [&](std::size_t max) {
    std::string s;
    std::size_t n = rng() % (max + 1);
    for (std::size_t i = 0; i < n; ++i) s.push_back(alphabet[rng() % alphabet.size()]);
    return s;
  };
  const std::vector<std::string> prefixes = {"", "http://", "https://", "/", "//", "../", "?"};
  const int statuses[] = {200, 204, 301, 302, 303, 307, 308, 408, 429, 500, 503};
  for (int i = 0; i < 4000; ++i) {
    auto o = api_options(i % 2 ? "https://a.example/x/y?z" : "http://[::1]:8080/p");
    o.max_redirects = 3;
    o.jitter = true;
    o.seed = static_cast<std::uint64_t>(i);
    ssepp::Client c(o);
    for (int step = 0; step < 6 && c.state() != ssepp::ReadyState::closed; ++step) {
      std::string location = prefixes[rng() % prefixes.size()];  // (one draw per statement:
      location += random_text(24);                                // the same on every compiler)
      std::string retry_after = rng() % 2 ? std::to_string(rng() % 100) : random_text(32);
      std::string date = random_text(32);
      std::string type = rng() % 2 ? "text/event-stream" : random_text(20);
      auto h = head(statuses[rng() % std::size(statuses)], type, location, retry_after, date);
      if (rng() % 2) h.wall_now = std::chrono::system_clock::time_point(std::chrono::seconds(rng()));
      auto v = c.on_response(h, t0);
      Log log;
      (void)c.feed(random_text(40), log);
      auto a = c.on_end(t0 + 1s);
      if (v == Verdict::redirect) {
        REQUIRE(a.next == Next::redirect);
        auto r = req(c);
        const std::string target = r.url.target();
        CHECK(target.find_first_of(std::string("\r\n \t\0\x7f", 6)) == std::string::npos);
        CHECK(r.url.host.find_first_of("\r\n /?#@") == std::string::npos);
        CHECK(r.url.https() == (r.url.scheme == "https"));
        CHECK(ssepp::Url::parse(r.url.str()).value().str() == r.url.str());  // round trip
      }
      if (a.next == Next::reconnect) CHECK(a.delay <= ssepp::detail::max_retry_after);
    }
  }
}
