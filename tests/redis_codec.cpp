// The Redis codec without a server (and without hiredis): stream entries written and read back,
// malformed entries refused; position ids and the shard hash.
#include <ssepp/redis/codec.hpp>

#ifdef __HIREDIS_H
#  error "the Redis codec must not include hiredis"
#endif

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "support/catch.hpp"

using namespace std::chrono_literals;
using ssepp::Event;
using ssepp::Target;

namespace {

bool decode(std::string_view id, const std::vector<std::string_view>& items, Target& t, Event& e) {
  return ssepp::detail::decode_entry_items(
      id, items.size(), [&](std::size_t i) { return items[i]; }, t, e);
}

// The entry fields of (target, ev), decoded back with entry id `id`.
bool round_trip(const Target& target, const Event& ev, Target& t, Event& e,
                std::string_view id = "1700000000000-7") {
  ssepp::detail::EntryFields fields(target, ev);
  std::vector<std::string_view> items;
  fields.append_to(items, ev);
  return decode(id, items, t, e);
}

}  // namespace

TEST_CASE("stream entries round-trip: every field, every target kind, any bytes in names") {
  const Target targets[] = {
      Target::all(), Target::channel("news"), Target::user("bob"), Target::pool("tenant:1"),
      Target::client(42),
      Target::channel("a:b") | Target::pool(std::string("p\0q\n", 4)) | Target::user("user:b")};
  const Event events[] = {
      Event{}.with_data("plain"),
      Event{}.with_data("line 1\nline 2").with_type("update"),
      Event{}.with_data("").with_type("ping"),
      Event{}.with_data(std::string("nul\0inside", 10)).with_retry(3000ms),
      [] {
        Event e;
        e.comment = "keepalive";
        return e;
      }(),
  };
  for (const auto& target : targets) {
    for (const auto& ev : events) {
      Target t;
      Event e;
      REQUIRE(round_trip(target, ev, t, e));
      CHECK(t == target);
      Event want = ev;
      want.id = "1700000000000-7";  // the entry id becomes the event id
      CHECK(e == want);
    }
  }
}

TEST_CASE("stream entries: unknown fields ignored, malformed entries refused") {
  Target t;
  Event e;
  using V = std::vector<std::string_view>;
  CHECK(decode("1-1", V{"target", "*", "data", "x", "origin", "node-3"}, t, e));
  CHECK(e.data == "x");
  CHECK(t.is_all());

  CHECK_FALSE(decode("", V{"target", "*", "data", "x"}, t, e));              // no id
  CHECK_FALSE(decode("1-1", V{"target", "*", "data"}, t, e));                // odd item count
  CHECK_FALSE(decode("1-1", V{"data", "x"}, t, e));                          // no target
  CHECK_FALSE(decode("1-1", V{"target", "q3:abc", "data", "x"}, t, e));      // unknown kind
  CHECK_FALSE(decode("1-1", V{"target", "c9:ab", "data", "x"}, t, e));       // short name
  CHECK_FALSE(decode("1-1", V{"target", "k2:1x", "data", "x"}, t, e));       // client not a number
  CHECK_FALSE(decode("1-1", V{"target", "", "data", "x"}, t, e));            // empty target
  CHECK_FALSE(decode("1-1", V{"target", "*", "data", "x", "retry", "soon"}, t, e));
  CHECK_FALSE(decode("1-1", V{"target", "*", "data", "x", "retry", "-5"}, t, e));
  CHECK_FALSE(decode("1-1", V{"target", "*", "data", "x", "retry", "1234567890123"}, t, e));
  CHECK_FALSE(decode("1-1", V{"target", "*", "data", "x", "event", "a\nb"}, t, e));  // forged line
  CHECK_FALSE(decode("1-1", V{"target", "*", "data", "x", "event", "a\rb"}, t, e));
  CHECK_FALSE(decode("1\n2", V{"target", "*", "data", "x"}, t, e));          // id with a break
}

TEST_CASE("Pub/Sub JSON and stream ids need no hiredis") {
  auto m = ssepp::parse_pubsub_message(R"({"target":{"pool":"ops"},"data":[1,2]})");
  REQUIRE(m);
  CHECK(m->target == Target::pool("ops"));
  CHECK(m->event.data == "[1,2]");
  std::string why;
  auto bad = ssepp::parse_pubsub_message(R"({"data":"x","extra":1})", &why);
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == ssepp::errc::invalid_message);
  CHECK(why.find("extra") != std::string::npos);
  CHECK(*ssepp::stream_id_order("1-2", "1-10") < 0);
  CHECK_FALSE(ssepp::stream_id_order("1-x", "1-1"));
}

TEST_CASE("shard_position_order and redis_shard_of") {
  using ssepp::shard_position_order;
  CHECK(shard_position_order("1.2.3", "1.2.3") == 0);
  CHECK(shard_position_order("1.2.3", "1.3.3") == -1);
  CHECK(shard_position_order("2.2.3", "1.2.3") == 1);
  CHECK_FALSE(shard_position_order("2.1.3", "1.2.3"));  // neither before the other
  CHECK_FALSE(shard_position_order("1.2", "1.2.3"));
  CHECK_FALSE(shard_position_order("1..3", "1.2.3"));
  CHECK(shard_position_order("9", "10") == -1);
  CHECK(ssepp::detail::parse_positions("1.2.3", 3) == std::vector<std::uint64_t>{1, 2, 3});
  CHECK_FALSE(ssepp::detail::parse_positions("1.2", 3));
  CHECK_FALSE(ssepp::detail::parse_positions("1.2.3.4", 3));
  CHECK(ssepp::detail::format_positions({1, 0, 7}) == "1.0.7");
  // The hash spreads keys and moves only keys to a new shard when one is added.
  std::vector<int> per(3, 0);
  int moved_elsewhere = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string key = "ssepp:events:c:channel-" + std::to_string(i);
    auto three = ssepp::redis_shard_of(key, 3);
    REQUIRE(three < 3);
    ++per[three];
    auto four = ssepp::redis_shard_of(key, 4);
    if (four != three && four != 3) ++moved_elsewhere;
  }
  for (int n : per) CHECK(n > 800);
  CHECK(moved_elsewhere == 0);
  CHECK(ssepp::redis_shard_of("anything", 1) == 0);
}
