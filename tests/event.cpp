#include <ssepp/event.hpp>
#include <ssepp/error.hpp>

#include "support/catch.hpp"

#include <string>
#include <type_traits>

using namespace std::chrono_literals;

TEST_CASE("Event is a plain aggregate with an optional id and retry") {
  ssepp::Event ev;
  CHECK(ev.data.empty());
  CHECK(ev.type.empty());
  CHECK_FALSE(ev.id.has_value());
  CHECK_FALSE(ev.retry.has_value());
  CHECK(ev.effective_type() == "message");
  ev.type = "price";
  ev.data = "{\"x\":1}";
  ev.id = "7";
  ev.retry = std::chrono::milliseconds(3000);
  CHECK(ev.effective_type() == "price");
}

TEST_CASE("Event setters chain on temporaries and lvalues") {
  auto a = ssepp::Event{}.with_type("t").with_data("d").with_id("1").with_retry(5ms).with_comment("c");
  ssepp::Event b;
  b.with_type("t").with_data("d").with_id("1").with_retry(5ms).with_comment("c");
  CHECK(a == b);
  CHECK(a.type == "t");
  CHECK(a.data == "d");
  CHECK(a.id == std::optional<std::string>("1"));
  CHECK(a.retry == std::optional<std::chrono::milliseconds>(5ms));
  b.id.reset();
  CHECK(a != b);
}

// On a temporary the setters return an Event by value: a reference to the temporary would dangle
// once the full expression ends (a heap-use-after-free under AddressSanitizer).
static_assert(std::is_same_v<decltype(ssepp::Event{}.with_data("")), ssepp::Event>);
static_assert(std::is_same_v<decltype(ssepp::Event{}.with_type("")), ssepp::Event>);
static_assert(std::is_same_v<decltype(ssepp::Event{}.with_id("")), ssepp::Event>);
static_assert(std::is_same_v<decltype(ssepp::Event{}.with_retry(5ms)), ssepp::Event>);
static_assert(std::is_same_v<decltype(ssepp::Event{}.with_comment("")), ssepp::Event>);
static_assert(std::is_same_v<decltype(std::declval<ssepp::Event&>().with_data("")), ssepp::Event&>);

TEST_CASE("a chain on a temporary bound to a const reference does not dangle") {
  const std::string payload(100, 'p');  // longer than any small-string buffer: on the heap
  const ssepp::Event& ev = ssepp::Event{}.with_type("tick").with_data(payload).with_id("7");
  // With `Event&&` returned, `ev` referred to the temporary destroyed at the `;` above.
  CHECK(ev.data == payload);
  CHECK(ev.type == "tick");
  CHECK(ev.id == std::optional<std::string>("7"));
  const ssepp::Event& one = ssepp::Event{}.with_comment(payload);
  CHECK(one.comment == payload);
}

TEST_CASE("errc converts to std::error_code in the ssepp category") {
  std::error_code ec = ssepp::errc::invalid_event_id;
  CHECK(ec.category().name() == std::string("ssepp"));
  CHECK(ec.message().find("id") != std::string::npos);
  CHECK(ec == ssepp::errc::invalid_event_id);
  CHECK(ec != ssepp::errc::invalid_event_type);
  CHECK(static_cast<bool>(ec));
  for (int i = 1; i <= static_cast<int>(ssepp::errc::sink_failed); ++i)
    CHECK(ssepp::error_category().message(i) != "unknown ssepp error");
  CHECK(ssepp::error_category().message(9999) == "unknown ssepp error");
}

TEST_CASE("to_string(errc) names every enumerator") {
  STATIC_REQUIRE(ssepp::to_string(ssepp::errc::line_too_long) == "line_too_long");
  CHECK(ssepp::to_string(ssepp::errc::invalid_event_type) == "invalid_event_type");
  CHECK(ssepp::to_string(ssepp::errc::invalid_event_id) == "invalid_event_id");
  CHECK(ssepp::to_string(ssepp::errc::invalid_retry) == "invalid_retry");
  CHECK(ssepp::to_string(ssepp::errc::line_too_long) == "line_too_long");
  CHECK(ssepp::to_string(ssepp::errc::event_too_large) == "event_too_large");
  CHECK(ssepp::to_string(ssepp::errc::unknown_client) == "unknown_client");
  CHECK(ssepp::to_string(ssepp::errc::join_refused) == "join_refused");
  CHECK(ssepp::to_string(ssepp::errc::invalid_name) == "invalid_name");
  CHECK(ssepp::to_string(ssepp::errc::bad_status) == "bad_status");
  CHECK(ssepp::to_string(ssepp::errc::bad_content_type) == "bad_content_type");
  CHECK(ssepp::to_string(ssepp::errc::closed) == "closed");
  CHECK(ssepp::to_string(ssepp::errc::invalid_last_event_id) == "invalid_last_event_id");
  CHECK(ssepp::to_string(ssepp::errc::bus_unavailable) == "bus_unavailable");
  CHECK(ssepp::to_string(ssepp::errc::invalid_message) == "invalid_message");
  CHECK(ssepp::to_string(ssepp::errc::unsupported_encoding) == "unsupported_encoding");
  CHECK(ssepp::to_string(ssepp::errc::invalid_compressed_data) == "invalid_compressed_data");
  CHECK(ssepp::to_string(ssepp::errc::decompression_limit) == "decompression_limit");
  CHECK(ssepp::to_string(ssepp::errc::compression_failed) == "compression_failed");
  CHECK(ssepp::to_string(ssepp::errc::invalid_url) == "invalid_url");
  CHECK(ssepp::to_string(ssepp::errc::bad_redirect) == "bad_redirect");
  CHECK(ssepp::to_string(ssepp::errc::too_many_redirects) == "too_many_redirects");
  CHECK(ssepp::to_string(ssepp::errc::insecure_redirect) == "insecure_redirect");
  CHECK(ssepp::to_string(ssepp::errc::retries_exhausted) == "retries_exhausted");
  CHECK(ssepp::to_string(ssepp::errc::sink_failed) == "sink_failed");
  CHECK(ssepp::to_string(static_cast<ssepp::errc>(9999)).empty());
  // Every enumerator has a distinct name.
  for (int i = 1; i <= static_cast<int>(ssepp::errc::sink_failed); ++i)
    for (int j = 1; j < i; ++j)
      CHECK(ssepp::to_string(static_cast<ssepp::errc>(i)) !=
            ssepp::to_string(static_cast<ssepp::errc>(j)));
}

TEST_CASE("Error carries its code") {
  try {
    ssepp::detail::throw_error(ssepp::errc::line_too_long);
    FAIL("no throw");
  } catch (const ssepp::Error& e) {
    CHECK(e.code() == ssepp::errc::line_too_long);
  }
}
