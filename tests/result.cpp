// Result<T>: the library's one error convention.
#include <ssepp/result.hpp>

#include "support/catch.hpp"

#include <string>

TEST_CASE("Result holds a value or an error code, and tests true only on a value") {
  ssepp::Result<std::string> ok = std::string("abc");
  REQUIRE(ok);
  CHECK(ok.has_value());
  CHECK(*ok == "abc");
  CHECK(ok->size() == 3);
  CHECK(ok.value() == "abc");
  CHECK_FALSE(ok.error());

  ssepp::Result<std::string> bad = ssepp::errc::unknown_client;
  CHECK_FALSE(bad);
  CHECK(bad.error() == ssepp::errc::unknown_client);
  CHECK(bad.value_or("none") == "none");
  CHECK(ok.value_or("none") == "abc");
#if SSEPP_HAS_EXCEPTIONS
  CHECK_THROWS_AS(bad.value(), ssepp::Error);
  try {
    (void)bad.value();
  } catch (const ssepp::Error& e) {
    CHECK(e.code() == ssepp::errc::unknown_client);
  }
#endif
  ssepp::Result<int> zero;
  REQUIRE(zero);
  CHECK(*zero == 0);
  std::string moved = std::move(ok).value();
  CHECK(moved == "abc");
}

TEST_CASE("Result<void> is success unless it carries an error") {
  ssepp::Result<void> ok;
  CHECK(ok);
  CHECK_NOTHROW(ok.value());
  ssepp::Result<void> from_zero = std::error_code{};
  CHECK(from_zero);
  ssepp::Result<void> bad = ssepp::errc::join_refused;
  CHECK_FALSE(bad);
  CHECK(bad.error() == ssepp::errc::join_refused);
#if SSEPP_HAS_EXCEPTIONS
  CHECK_THROWS_AS(bad.value(), ssepp::Error);
#endif
}
