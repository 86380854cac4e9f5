#include <ssepp/http.hpp>

#include "support/catch.hpp"

#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {
std::string joined(const ssepp::HeaderFields& h) {
  std::string out;
  for (const auto& f : h) {
    out += std::string(f.name) + ": " + std::string(f.value) + "\n";
  }
  return out;
}
}  // namespace

TEST_CASE("response_headers: the headers a stream needs, keep-alive only for HTTP/1.1") {
  auto h11 = ssepp::response_headers(11);
  CHECK(joined(h11) ==
        "Content-Type: text/event-stream; charset=utf-8\n"
        "Cache-Control: no-cache\n"
        "X-Accel-Buffering: no\n"
        "Connection: keep-alive\n");
  CHECK(ssepp::response_headers().size() == 4);
  CHECK(h11.find("content-type") ==
        std::optional<std::string_view>(ssepp::event_stream_content_type));
  CHECK_FALSE(h11.find("Content-Length").has_value());

  for (unsigned v : {10u, 20u, 30u}) {
    auto h = ssepp::response_headers(v);
    CHECK(h.size() == 3);
    CHECK_FALSE(h.find("Connection").has_value());
    CHECK(h.find("cache-control") == std::optional<std::string_view>("no-cache"));
    CHECK(h.find("X-ACCEL-BUFFERING") == std::optional<std::string_view>("no"));
  }
  static_assert(ssepp::response_headers(11).size() == 4, "usable at compile time");
}

TEST_CASE("http_version parses request-line versions") {
  CHECK(ssepp::http_version("HTTP/1.1") == 11);
  CHECK(ssepp::http_version("HTTP/1.0") == 10);
  CHECK(ssepp::http_version("HTTP/2") == 20);
  CHECK(ssepp::http_version("HTTP/2.0") == 20);
  CHECK(ssepp::http_version("HTTP/3") == 30);
  CHECK(ssepp::http_version("") == 11);
  CHECK(ssepp::http_version("garbage") == 11);
  CHECK(ssepp::http_version("HTTP/x") == 11);
}

TEST_CASE("preamble: keep-alive by default, then comment, padding and retry frames") {
  CHECK(ssepp::preamble() == ":\n\n");
  CHECK(ssepp::preamble({2500ms, 0, {}}) == "retry: 2500\n\n");
  CHECK(ssepp::preamble({std::nullopt, 0, "hello"}) == ": hello\n\n");
  CHECK(ssepp::preamble({1000ms, 0, "hi"}) == ": hi\n\nretry: 1000\n\n");

  std::string padded = ssepp::preamble({std::nullopt, 2048, {}});
  CHECK(padded.size() == 2048 + 3);
  CHECK(padded.front() == ':');
  CHECK(padded.substr(padded.size() - 2) == "\n\n");
  CHECK(padded.find_first_not_of(' ', 1) == padded.size() - 2);

  std::vector<char> buf{'x'};
  ssepp::preamble_to(buf, {5ms, 0, {}});
  CHECK(std::string(buf.begin(), buf.end()) == "xretry: 5\n\n");

  CHECK_THROWS_AS(ssepp::preamble({-1ms, 0, {}}), ssepp::Error);
  std::string kept = "keep";
  CHECK_THROWS_AS(ssepp::preamble_to(kept, {-1ms, 0, {}}), ssepp::Error);
  CHECK(kept == "keep");
  // The non-throwing twins.
  CHECK(ssepp::try_preamble({-1ms, 0, {}}).error() == ssepp::errc::invalid_retry);
  CHECK(ssepp::try_preamble_to(kept, {-1ms, 0, {"c"}}).error() == ssepp::errc::invalid_retry);
  CHECK(kept == "keep");
  auto ok = ssepp::try_preamble({1000ms, 0, "hi"});
  REQUIRE(ok);
  CHECK(*ok == ": hi\n\nretry: 1000\n\n");
  CHECK(ssepp::try_preamble_to(kept, {}));
  CHECK(kept == "keep:\n\n");
}

TEST_CASE("check_last_event_id refuses what the parser would never store") {
  CHECK(ssepp::check_last_event_id("42"));
  CHECK(ssepp::check_last_event_id(""));
  CHECK(ssepp::check_last_event_id("1700000000000-0"));
  CHECK(ssepp::check_last_event_id("caf\xc3\xa9 id with spaces"));
  CHECK(ssepp::check_last_event_id("a\nb").error() == ssepp::errc::invalid_last_event_id);
  CHECK(ssepp::check_last_event_id("a\rb").error() == ssepp::errc::invalid_last_event_id);
  CHECK(ssepp::check_last_event_id(std::string_view("a\0b", 3)).error() ==
        ssepp::errc::invalid_last_event_id);
  CHECK(ssepp::check_last_event_id(std::string(1024, 'x')));
  CHECK(ssepp::check_last_event_id(std::string(1025, 'x')).error() ==
        ssepp::errc::invalid_last_event_id);
  CHECK(ssepp::check_last_event_id("12345", 5));
  CHECK(ssepp::check_last_event_id("123456", 5).error() == ssepp::errc::invalid_last_event_id);
}

