#include <ssepp/history.hpp>

#include "support/catch.hpp"

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;
using ssepp::Frame;
using ssepp::History;
using ssepp::HistoryEntry;
using ssepp::HistoryOptions;
using ssepp::IdOrder;
using ssepp::Replay;
using ssepp::Target;

namespace {
const History::Clock::time_point t0 = History::Clock::time_point{} + 1h;

void push(History& h, const std::string& id, Target t = Target::all(),
          History::Clock::time_point at = t0) {
  h.push(id, t, Frame("id: " + id + "\n\n"), at);
}

std::vector<std::string> views(const std::vector<Frame>& frames) {
  std::vector<std::string> v;
  for (auto& f : frames) v.emplace_back(f.view());
  return v;
}

auto everything = [](const HistoryEntry&) { return true; };
}  // namespace

TEST_CASE("replay_after: everything after a known id, in order, filtered by the client") {
  History h;
  push(h, "1", Target::all());
  push(h, "2", Target::pool("tenant:a"));
  push(h, "3", Target::pool("tenant:b"));
  push(h, "4", Target::channel("news"));
  push(h, "5", Target::all());
  std::vector<Frame> out;
  auto tenant_a = [](const HistoryEntry& e) {
    return e.target.matches(
        99, "", [](std::string_view p) { return p == "tenant:a"; },
        [](std::string_view) { return false; });
  };
  CHECK(h.replay_after("1", tenant_a, out) == Replay::found);
  CHECK(views(out) == std::vector<std::string>{"id: 2\n\n", "id: 5\n\n"});
  out.clear();
  CHECK(h.replay_after("5", everything, out) == Replay::found);
  CHECK(out.empty());
  CHECK(h.replay_after("3", everything, out) == Replay::found);
  CHECK(views(out) == std::vector<std::string>{"id: 4\n\n", "id: 5\n\n"});
  out.clear();
  CHECK(h.replay_after("", everything, out) == Replay::none);
  CHECK(out.empty());
}

TEST_CASE("replay_after: shares the frames, no copies") {
  History h;
  Frame f("data: x\n\n");
  h.push("1", Target::all(), Frame("a"), t0);
  h.push("2", Target::all(), f, t0);
  std::vector<Frame> out;
  REQUIRE(h.replay_after("1", everything, out) == Replay::found);
  REQUIRE(out.size() == 1);
  CHECK(out[0].data() == f.data());
}

TEST_CASE("replay_after: unknown versus too old") {
  History h(HistoryOptions{3, 0ms, ssepp::decimal_id_order});
  for (int i = 1; i <= 5; ++i) push(h, std::to_string(i));
  REQUIRE(h.size() == 3);  // 3, 4, 5 kept
  std::vector<Frame> out;
  CHECK(h.replay_after("1", everything, out) == Replay::too_old);   // "2" after it is gone
  CHECK(h.replay_after("0", everything, out) == Replay::too_old);
  CHECK(h.replay_after("9", everything, out) == Replay::unknown);   // newer than anything sent
  CHECK(h.replay_after("abc", everything, out) == Replay::unknown);  // not an id of ours
  CHECK(h.replay_after("-1", everything, out) == Replay::unknown);
  CHECK(out.empty());
  CHECK(h.replay_after("3", everything, out) == Replay::found);
  CHECK(out.size() == 2);
  out.clear();
  // "2" was the newest entry evicted: nothing after it was lost, so it is found.
  CHECK(h.replay_after("2", everything, out) == Replay::found);
  CHECK(out.size() == 3);
}

TEST_CASE("a caller-supplied id is found exactly; comparison skips ids of other schemes") {
  History h;
  push(h, "order-17");
  push(h, "10");
  push(h, "11");
  std::vector<Frame> out;
  CHECK(h.replay_after("order-17", everything, out) == Replay::found);
  CHECK(out.size() == 2);
  out.clear();
  CHECK(h.replay_after("4", everything, out) == Replay::too_old);  // older than "10"
  CHECK(h.replay_after("order-3", everything, out) == Replay::unknown);
}

TEST_CASE("expire drops entries by age; the newest id stays known") {
  History h(HistoryOptions{100, 60s, ssepp::decimal_id_order});
  push(h, "1", Target::all(), t0);
  push(h, "2", Target::all(), t0 + 30s);
  CHECK(h.expire(t0 + 59s) == 0);
  CHECK(h.expire(t0 + 60s) == 1);  // exactly max_age old: gone
  REQUIRE(h.size() == 1);
  CHECK(h.at(0).id == "2");
  std::vector<Frame> out;
  CHECK(h.replay_after("1", everything, out) == Replay::found);  // only "1" itself expired
  CHECK(out.size() == 1);
  out.clear();
  CHECK(h.replay_after("0", everything, out) == Replay::too_old);
  CHECK(h.expire(t0 + 90s) == 1);
  CHECK(h.empty());
  // The client that saw the last event missed nothing, even though the entry expired.
  CHECK(h.replay_after("2", everything, out) == Replay::found);
  CHECK(out.empty());
  CHECK(h.replay_after("1", everything, out) == Replay::too_old);
  CHECK(h.replay_after("3", everything, out) == Replay::unknown);
  CHECK(h.last_id() == "2");
}

