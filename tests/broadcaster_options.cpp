// The broadcaster's vocabulary on its own: results, reasons, defaults.
#include <ssepp/broadcaster_options.hpp>

#include "support/catch.hpp"

#include <string>
#include <type_traits>

TEST_CASE("to_string(DisconnectReason) names the enumerators") {
  CHECK(ssepp::to_string(ssepp::DisconnectReason::requested) == "requested");
  CHECK(ssepp::to_string(ssepp::DisconnectReason::sink_failed) == "sink_failed");
  CHECK(ssepp::to_string(ssepp::DisconnectReason::shutdown) == "shutdown");
  CHECK(ssepp::to_string(static_cast<ssepp::DisconnectReason>(42)).empty());
  static_assert(ssepp::to_string(ssepp::DisconnectReason::shutdown) == "shutdown");
}

TEST_CASE("ConnectResult and SendResult follow the Result convention") {
  static_assert(std::is_same_v<ssepp::ConnectResult, ssepp::Result<ssepp::Connected>>);
  static_assert(std::is_same_v<ssepp::SendResult, ssepp::Result<ssepp::Sent>>);
  ssepp::SendResult sent = ssepp::Sent{"7", 3};
  REQUIRE(sent);
  CHECK(sent->id == "7");
  CHECK(sent->delivered == 3);
  ssepp::SendResult unknown = ssepp::errc::unknown_client;
  CHECK_FALSE(unknown);
  CHECK(unknown.error() == ssepp::errc::unknown_client);
  ssepp::ConnectResult refused = ssepp::errc::sink_failed;
  CHECK_FALSE(refused);
  CHECK(refused.error().message() == "the sink refused a frame while the client was connecting");
  ssepp::Connected c;
  CHECK(c.id == 0);
  CHECK(c.replay == ssepp::Replay::none);
  CHECK(c.replayed == 0);
  CHECK(c.refused_channels.empty());
}

TEST_CASE("BroadcasterOptions defaults") {
  ssepp::BroadcasterOptions o;
  CHECK(o.history_size == 1024);
  CHECK(o.heartbeat == std::chrono::seconds(15));
  CHECK(o.first_id == 1);
  CHECK(o.first_client_id == 1);
  CHECK_FALSE(o.retry);
  CHECK_FALSE(o.preamble);
  CHECK(o.id_order == &ssepp::decimal_id_order);
}