TEST_CASE("last_event_id: header first, then the lastEventId query parameter") {
  using Id = std::optional<std::string>;
  auto id = [](std::optional<std::string_view> header, std::string_view target,
               std::size_t max = ssepp::default_max_last_event_id) {
    auto r = ssepp::last_event_id(header, target, max);
    REQUIRE(r);  // a valid request
    return *r;
  };
  CHECK(id(std::nullopt, "/events") == std::nullopt);
  CHECK(id("17", "/events?lastEventId=3") == Id("17"));
  CHECK(id(std::nullopt, "/events?channel=a&lastEventId=3") == Id("3"));
  CHECK(id("", "/events?lastEventId=9") == Id("9"));
  CHECK(id(std::nullopt, "/events?lastEventId=") == std::nullopt);
  CHECK(id(std::nullopt, "/events?lastEventId=a%20b+c") == Id("a b c"));

  auto refused = [](std::optional<std::string_view> header, std::string_view target,
                    std::size_t max = ssepp::default_max_last_event_id) {
    auto r = ssepp::last_event_id(header, target, max);
    return !r && r.error() == ssepp::errc::invalid_last_event_id;
  };
  // Percent-decoding cannot smuggle in what a header could not carry.
  CHECK(refused(std::nullopt, "/events?lastEventId=1%0A2"));
  CHECK(refused(std::nullopt, "/events?lastEventId=1%000"));
  CHECK(refused(std::string_view("1\r2"), "/events"));
  // An invalid header is refused, not replaced by the query parameter.
  CHECK(refused(std::string_view("1\n"), "/events?lastEventId=2"));

  std::string huge(2000, '7');
  CHECK(refused(std::string_view(huge), "/events"));
  CHECK(id(std::string_view(huge), "/events", 4096) == Id(huge));
  CHECK_FALSE(refused(std::string_view(huge), "/events", 4096));
  // value() of a refused id throws the error.
  CHECK_THROWS_AS(ssepp::last_event_id(std::string_view("1\n"), "/").value(), ssepp::Error);
}

TEST_CASE("target_path, target_query and query parameters") {
  CHECK(ssepp::target_path("/events?channel=a") == "/events");
  CHECK(ssepp::target_path("/events") == "/events");
  CHECK(ssepp::target_path("/a#frag") == "/a");
  CHECK(ssepp::target_query("/events?channel=a#x") == "channel=a");
  CHECK(ssepp::target_query("/events") == "");
  CHECK(ssepp::target_query("/events?") == "");

  const char* t = "/events?channel=a&channel=b%2Fc&x=1&&channel=&flag&ch%61nnel=d+e";
  CHECK(ssepp::query_parameters(t, "channel").values ==
        std::vector<std::string>{"a", "b/c", "", "d e"});
  CHECK_FALSE(ssepp::query_parameters(t, "channel").truncated);
  CHECK(ssepp::query_parameter(t, "channel") == std::optional<std::string>("a"));
  CHECK(ssepp::query_parameter(t, "x") == std::optional<std::string>("1"));
  CHECK(ssepp::query_parameter(t, "flag") == std::optional<std::string>(""));
  CHECK(ssepp::query_parameter(t, "missing") == std::nullopt);
  CHECK(ssepp::query_parameter("/p?v=%zz%4", "v") == std::optional<std::string>("%zz%4"));
  CHECK(ssepp::query_parameter("/p?v=%41%62", "v") == std::optional<std::string>("Ab"));

  auto two = ssepp::query_parameters("/e?c=1&c=2&c=3", "c", 2);
  CHECK(two.values == std::vector<std::string>{"1", "2"});
  CHECK(two.truncated);
  auto all = ssepp::query_parameters("/e?c=1&c=2", "c", 2);
  CHECK(all.values == std::vector<std::string>{"1", "2"});
  CHECK_FALSE(all.truncated);
  auto none = ssepp::query_parameters("/e?d=1", "c", 0);
  CHECK(none.values.empty());
  CHECK_FALSE(none.truncated);
  CHECK(ssepp::query_parameters("/e?c=1", "c", 0).truncated);
}
