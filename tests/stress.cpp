// Many threads at once against one broadcaster: publishers, joiners, connectors, disconnectors,
// a ticker, and sinks that fail, disconnect themselves or send from inside a delivery. Runs
// under ThreadSanitizer too (label "threads"). Invariants are checked at the end.
#include <ssepp/broadcaster.hpp>

#include "support/catch.hpp"

#include <algorithm>
#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using ssepp::ClientId;
using ssepp::Frame;
using ssepp::Target;

namespace {

struct StressSink;
using Broadcaster = ssepp::Broadcaster<StressSink>;

enum class Behaviour { normal, fails, leaves, echoes };

/// One client's view. Only the thread delivering to it writes `ids`, `accepted`, `closed`: the
/// broadcaster serialises every call into one sink, so no lock is needed (TSan checks that).
struct Rec {
  Behaviour behaviour = Behaviour::normal;
  std::size_t limit = 0;  // frames before failing / leaving
  Broadcaster* hub = nullptr;
  std::atomic<ClientId> id{0};
  std::vector<std::uint64_t> ids;
  std::size_t accepted = 0;
  int echoes = 0;
  bool closed = false;
  bool sent_after_close = false;
  std::atomic<int> closes{0};
  std::optional<std::uint64_t> resumed_from;  // Last-Event-ID given, when found
};

std::optional<std::uint64_t> id_of(std::string_view f) {
  if (f.substr(0, 4) != "id: ") return std::nullopt;
  auto end = f.find('\n');
  std::uint64_t v = 0;
  for (char c : f.substr(4, end - 4)) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

struct StressSink {
  Rec* r;
  bool send(const Frame& f);
  void close() {
    r->closed = true;
    r->closes.fetch_add(1);
  }
};

bool StressSink::send(const Frame& f) {
  if (r->closed) r->sent_after_close = true;
  if (r->behaviour == Behaviour::fails && r->accepted >= r->limit) return false;
  ++r->accepted;
  if (auto id = id_of(f.view())) r->ids.push_back(*id);
  ClientId self = r->id.load();
  if (self != 0) {
    if (r->behaviour == Behaviour::leaves && r->accepted == r->limit) (void)r->hub->disconnect(self);
    // At most two echoes per client: echoes reach echo clients, which must not loop forever.
    if (r->behaviour == Behaviour::echoes && r->accepted % 7 == 0 && r->echoes < 2) {
      ++r->echoes;
      (void)r->hub->join(self, "echo");
      (void)r->hub->publish("echo", ssepp::Event{}.with_data("echo"));
    }
  }
  return true;
}

struct Sent {
  std::string id;
  Target target;
};

const Broadcaster::Clock::time_point t0 = Broadcaster::Clock::time_point{} + 1h;

}  // namespace

TEST_CASE("stress: publishers, joiners, connectors, disconnectors and a ticker at once") {
  ssepp::BroadcasterOptions opt;
  opt.heartbeat = 2s;
  opt.history_size = 256;
  auto owner = std::make_unique<Broadcaster>(opt, t0);
  Broadcaster& hub = *owner;
  // Called concurrently from joiners and connectors: user u7 may never be in channel c5.
  hub.set_authorizer([](const ssepp::ClientInfo& who, std::string_view channel) {
    return !(channel == "c5" && who.user == "u7");
  });

  // Stable clients: connected before and after everything, in fixed groups.
  constexpr int stable_count = 8;
  std::deque<Rec> stable(stable_count);
  std::vector<std::string> stable_users(stable_count);
  std::vector<std::vector<std::string>> stable_pools(stable_count), stable_channels(stable_count);
  for (int k = 0; k < stable_count; ++k) {
    Rec& r = stable[static_cast<std::size_t>(k)];
    r.hub = &hub;
    ssepp::ConnectOptions o;
    o.user = "stable" + std::to_string(k);
    o.pools = {"tenant:" + std::to_string(k % 2)};
    o.channels = {"c" + std::to_string(k % 4)};
    stable_users[static_cast<std::size_t>(k)] = o.user;
    stable_pools[static_cast<std::size_t>(k)] = o.pools;
    stable_channels[static_cast<std::size_t>(k)] = o.channels;
    auto res = hub.connect(StressSink{&r}, o, t0);
    REQUIRE(res);
    r.id = res->id;
  }

  std::atomic<int> anomalies{0};  // Catch2 assertions are not thread-safe: count, check at the end
  std::mutex live_mutex;
  std::vector<ClientId> live;  // churn clients that may still be connected
  auto pick_live = [&](std::minstd_rand& rng) -> ClientId {
    std::lock_guard<std::mutex> lock(live_mutex);
    if (live.empty()) return 0;
    return live[rng() % live.size()];
  };

  constexpr int publishers = 2;
  constexpr int sends_per_publisher = 1500;
  std::vector<std::vector<Sent>> sent(publishers);
  std::vector<std::thread> threads;
  std::atomic<int> workers_done{0};

  for (int p = 0; p < publishers; ++p) {
    threads.emplace_back([&, p] {
      std::minstd_rand rng(static_cast<unsigned>(100 + p));
      auto& log = sent[static_cast<std::size_t>(p)];
      for (int i = 0; i < sends_per_publisher; ++i) {
        Target t;
        switch (rng() % 6) {
          case 0: t = Target::all(); break;
          case 1: t = Target::channel("c" + std::to_string(rng() % 6)); break;
          case 2: t = Target::user((rng() % 2 ? "stable" : "u") + std::to_string(rng() % 8)); break;
          case 3: t = Target::pool("tenant:" + std::to_string(rng() % 3)); break;
          case 4:
            t = Target::channel("c" + std::to_string(rng() % 4)) |
                Target::pool("tenant:" + std::to_string(rng() % 2)) | Target::channel("echo");
            break;
          default: t = Target::client(pick_live(rng)); break;
        }
        auto r = hub.send(t, ssepp::Event{}.with_data("x" + std::to_string(i)));
        if (!r) {
          if (r.error() != ssepp::errc::unknown_client) ++anomalies;
        } else if (!r->id.empty()) {
          log.push_back(Sent{r->id, t});
        }
      }
      ++workers_done;
    });
  }

  constexpr int churners = 2;
  constexpr int steps_per_churner = 1500;
  std::vector<std::deque<Rec>> churn(churners);
  for (int c = 0; c < churners; ++c) {
    threads.emplace_back([&, c] {
      std::minstd_rand rng(static_cast<unsigned>(200 + c));
      auto& recs = churn[static_cast<std::size_t>(c)];
      for (int step = 0; step < steps_per_churner; ++step) {
        auto action = rng() % 10;
        if (action < 4) {  // connect, maybe resuming
          Rec& r = recs.emplace_back();
          r.hub = &hub;
          r.behaviour = static_cast<Behaviour>(rng() % 4);
          r.limit = 1 + rng() % 20;
          ssepp::ConnectOptions o;
          o.user = "u" + std::to_string(rng() % 8);
          o.pools = {"tenant:" + std::to_string(rng() % 3)};
          o.channels = {"c" + std::to_string(rng() % 6)};
          std::string last = hub.last_event_id();
          if (!last.empty() && rng() % 2) {
            auto v = std::stoull(last);
            o.last_event_id = std::to_string(v > 20 ? v - rng() % 20 : v);
          }
          std::optional<std::uint64_t> from;
          if (o.last_event_id) from = std::stoull(*o.last_event_id);
          auto res = hub.connect(StressSink{&r}, o, t0);
          if (res) {
            if (res->replay == ssepp::Replay::found) r.resumed_from = from;
            r.id = res->id;
            std::lock_guard<std::mutex> lock(live_mutex);
            live.push_back(res->id);
          } else if (res.error() != ssepp::errc::sink_failed) {
            ++anomalies;
          }
        } else if (action < 6) {  // disconnect
          ClientId id = pick_live(rng);
          if (id != 0) {
            (void)hub.disconnect(id);
            std::lock_guard<std::mutex> lock(live_mutex);
            live.erase(std::remove(live.begin(), live.end(), id), live.end());
          }
        } else if (action < 8) {  // join
          ClientId id = pick_live(rng);
          if (id != 0) {
            auto joined = hub.join(id, "c" + std::to_string(rng() % 6));
            if (!joined && joined.error() != ssepp::errc::unknown_client &&
                joined.error() != ssepp::errc::join_refused)
              ++anomalies;
          }
        } else {  // leave
          ClientId id = pick_live(rng);
          if (id != 0) {
            auto left = hub.leave(id, "c" + std::to_string(rng() % 6));
            if (!left && left.error() != ssepp::errc::unknown_client) ++anomalies;
          }
        }
        if (rng() % 16 == 0) (void)hub.stats();
      }
      ++workers_done;
    });
  }

  threads.emplace_back([&] {
    int s = 0;
    while (workers_done.load() < publishers + churners) hub.tick(t0 + std::chrono::seconds(++s));
  });

  for (auto& t : threads) t.join();
  CHECK(anomalies.load() == 0);

  // 1. Every client saw event ids strictly increasing: order kept, no duplicate, replay first.
  auto check_order = [](const Rec& r) {
    for (std::size_t i = 1; i < r.ids.size(); ++i) REQUIRE(r.ids[i - 1] < r.ids[i]);
    if (r.resumed_from && !r.ids.empty()) REQUIRE(r.ids.front() > *r.resumed_from);
    REQUIRE_FALSE(r.sent_after_close);
  };
  for (auto& r : stable) check_order(r);
  for (auto& recs : churn)
    for (auto& r : recs) check_order(r);

  // 2. Stable clients received exactly the sends that matched them, each once, in id order.
  std::vector<Sent> all_sent;
  for (auto& log : sent) all_sent.insert(all_sent.end(), log.begin(), log.end());
  for (int k = 0; k < stable_count; ++k) {
    auto ku = static_cast<std::size_t>(k);
    auto in = [](const std::vector<std::string>& v) {
      return [&v](std::string_view n) { return std::find(v.begin(), v.end(), n) != v.end(); };
    };
    std::vector<std::uint64_t> want;
    for (auto& s : all_sent)
      if (s.target.matches(stable[ku].id.load(), stable_users[ku], in(stable_pools[ku]),
                           in(stable_channels[ku])))
        want.push_back(std::stoull(s.id));
    std::sort(want.begin(), want.end());
    REQUIRE(stable[ku].ids == want);
  }

  // 3. The counters agree with what the sinks saw.
  auto st = hub.stats();
  std::size_t accepted = 0, connected = stable_count;
  for (auto& r : stable) accepted += r.accepted;
  for (auto& recs : churn)
    for (auto& r : recs) {
      accepted += r.accepted;
      connected += r.id.load() != 0;
    }
  CHECK(st.frames == accepted);
  CHECK(st.connects == connected);
  CHECK(st.disconnects == st.connects - st.clients);
  CHECK(st.sends >= all_sent.size());
  std::size_t fails = 0;
  for (auto& recs : churn)
    for (auto& r : recs) fails += r.behaviour == Behaviour::fails && r.accepted >= r.limit && r.closes.load() == 1;
  CHECK(st.drops >= 1);
  CHECK(st.drops <= fails);

  // 4. Every sink is closed exactly once: removed ones already, the rest by the destructor.
  for (auto& recs : churn)
    for (auto& r : recs)
      if (r.id.load() != 0 && !hub.client(r.id.load())) REQUIRE(r.closes.load() == 1);
  for (auto& r : stable) REQUIRE(r.closes.load() == 0);
  CHECK(st.refused_joins > 0);
  for (auto& recs : churn)
    for (auto& r : recs)
      if (auto info = hub.client(r.id.load()); info && info->user == "u7")
        REQUIRE(std::find(info->channels.begin(), info->channels.end(), "c5") == info->channels.end());
  owner.reset();
  for (auto& r : stable) REQUIRE(r.closes.load() == 1);
  for (auto& recs : churn)
    for (auto& r : recs) REQUIRE(r.closes.load() == 1);  // failed connects are closed too
}

namespace {

/// One client of the shutdown race. Only the thread delivering to it writes the plain fields.
struct ShutRec {
  std::vector<std::string> data;  // data of each event frame, in order
  bool closed = false;
  bool sent_after_close = false;
  std::atomic<int> closes{0};
  ssepp::ClientId id = 0;  // set by the connecting thread
  bool connected = false;
  bool disconnected_early = false;  // its own disconnect succeeded
  std::error_code refused;          // why connect failed
};

struct ShutSink {
  ShutRec* r;
  bool send(const Frame& f) {
    if (r->closed) r->sent_after_close = true;
    auto p = f.view().find("data: ");
    if (p != std::string_view::npos) {
      auto end = f.view().find('\n', p);
      r->data.emplace_back(f.view().substr(p + 6, end - p - 6));
    }
    return true;
  }
  void close() {
    r->closed = true;
    r->closes.fetch_add(1);
  }
};

}  // namespace

TEST_CASE("stress: close_all while publishers send and connectors connect") {
  using Hub = ssepp::Broadcaster<ShutSink>;
  ssepp::BroadcasterOptions opt;
  opt.history_size = 64;
  Hub hub(opt, t0);
  std::atomic<int> anomalies{0};
  std::atomic<int> sends_done{0};
  std::atomic<int> connects_done{0};
  std::atomic<bool> stop{false};
  constexpr int cap = 20000;  // bound on each worker's iterations

  std::vector<std::thread> threads;
  std::vector<std::vector<std::error_code>> send_errors(2);
  for (int p = 0; p < 2; ++p) {
    threads.emplace_back([&, p] {
      auto& errors = send_errors[static_cast<std::size_t>(p)];
      for (int i = 0; i < cap && !stop.load(); ++i) {
        auto r = p == 0 ? hub.broadcast(ssepp::Event{}.with_data("b" + std::to_string(i)))
                        : hub.publish("room", ssepp::Event{}.with_data("r" + std::to_string(i)));
        errors.push_back(r.error());
        ++sends_done;
        if (!r && r.error() == ssepp::errc::closed) break;
      }
    });
  }
  std::vector<std::deque<ShutRec>> recs(2);
  for (int c = 0; c < 2; ++c) {
    threads.emplace_back([&, c] {
      std::minstd_rand rng(static_cast<unsigned>(300 + c));
      auto& mine = recs[static_cast<std::size_t>(c)];
      for (int i = 0; i < cap && !stop.load(); ++i) {
        ShutRec& r = mine.emplace_back();
        ssepp::ConnectOptions o;
        o.user = "u" + std::to_string(rng() % 4);
        if (rng() % 2) o.channels = {"room"};
        if (rng() % 3 == 0) o.last_event_id = hub.last_event_id();
        auto res = hub.connect(ShutSink{&r}, o, t0);
        if (!res) {
          r.refused = res.error();
          break;  // closed: every later connect fails too
        }
        r.id = res->id;
        r.connected = true;
        ++connects_done;
        if (rng() % 4 == 0) r.disconnected_early = static_cast<bool>(hub.disconnect(r.id));
      }
    });
  }
  ssepp::Result<std::size_t> closed_count = std::size_t{0};
  threads.emplace_back([&] {
    // Let the others get going (at most 10 s), then shut down in the middle of their work.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while ((sends_done.load() < 200 || connects_done.load() < 100) &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    closed_count = hub.close_all(ssepp::Event{}.with_type("shutdown").with_data("bye"));
    stop = true;
  });
  for (auto& t : threads) t.join();

  REQUIRE(closed_count);
  CHECK(hub.closed());
  auto st = hub.stats();
  CHECK(st.clients == 0);
  CHECK(st.disconnects == st.connects);

  // Sends: each either worked or failed with `closed`, and once closed stayed closed.
  for (auto& errors : send_errors) {
    bool seen_closed = false;
    for (auto ec : errors) {
      if (ec && ec != ssepp::errc::closed) ++anomalies;
      if (seen_closed && ec != ssepp::errc::closed) ++anomalies;
      seen_closed = seen_closed || ec == ssepp::errc::closed;
    }
  }

  // Clients: every sink closed exactly once, never written after; those still connected at the
  // shutdown got "bye" as their last event; refused connects failed with `closed`.
  std::size_t connected = 0, early = 0;
  for (auto& mine : recs) {
    for (auto& r : mine) {
      REQUIRE(r.closes.load() == 1);
      REQUIRE_FALSE(r.sent_after_close);
      if (!r.connected) {
        REQUIRE(r.refused == ssepp::errc::closed);
        REQUIRE(r.data.empty());
        continue;
      }
      ++connected;
      if (r.disconnected_early) {
        ++early;
        continue;
      }
      REQUIRE_FALSE(r.data.empty());
      REQUIRE(r.data.back() == "bye");
      REQUIRE(std::count(r.data.begin(), r.data.end(), "bye") == 1);
    }
  }
  CHECK(st.connects == connected);
  CHECK(*closed_count == connected - early);
  CHECK(anomalies.load() == 0);
}
