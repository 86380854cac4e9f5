#include <ssepp/event.hpp>
#include <ssepp/error.hpp>

#include "support/catch.hpp"

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

TEST_CASE("errc converts to std::error_code in the ssepp category") {
  std::error_code ec = ssepp::errc::invalid_event_id;
  CHECK(ec.category().name() == std::string("ssepp"));
  CHECK(ec.message().find("id") != std::string::npos);
  CHECK(ec == ssepp::errc::invalid_event_id);
  CHECK(ec != ssepp::errc::invalid_event_type);
  CHECK(static_cast<bool>(ec));
  for (int i = 1; i <= static_cast<int>(ssepp::errc::invalid_message); ++i)
    CHECK(ssepp::error_category().message(i) != "unknown ssepp error");
  CHECK(ssepp::error_category().message(9999) == "unknown ssepp error");
}

TEST_CASE("Error carries its code") {
  try {
    ssepp::detail::throw_error(ssepp::errc::line_too_long);
    FAIL("no throw");
  } catch (const ssepp::Error& e) {
    CHECK(e.code() == ssepp::errc::line_too_long);
  }
}