TEST_CASE("a zero max_age keeps entries however old") {
  History h(HistoryOptions{100, 0ms, ssepp::decimal_id_order});
  push(h, "1", Target::all(), t0);
  CHECK(h.expire(t0 + 1000h) == 0);
  CHECK(h.size() == 1);
}

TEST_CASE("max_entries 0 keeps nothing but the newest id") {
  History h(HistoryOptions{0, 0ms, ssepp::decimal_id_order});
  push(h, "1");
  push(h, "2");
  CHECK(h.empty());
  std::vector<Frame> out;
  CHECK(h.replay_after("2", everything, out) == Replay::found);
  CHECK(h.replay_after("1", everything, out) == Replay::too_old);
}

TEST_CASE("eviction keeps order across ring growth and wrap-around") {
  History h(HistoryOptions{50, 0ms, ssepp::decimal_id_order});
  for (int i = 1; i <= 137; ++i) push(h, std::to_string(i));
  REQUIRE(h.size() == 50);
  for (std::size_t i = 0; i < h.size(); ++i) CHECK(h.at(i).id == std::to_string(88 + i));
  std::vector<Frame> out;
  CHECK(h.replay_after("100", everything, out) == Replay::found);
  CHECK(out.size() == 37);
  CHECK(out.front().view() == "id: 101\n\n");
  CHECK(out.back().view() == "id: 137\n\n");
  h.clear();
  CHECK(h.empty());
  CHECK(h.last_id() == "137");
}

TEST_CASE("History with another id scheme: HistoryOptions::order tells too old from unknown") {
  // Any id scheme plugs in through its IdOrder (a Redis bus's history uses stream_id_order):
  // here ids are runs of 'x', ordered by length.
  IdOrder by_length = [](std::string_view a, std::string_view b) noexcept -> std::optional<int> {
    if (a.empty() || b.empty() || a.find_first_not_of('x') != std::string_view::npos ||
        b.find_first_not_of('x') != std::string_view::npos)
      return std::nullopt;
    return a.size() < b.size() ? -1 : (a.size() > b.size() ? 1 : 0);
  };
  History h(HistoryOptions{2, 0ms, by_length});
  for (const char* id : {"x", "xx", "xxx", "xxxx"}) push(h, id);
  std::vector<Frame> out;
  CHECK(h.replay_after("x", everything, out) == Replay::too_old);
  CHECK(out.empty());
  CHECK(h.replay_after("xxx", everything, out) == Replay::found);
  CHECK(out.size() == 1);
  CHECK(h.replay_after("xxxxxxx", everything, out) == Replay::unknown);  // newer than any
  CHECK(h.replay_after("y", everything, out) == Replay::unknown);        // not of the scheme
}

TEST_CASE("decimal_id_order compares by value") {
  using ssepp::decimal_id_order;
  CHECK(decimal_id_order("9", "10") == -1);
  CHECK(decimal_id_order("10", "9") == 1);
  CHECK(decimal_id_order("007", "7") == 0);
  CHECK(decimal_id_order("18446744073709551615", "1") == 1);
  CHECK_FALSE(decimal_id_order("18446744073709551616", "1"));  // overflow
  CHECK_FALSE(decimal_id_order("", "1"));
  CHECK_FALSE(decimal_id_order("1a", "1"));
  CHECK_FALSE(decimal_id_order("+1", "1"));
}

TEST_CASE("to_string(Replay) names the enumerators") {
  CHECK(ssepp::to_string(Replay::none) == "none");
  CHECK(ssepp::to_string(Replay::found) == "found");
  CHECK(ssepp::to_string(Replay::unknown) == "unknown");
  CHECK(ssepp::to_string(Replay::too_old) == "too_old");
  static_assert(ssepp::to_string(Replay::found) == "found");
}

TEST_CASE("replay_after: a user part matches the client's user only, not a pool named like it") {
  History h;
  push(h, "1", Target::all());
  push(h, "2", Target::user("bob"));
  push(h, "3", Target::pool("user:bob"));
  push(h, "4", Target::users({"ann", "bob"}));
  auto as = [](std::string user, std::vector<std::string> pools) {
    return [user, pools](const HistoryEntry& e) {
      return e.target.matches(
          1, user,
          [&](std::string_view p) { return std::find(pools.begin(), pools.end(), p) != pools.end(); },
          [](std::string_view) { return false; });
    };
  };
  std::vector<Frame> out;
  CHECK(h.replay_after("1", as("bob", {}), out) == Replay::found);
  CHECK(views(out) == std::vector<std::string>{"id: 2\n\n", "id: 4\n\n"});
  out.clear();
  CHECK(h.replay_after("1", as("", {"user:bob"}), out) == Replay::found);
  CHECK(views(out) == std::vector<std::string>{"id: 3\n\n"});
}
