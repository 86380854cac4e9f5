// Broadcaster operation sequences against a simple reference model of who must receive what:
// random connects (with users, pools, channels, Last-Event-IDs), disconnects, joins (through an
// authoriser), leaves, sends to every kind of target, sinks that fail, time passing. After every
// step each client must have received exactly the model's events, in order, once.
#include <ssepp/broadcaster.hpp>
#include <ssepp/parser.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "check.hpp"

namespace {

using Clock = std::chrono::steady_clock;

ssepp::ParserOptions small_parser() {
  ssepp::ParserOptions o;
  o.limits.max_line = 4096;
  o.limits.max_event = 4096;
  return o;
}

struct Received {
  ssepp::Parser parser{small_parser()};
  std::vector<std::string> events;  // data of each event, in order
  bool fail = false;                // the next send fails
};

struct FuzzSink {
  std::shared_ptr<Received> r;
  bool send(const ssepp::Frame& f) {
    if (r->fail) return false;
    (void)r->parser.feed(f.view(), [&](const ssepp::EventView& ev) { r->events.emplace_back(ev.data); });
    return true;
  }
};

const char* const users[] = {"", "ann", "bob", "admin"};
const char* const pools[] = {"tenant:a", "user:bob", "role:x"};  // "user:bob" is just a pool
const char* const channels[] = {"news", "chat", "vip"};

struct ModelClient {
  ssepp::ClientId id = 0;
  std::string user;
  std::set<std::string> pools, channels;
  std::shared_ptr<Received> inbox;
  std::vector<std::string> expected;
  bool alive = true;
  bool matches(const ssepp::Target& t) const {
    return t.matches(
        id, user, [&](std::string_view p) { return pools.count(std::string(p)) != 0; },
        [&](std::string_view c) { return channels.count(std::string(c)) != 0; });
  }
};

struct Entry {
  std::string id, data;
  ssepp::Target target;
  Clock::time_point at;
};

bool authorised(const std::string& user, std::string_view channel) {
  return channel != "vip" || user == "admin";
}

ssepp::Target pick_target(FuzzedDataProvider& in, const std::vector<ModelClient>& clients) {
  switch (in.ConsumeIntegralInRange(0, 5)) {
    case 0: return ssepp::Target::all();
    case 1: return ssepp::Target::user(in.PickValueInArray(users));
    case 2: return ssepp::Target::pool(in.PickValueInArray(pools));
    case 3: return ssepp::Target::channel(in.PickValueInArray(channels));
    case 4: {
      ssepp::ClientId id = clients.empty() ? 12345 : clients[in.ConsumeIntegralInRange<std::size_t>(0, clients.size() - 1)].id;
      return ssepp::Target::client(id);
    }
    default:
      return ssepp::Target::channel(in.PickValueInArray(channels)) |
             ssepp::Target::pool(in.PickValueInArray(pools)) | ssepp::Target::user(in.PickValueInArray(users));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider in(bytes, size);
  const std::size_t history_size = in.ConsumeIntegralInRange<std::size_t>(0, 6);
  const auto max_age = std::chrono::milliseconds(1000);
  Clock::time_point now = Clock::time_point{} + std::chrono::hours(1);

  ssepp::BroadcasterOptions opts;
  opts.history_size = history_size;
  opts.history_max_age = max_age;
  opts.heartbeat = std::chrono::milliseconds(0);
  ssepp::Broadcaster<FuzzSink> hub(opts, now);
  hub.set_authorizer([](const ssepp::ClientInfo& c, std::string_view ch) { return authorised(c.user, ch); });

  std::vector<ModelClient> clients;
  std::vector<Entry> history;  // the model's retained history, oldest first
  std::vector<std::string> all_ids;
  std::string newest, dropped;
  int sends = 0;

  auto drop_front = [&] {
    dropped = history.front().id;
    history.erase(history.begin());
  };

  bool closed = false;
  for (int step = 0; step < 64 && in.remaining_bytes() > 0; ++step) {
    switch (in.ConsumeIntegralInRange(0, 9)) {
      case 0: {  // connect
        ModelClient c;
        c.user = in.PickValueInArray(users);
        for (const char* p : pools)
          if (in.ConsumeBool()) c.pools.insert(p);
        ssepp::ConnectOptions o;
        o.user = c.user;
        o.pools.assign(c.pools.begin(), c.pools.end());
        for (const char* ch : channels)
          if (in.ConsumeBool()) o.channels.push_back(ch);
        int which = in.ConsumeIntegralInRange(0, 3);
        if (which == 1 && !all_ids.empty())
          o.last_event_id = all_ids[in.ConsumeIntegralInRange<std::size_t>(0, all_ids.size() - 1)];
        else if (which == 2)
          o.last_event_id = in.ConsumeBool() ? "999999" : "garbage";
        for (const auto& ch : o.channels)
          if (authorised(c.user, ch)) c.channels.insert(ch);
        c.inbox = std::make_shared<Received>();
        auto res = hub.connect(FuzzSink{c.inbox}, o, now);
        if (closed) {
          CHECK(res.error() == ssepp::errc::closed);
          break;
        }
        CHECK(res);
        const ssepp::Connected& r = *res;
        CHECK(r.id != 0);
        c.id = r.id;
        CHECK(r.refused_channels.size() == o.channels.size() - c.channels.size());
        // The model's replay.
        if (!o.last_event_id) {
          CHECK(r.replay == ssepp::Replay::none);
        } else {
          const std::string& last = *o.last_event_id;
          auto it = std::find_if(history.begin(), history.end(), [&](const Entry& e) { return e.id == last; });
          auto from = history.end();
          if (it != history.end()) from = it + 1;
          else if (last == dropped && !dropped.empty()) from = history.begin();
          if (it != history.end() || last == newest || (last == dropped && !dropped.empty())) {
            if (r.replay != ssepp::Replay::found) {
              std::fprintf(stderr, "last=%s newest=%s dropped=%s replay=%d history:", last.c_str(), newest.c_str(), dropped.c_str(), static_cast<int>(r.replay));
              for (auto& e : history) std::fprintf(stderr, " %s", e.id.c_str());
              std::fprintf(stderr, " hsize=%zu\n", history_size);
            }
            CHECK(r.replay == ssepp::Replay::found);
            for (auto e = from; e != history.end(); ++e)
              if (c.matches(e->target)) c.expected.push_back(e->data);
          } else {
            CHECK(r.replay == ssepp::Replay::too_old || r.replay == ssepp::Replay::unknown);
          }
        }
        CHECK(r.replayed == c.expected.size());
        clients.push_back(std::move(c));
        break;
      }
      case 1: {  // disconnect
        if (clients.empty()) break;
        auto& c = clients[in.ConsumeIntegralInRange<std::size_t>(0, clients.size() - 1)];
        CHECK(static_cast<bool>(hub.disconnect(c.id)) == c.alive);
        c.alive = false;
        break;
      }
      case 2:
      case 3: {  // join / leave
        if (clients.empty()) break;
        auto& c = clients[in.ConsumeIntegralInRange<std::size_t>(0, clients.size() - 1)];
        std::string ch = in.PickValueInArray(channels);
        if (in.ConsumeBool()) {
          auto joined = hub.join(c.id, ch);
          if (!c.alive) CHECK(joined.error() == ssepp::errc::unknown_client);
          else if (!authorised(c.user, ch)) CHECK(joined.error() == ssepp::errc::join_refused);
          else {
            CHECK(joined);
            c.channels.insert(ch);
          }
        } else {
          auto left = hub.leave(c.id, ch);
          if (!c.alive) CHECK(left.error() == ssepp::errc::unknown_client);
          else {
            CHECK(left);
            c.channels.erase(ch);
          }
        }
        break;
      }
      case 4:
      case 5: {  // send
        ssepp::Target t = pick_target(in, clients);
        std::string data = "e" + std::to_string(++sends);
        auto res = hub.send(t, ssepp::Event{}.with_data(data));
        if (!t.valid()) {  // an empty user name
          CHECK(res.error() == ssepp::errc::invalid_name);
          break;
        }
        if (closed) {
          CHECK(res.error() == ssepp::errc::closed);
          break;
        }
        std::size_t expect_delivered = 0;
        for (auto& c : clients) {
          if (!c.alive || !c.matches(t)) continue;
          if (c.inbox->fail) {
            c.alive = false;  // removed at once
            continue;
          }
          c.expected.push_back(data);
          ++expect_delivered;
        }
        if (t.is_direct() && !(t.selectors().empty())) {
          if (!res) {
            CHECK(res.error() == ssepp::errc::unknown_client);
            CHECK(expect_delivered == 0);
            break;
          }
          CHECK(res->id.empty());
        } else {
          CHECK(res);
          const ssepp::Sent& r = *res;
          CHECK(!r.id.empty());
          newest = r.id;
          all_ids.push_back(r.id);
          if (history_size > 0) {
            history.push_back(Entry{r.id, data, t, now});
            if (history.size() > history_size) drop_front();
          } else {
            dropped = r.id;
          }
        }
        CHECK(res->delivered == expect_delivered);
        break;
      }
      case 8: {  // disconnect everyone a target matches
        ssepp::Target t = pick_target(in, clients);
        std::size_t expect = 0;
        for (auto& c : clients)
          if (c.alive && c.matches(t)) {
            c.alive = false;
            ++expect;
          }
        CHECK(hub.disconnect(t) == expect);
        break;
      }
      case 9: {  // shut down (rarely): the last event reaches everyone alive, then all are gone
        if (in.ConsumeIntegralInRange(0, 7) != 0) break;
        const bool with_event = in.ConsumeBool();
        std::string data = "bye" + std::to_string(++sends);
        auto res = with_event ? hub.close_all(ssepp::Event{}.with_data(data)) : hub.close_all();
        CHECK(res);
        std::size_t expect = 0;
        for (auto& c : clients) {
          if (!c.alive) continue;
          if (closed) CHECK(false);
          c.alive = false;
          if (!with_event || !c.inbox->fail) {
            if (with_event) c.expected.push_back(data);
            ++expect;
          }
        }
        if (closed) {
          CHECK(*res == 0);
          break;
        }
        if (with_event && !closed) {
          // The last event is a broadcast: it has an id and enters the history.
          newest = hub.last_event_id();
          all_ids.push_back(newest);
          if (history_size > 0) {
            history.push_back(Entry{newest, data, ssepp::Target::all(), now});
            if (history.size() > history_size) drop_front();
          } else {
            dropped = newest;
          }
        }
        closed = true;
        CHECK(*res == expect);
        break;
      }
      case 6: {  // a sink starts failing
        if (clients.empty()) break;
        clients[in.ConsumeIntegralInRange<std::size_t>(0, clients.size() - 1)].inbox->fail = true;
        break;
      }
      default: {  // time passes
        now += std::chrono::milliseconds(in.ConsumeIntegralInRange(0, 1500));
        hub.tick(now);
        while (!history.empty() && now - history.front().at >= max_age) drop_front();
        break;
      }
    }
    for (const auto& c : clients) CHECK(c.inbox->events == c.expected);
  }
  std::size_t alive = 0;
  for (const auto& c : clients) alive += c.alive ? 1 : 0;
  CHECK(hub.stats().clients == alive);
  return 0;
}
