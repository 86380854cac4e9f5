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
}

TEST_CASE("check_last_event_id refuses what the parser would never store") {
  CHECK_FALSE(ssepp::check_last_event_id("42"));
  CHECK_FALSE(ssepp::check_last_event_id(""));
  CHECK_FALSE(ssepp::check_last_event_id("1700000000000-0"));
  CHECK_FALSE(ssepp::check_last_event_id("caf\xc3\xa9 id with spaces"));
  CHECK(ssepp::check_last_event_id("a\nb") == ssepp::errc::invalid_last_event_id);
  CHECK(ssepp::check_last_event_id("a\rb") == ssepp::errc::invalid_last_event_id);
  CHECK(ssepp::check_last_event_id(std::string_view("a\0b", 3)) ==
        ssepp::errc::invalid_last_event_id);
  CHECK_FALSE(ssepp::check_last_event_id(std::string(1024, 'x')));
  CHECK(ssepp::check_last_event_id(std::string(1025, 'x')) == ssepp::errc::invalid_last_event_id);
  CHECK_FALSE(ssepp::check_last_event_id("12345", 5));
  CHECK(ssepp::check_last_event_id("123456", 5) == ssepp::errc::invalid_last_event_id);
}

TEST_CASE("last_event_id: header first, then the lastEventId query parameter") {
  std::error_code ec = ssepp::errc::closed;
  CHECK(ssepp::last_event_id(std::nullopt, "/events", ec) == std::nullopt);
  CHECK_FALSE(ec);

  CHECK(ssepp::last_event_id("17", "/events?lastEventId=3", ec) ==
        std::optional<std::string>("17"));
  CHECK_FALSE(ec);
  CHECK(ssepp::last_event_id(std::nullopt, "/events?channel=a&lastEventId=3", ec) ==
        std::optional<std::string>("3"));
  CHECK(ssepp::last_event_id("", "/events?lastEventId=9", ec) == std::optional<std::string>("9"));
  CHECK(ssepp::last_event_id(std::nullopt, "/events?lastEventId=", ec) == std::nullopt);
  CHECK_FALSE(ec);
  CHECK(ssepp::last_event_id(std::nullopt, "/events?lastEventId=a%20b+c", ec) ==
        std::optional<std::string>("a b c"));

  // Percent-decoding cannot smuggle in what a header could not carry.
  CHECK(ssepp::last_event_id(std::nullopt, "/events?lastEventId=1%0A2", ec) == std::nullopt);
  CHECK(ec == ssepp::errc::invalid_last_event_id);
  CHECK(ssepp::last_event_id(std::nullopt, "/events?lastEventId=1%000", ec) == std::nullopt);
  CHECK(ec == ssepp::errc::invalid_last_event_id);
  CHECK(ssepp::last_event_id(std::string_view("1\r2"), "/events", ec) == std::nullopt);
  CHECK(ec == ssepp::errc::invalid_last_event_id);
  // An invalid header is refused, not replaced by the query parameter.
  CHECK(ssepp::last_event_id(std::string_view("1\n"), "/events?lastEventId=2", ec) == std::nullopt);
  CHECK(ec == ssepp::errc::invalid_last_event_id);

  std::string huge(2000, '7');
  CHECK(ssepp::last_event_id(std::string_view(huge), "/events", ec) == std::nullopt);
  CHECK(ec == ssepp::errc::invalid_last_event_id);
  CHECK(ssepp::last_event_id(std::string_view(huge), "/events", ec, 4096) ==
        std::optional<std::string>(huge));
  CHECK_FALSE(ec);
}

TEST_CASE("target_path, target_query and query parameters") {
  CHECK(ssepp::target_path("/events?channel=a") == "/events");
  CHECK(ssepp::target_path("/events") == "/events");
  CHECK(ssepp::target_path("/a#frag") == "/a");
  CHECK(ssepp::target_query("/events?channel=a#x") == "channel=a");
  CHECK(ssepp::target_query("/events") == "");
  CHECK(ssepp::target_query("/events?") == "");

  const char* t = "/events?channel=a&channel=b%2Fc&x=1&&channel=&flag&ch%61nnel=d+e";
  CHECK(ssepp::query_parameters(t, "channel") == std::vector<std::string>{"a", "b/c", "", "d e"});
  CHECK(ssepp::query_parameter(t, "channel") == std::optional<std::string>("a"));
  CHECK(ssepp::query_parameter(t, "x") == std::optional<std::string>("1"));
  CHECK(ssepp::query_parameter(t, "flag") == std::optional<std::string>(""));
  CHECK(ssepp::query_parameter(t, "missing") == std::nullopt);
  CHECK(ssepp::query_parameter("/p?v=%zz%4", "v") == std::optional<std::string>("%zz%4"));
  CHECK(ssepp::query_parameter("/p?v=%41%62", "v") == std::optional<std::string>("Ab"));

  bool truncated = false;
  auto two = ssepp::query_parameters("/e?c=1&c=2&c=3", "c", 2, &truncated);
  CHECK(two == std::vector<std::string>{"1", "2"});
  CHECK(truncated);
  ssepp::query_parameters("/e?c=1&c=2", "c", 2, &truncated);
  CHECK_FALSE(truncated);
}

