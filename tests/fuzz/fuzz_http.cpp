// Request helpers on hostile input: never crash, and every answer keeps its promise (a
// Last-Event-ID is accepted only when valid; credentials never go with "*").
#include <ssepp/cors.hpp>
#include <ssepp/http.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdlib>
#include <string>

#include "check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider in(bytes, size);
  const std::string header = in.ConsumeRandomLengthString(2048);
  const bool has_header = in.ConsumeBool();
  const std::string origin = in.ConsumeRandomLengthString(64);
  const std::string target = in.ConsumeRemainingBytesAsString();

  auto result = ssepp::last_event_id(
      has_header ? std::optional<std::string_view>(header) : std::nullopt, target);
  const std::error_code ec = result.error();
  CHECK(result.has_value() == !ec);
  const std::optional<std::string> id = result.value_or(std::nullopt);
  if (id) {
    CHECK(!id->empty());
    // The rule, restated here rather than asked of the library: what a client could have stored
    // (no CR, LF or NUL), at most 1024 bytes.
    CHECK(id->find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
    CHECK(id->size() <= 1024);
  }
  if (ec) CHECK(!id && ec == ssepp::errc::invalid_last_event_id);

  auto [channels, truncated] = ssepp::query_parameters(target, "channel", 16);
  CHECK(channels.size() <= 16);
  if (!truncated) {
    auto first = ssepp::query_parameter(target, "channel");
    CHECK(channels.empty() == !first.has_value());
    if (first) CHECK(channels.front() == *first);
  }
  CHECK(ssepp::target_path(target).size() + ssepp::target_query(target).size() <= target.size());

  for (bool credentials : {false, true}) {
    ssepp::CorsOptions opts;
    opts.origins = {"*", "https://a.example"};
    opts.credentials = credentials;
    ssepp::Cors cors(opts);
    auto h = cors.headers(origin);
    auto allow = h.find("Access-Control-Allow-Origin");
    auto creds = h.find("Access-Control-Allow-Credentials");
    if (allow && *allow == "*") CHECK(!creds);
    if (creds) CHECK(credentials && origin == "https://a.example");
    if (origin.empty()) CHECK(!allow);
    (void)cors.preflight_headers(origin);
  }
  return 0;
}
