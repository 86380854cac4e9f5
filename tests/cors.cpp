#include <ssepp/cors.hpp>

#include "support/catch.hpp"

#include <optional>
#include <string_view>

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