TEST_CASE("Cors: listed origins echoed, credentials only for them, never with *") {
  ssepp::Cors cors({{"https://app.example", "http://localhost:3000"}, true});

  auto ok = cors.headers("https://app.example");
  CHECK(ok.find("Access-Control-Allow-Origin") ==
        std::optional<std::string_view>("https://app.example"));
  CHECK(ok.find("Access-Control-Allow-Credentials") == std::optional<std::string_view>("true"));
  CHECK(ok.find("Vary") == std::optional<std::string_view>("Origin"));
  CHECK(cors.allowed("http://localhost:3000"));

  auto evil = cors.headers("https://evil.example");
  CHECK_FALSE(evil.find("Access-Control-Allow-Origin").has_value());
  CHECK_FALSE(evil.find("Access-Control-Allow-Credentials").has_value());
  CHECK(evil.find("Vary") == std::optional<std::string_view>("Origin"));
  CHECK_FALSE(cors.allowed("https://app.example.evil"));
  CHECK_FALSE(cors.allowed("https://APP.example"));
  CHECK_FALSE(cors.allowed("null"));

  CHECK(cors.headers("").empty());  // same-origin or non-browser request: nothing to add

  auto pre = cors.preflight_headers("https://app.example");
  CHECK(pre.find("Access-Control-Allow-Methods") ==
        std::optional<std::string_view>("GET, POST, OPTIONS"));
  CHECK(pre.find("Access-Control-Allow-Headers")->find("Last-Event-ID") != std::string_view::npos);
  CHECK(pre.find("Access-Control-Max-Age") == std::optional<std::string_view>("600"));
  auto pre_evil = cors.preflight_headers("https://evil.example");
  CHECK_FALSE(pre_evil.find("Access-Control-Allow-Methods").has_value());
  CHECK_FALSE(pre_evil.find("Access-Control-Allow-Origin").has_value());
}

TEST_CASE("Cors: * answers any origin without credentials, listed ones with") {
  ssepp::Cors cors({{"*", "https://app.example"}, true});
  auto any = cors.headers("https://other.example");
  CHECK(any.find("Access-Control-Allow-Origin") == std::optional<std::string_view>("*"));
  CHECK_FALSE(any.find("Access-Control-Allow-Credentials").has_value());
  CHECK(cors.allowed("https://other.example"));
  CHECK_FALSE(cors.listed("https://other.example"));

  auto listed = cors.headers("https://app.example");
  CHECK(listed.find("Access-Control-Allow-Origin") ==
        std::optional<std::string_view>("https://app.example"));
  CHECK(listed.find("Access-Control-Allow-Credentials") == std::optional<std::string_view>("true"));

  // "null" (sandboxed frame, file://) is any-origin at most, never credentialed.
  auto null_origin = cors.headers("null");
  CHECK(null_origin.find("Access-Control-Allow-Origin") == std::optional<std::string_view>("*"));
  CHECK_FALSE(null_origin.find("Access-Control-Allow-Credentials").has_value());

  ssepp::Cors star_only({{"*"}, true});
  auto s = star_only.headers("https://x.example");
  CHECK(s.find("Access-Control-Allow-Origin") == std::optional<std::string_view>("*"));
  CHECK_FALSE(s.find("Access-Control-Allow-Credentials").has_value());
  CHECK_FALSE(s.find("Vary").has_value());

  ssepp::Cors none;
  CHECK(none.headers("https://x.example").empty());
  CHECK_FALSE(none.allowed("https://x.example"));

  ssepp::Cors listed_no_creds({{"https://app.example"}, false});
  CHECK_FALSE(listed_no_creds.headers("https://app.example")
                  .find("Access-Control-Allow-Credentials")
                  .has_value());
}
