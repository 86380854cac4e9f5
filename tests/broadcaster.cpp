#include <ssepp/broadcaster.hpp>
#include <ssepp/mailbox.hpp>

#include "support/catch.hpp"

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using ssepp::ClientId;
using ssepp::ConnectOptions;
using ssepp::Event;
using ssepp::Frame;
using ssepp::Replay;
using ssepp::Target;

namespace {

/// What one in-memory client received. Only the delivering thread writes it.
struct Log {
  std::vector<std::string> frames;
  std::vector<const char*> bytes;  // where each frame's bytes live (to prove sharing)
  int closes = 0;
  bool fail = false;               // send returns false
  bool throws = false;             // send throws
  std::function<void(const Frame&)> on_send;
  std::function<void()> on_close;
};

struct TestSink {
  std::shared_ptr<Log> log;
  bool send(const Frame& f) {
    if (log->throws) throw std::runtime_error("broken pipe");
    if (log->fail) return false;
    log->frames.emplace_back(f.view());
    log->bytes.push_back(f.data());
    if (log->on_send) log->on_send(f);
    return true;
  }
  void close() {
    ++log->closes;
    if (log->on_close) log->on_close();
  }
};

using Hub = ssepp::Broadcaster<TestSink>;
using Clock = Hub::Clock;
const Clock::time_point t0 = Clock::time_point{} + 1h;

struct Client {
  std::shared_ptr<Log> log = std::make_shared<Log>();
  ssepp::ConnectResult result;
  ClientId id() const { return result ? result->id : 0; }
  TestSink sink() const { return TestSink{log}; }
};

Client connect(Hub& hub, ConnectOptions opt = {}, Clock::time_point now = t0) {
  Client c;
  c.result = hub.connect(c.sink(), std::move(opt), now);
  return c;
}

ConnectOptions as(std::string user, std::vector<std::string> pools = {},
                  std::vector<std::string> channels = {},
                  std::optional<std::string> last = std::nullopt) {
  ConnectOptions o;
  o.user = std::move(user);
  o.pools = std::move(pools);
  o.channels = std::move(channels);
  o.last_event_id = std::move(last);
  return o;
}

Event msg(std::string data) { return Event{}.with_data(std::move(data)); }

/// The data line of each event frame, in order ("" for comments).
std::vector<std::string> data_of(const Log& log) {
  std::vector<std::string> out;
  for (auto& f : log.frames) {
    auto p = f.find("data: ");
    out.push_back(p == std::string::npos ? "" : f.substr(p + 6, f.find('\n', p) - p - 6));
  }
  return out;
}

/// The id of each event frame, in order (frames without an id are skipped).
std::vector<std::string> ids_of(const Log& log) {
  std::vector<std::string> out;
  for (auto& f : log.frames) {
    auto p = f.rfind("id: ", 0) == 0 ? 0 : f.find("\nid: ");
    if (p == std::string::npos) continue;
    if (p != 0) ++p;
    out.push_back(f.substr(p + 4, f.find('\n', p) - p - 4));
  }
  return out;
}

std::size_t count_heartbeats(const Log& log) {
  std::size_t n = 0;
  for (auto& f : log.frames) n += f == ":\n\n";
  return n;
}

using Strings = std::vector<std::string>;

}  // namespace

TEST_CASE("connect registers clients with distinct non-zero ids") {
  Hub hub({}, t0);
  auto a = connect(hub, as("alice", {"tenant:acme", "role:admin"}, {"news"}));
  auto b = connect(hub);
  REQUIRE(a.result);
  REQUIRE(b.result);
  CHECK(a.id() != 0);
  CHECK(a.id() != b.id());
  CHECK(a.result->replay == Replay::none);
  auto info = hub.client(a.id());
  REQUIRE(info);
  CHECK(info->id == a.id());
  CHECK(info->user == "alice");
  CHECK(info->pools == Strings{"tenant:acme", "role:admin"});
  CHECK(info->channels == Strings{"news"});
  auto anon = hub.client(b.id());
  REQUIRE(anon);
  CHECK(anon->user.empty());
  CHECK(anon->pools.empty());
  auto s = hub.stats();
  CHECK(s.clients == 2);
  CHECK(s.pools == 3);  // user:alice, tenant:acme, role:admin
  CHECK(s.channels == 1);
  CHECK(s.connects == 2);
  CHECK_FALSE(hub.client(12345));
}

TEST_CASE("duplicate pools and channels count once; invalid channels are listed, not joined") {
  Hub hub({}, t0);
  auto a = connect(hub, as("", {"p", "p"}, {"c", "", "c"}));
  REQUIRE(a.result);
  auto info = hub.client(a.id());
  REQUIRE(info);
  CHECK(info->pools == Strings{"p"});
  CHECK(info->channels == Strings{"c"});
  CHECK(a.result->refused_channels == Strings{""});
}

TEST_CASE("connect refuses an invalid user or pool name and closes the sink") {
  ssepp::BroadcasterOptions opt;
  opt.retry = 1s;
  Hub hub(opt, t0);
  const std::string too_long(ssepp::max_group_name + 1, 'x');
  for (const ConnectOptions& o : {as("", {""}), as("alice", {"tenant:a", too_long}), as(too_long)}) {
    auto c = connect(hub, o);
    CHECK_FALSE(c.result);
    CHECK(c.result.error() == ssepp::errc::invalid_name);
    CHECK(c.log->frames.empty());  // refused before anything is written
    CHECK(c.log->closes == 1);
  }
  auto s = hub.stats();
  CHECK(s.clients == 0);
  CHECK(s.pools == 0);
  CHECK(s.connects == 0);
  CHECK(s.drops == 0);
  // The longest valid user name is max_group_name bytes, like any other name.
  const std::string longest(ssepp::max_group_name, 'u');
  auto ok = connect(hub, as(longest));
  REQUIRE(ok.result);
  CHECK(hub.client(ok.id())->user == longest);
  CHECK(hub.send_to_user(longest, msg("x"))->delivered == 1);
}

TEST_CASE("a pool named like a user is just a pool: users, pools and channels never mix") {
  Hub hub({}, t0);
  auto bob = connect(hub, as("bob"));
  auto impostor = connect(hub, as("", {"user:bob"}));  // a pool that looks like bob's
  auto mallory = connect(hub, as("mallory", {"user:bob"}, {"user:bob"}));
  REQUIRE(impostor.result);
  REQUIRE(mallory.result);
  CHECK(hub.client(impostor.id())->user.empty());
  CHECK(hub.client(impostor.id())->pools == Strings{"user:bob"});

  (void)hub.broadcast(msg("start"));                                         // id 1
  CHECK(hub.send_to_user("bob", msg("to user bob"))->delivered == 1);        // id 2
  CHECK(hub.send_to_pool("user:bob", msg("to pool"))->delivered == 2);       // id 3
  CHECK(hub.send(Target::pool("user:bob"), msg("to pool 2"))->delivered == 2);
  CHECK(hub.publish("user:bob", msg("to channel"))->delivered == 1);
  CHECK(hub.send_to_user("user:bob", msg("to nobody"))->delivered == 0);
  CHECK(data_of(*bob.log) == Strings{"start", "to user bob"});
  CHECK(data_of(*impostor.log) == Strings{"start", "to pool", "to pool 2"});
  CHECK(data_of(*mallory.log) == Strings{"start", "to pool", "to pool 2", "to channel"});
  CHECK(hub.stats().pools == 3);  // users bob and mallory, pool "user:bob"

  // Replays keep them apart too.
  auto back = connect(hub, as("bob", {}, {}, std::string("1")));
  CHECK(back.result->replay == Replay::found);
  CHECK(data_of(*back.log) == Strings{"to user bob"});
  auto pool_back = connect(hub, as("", {"user:bob"}, {}, std::string("1")));
  CHECK(data_of(*pool_back.log) == Strings{"to pool", "to pool 2"});

  // Logging bob out reaches his connections, not the pool.
  CHECK(hub.disconnect(Target::user("bob")) == 2);
  CHECK(hub.client(impostor.id()));
  CHECK(hub.client(mallory.id()));
}

TEST_CASE("a send naming an invalid user, pool or channel is refused and uses no id") {
  Hub hub({}, t0);
  auto a = connect(hub, as("alice", {"p"}, {"c"}));
  const std::string too_long(ssepp::max_group_name + 1, 'x');
  CHECK(hub.send_to_user("", msg("x")).error() == ssepp::errc::invalid_name);
  CHECK(hub.send_to_pool("", msg("x")).error() == ssepp::errc::invalid_name);
  CHECK(hub.publish(too_long, msg("x")).error() == ssepp::errc::invalid_name);
  CHECK(hub.send(Target::channel("c") | Target::pool(""), msg("x")).error() ==
        ssepp::errc::invalid_name);
  CHECK(hub.send_encoded(Target::user(""), Frame("data: x\n\n")).error() ==
        ssepp::errc::invalid_name);
  CHECK(a.log->frames.empty());
  CHECK(hub.broadcast(msg("ok"))->id == "1");
}

TEST_CASE("broadcast encodes once, reaches everyone, and numbers events") {
  Hub hub({}, t0);
  auto a = connect(hub);
  auto b = connect(hub, as("bob"));
  auto r1 = hub.broadcast(msg("one"));
  auto r2 = hub.broadcast(msg("two"));
  CHECK(r1);
  CHECK(r1->id == "1");
  CHECK(r2->id == "2");
  CHECK(r1->delivered == 2);
  CHECK(a.log->frames == Strings{"id: 1\ndata: one\n\n", "id: 2\ndata: two\n\n"});
  CHECK(b.log->frames == a.log->frames);
  // Both clients hold the very same bytes: one encode per send, shared.
  CHECK(a.log->bytes[0] == b.log->bytes[0]);
  auto s = hub.stats();
  CHECK(s.sends == 2);
  CHECK(s.frames == 4);
  CHECK(s.bytes == 2 * (a.log->frames[0].size() + a.log->frames[1].size()));
  CHECK(s.history == 2);
  CHECK(hub.last_event_id() == "2");
}

TEST_CASE("a caller-supplied id is kept and recorded; the counter is not used") {
  Hub hub({}, t0);
  auto a = connect(hub);
  auto r = hub.broadcast(msg("x").with_id("order-9"));
  CHECK(r->id == "order-9");
  CHECK(hub.broadcast(msg("y"))->id == "1");
  CHECK(ids_of(*a.log) == Strings{"order-9", "1"});
  auto late = connect(hub, as("", {}, {}, std::string("order-9")));
  CHECK(late.result->replay == Replay::found);
  CHECK(data_of(*late.log) == Strings{"y"});
}

TEST_CASE("first_id starts the automatic ids") {
  ssepp::BroadcasterOptions opt;
  opt.first_id = 1700000000;
  Hub hub(opt, t0);
  CHECK(hub.broadcast(msg("x"))->id == "1700000000");
  CHECK(hub.broadcast(msg("y"))->id == "1700000001");
}

TEST_CASE("an invalid event is refused, sends nothing and uses no id") {
  Hub hub({}, t0);
  auto a = connect(hub);
  auto bad = hub.broadcast(Event{}.with_type("a\nb").with_data("x"));
  CHECK_FALSE(bad);
  CHECK(bad.error() == ssepp::errc::invalid_event_type);
  CHECK(hub.broadcast(msg("x").with_id("bad\rid")).error() == ssepp::errc::invalid_event_id);
  CHECK(a.log->frames.empty());
  CHECK(hub.broadcast(msg("ok"))->id == "1");
  CHECK(hub.stats().sends == 1);
}

TEST_CASE("send to one client: no automatic id, no history, unknown client reported") {
  Hub hub({}, t0);
  auto a = connect(hub);
  auto b = connect(hub);
  auto r = hub.send_to(a.id(), msg("private"));
  CHECK(r);
  CHECK(r->id.empty());
  CHECK(r->delivered == 1);
  CHECK(a.log->frames == Strings{"data: private\n\n"});
  CHECK(b.log->frames.empty());
  CHECK(hub.stats().history == 0);
  auto gone = hub.send_to(999999, msg("x"));
  CHECK_FALSE(gone);
  CHECK(gone.error() == ssepp::errc::unknown_client);
  // With the caller's id it is recorded, so a reconnect with that id is found...
  (void)hub.send_to(a.id(), msg("p2").with_id("p-2"));
  (void)hub.broadcast(msg("after"));
  auto again = connect(hub, as("", {}, {}, std::string("p-2")));
  CHECK(again.result->replay == Replay::found);
  // ...but a direct send replays to nobody (a new connection is a new client).
  CHECK(data_of(*again.log) == Strings{"after"});
}

TEST_CASE("users, pools and channels reach exactly their members") {
  Hub hub({}, t0);
  auto tab1 = connect(hub, as("alice", {"tenant:acme"}));
  auto tab2 = connect(hub, as("alice", {"tenant:acme", "role:admin"}, {"news"}));
  auto bob = connect(hub, as("bob", {"tenant:other"}, {"sport"}));
  auto anon = connect(hub, as("", {}, {"news"}));

  CHECK(hub.send_to_user("alice", msg("u"))->delivered == 2);
  CHECK(hub.send_to_pool("tenant:acme", msg("t"))->delivered == 2);
  CHECK(hub.send(Target::pool("role:admin"), msg("r"))->delivered == 1);
  CHECK(hub.publish("news", msg("n"))->delivered == 2);
  CHECK(hub.publish("nobody", msg("z"))->delivered == 0);
  CHECK(hub.send(Target::pool("news"), msg("not-a-pool"))->delivered == 0);  // pools != channels

  CHECK(data_of(*tab1.log) == Strings{"u", "t"});
  CHECK(data_of(*tab2.log) == Strings{"u", "t", "r", "n"});
  CHECK(data_of(*bob.log).empty());
  CHECK(data_of(*anon.log) == Strings{"n"});
  // Every group send got an id, even the one nobody received (a reconnect may want it).
  CHECK(hub.stats().history == 6);
}

TEST_CASE("a client in several parts of a target receives the send once") {
  Hub hub({}, t0);
  auto both = connect(hub, as("alice", {"tenant:acme"}, {"a", "b"}));
  auto one = connect(hub, as("", {}, {"b"}));
  auto none = connect(hub, as("", {}, {"c"}));
  auto r = hub.send(Target::channels({"a", "b"}), msg("ab"));
  CHECK(r->delivered == 2);
  r = hub.send(Target::user("alice") | Target::pool("tenant:acme") | Target::channel("a") |
                   Target::client(both.id()) | Target::client(one.id()),
               msg("mix"));
  CHECK(r->delivered == 2);
  CHECK(!r->id.empty());
  CHECK(data_of(*both.log) == Strings{"ab", "mix"});
  CHECK(data_of(*one.log) == Strings{"ab", "mix"});
  CHECK(none.log->frames.empty());
  // all | anything is all.
  CHECK(hub.send(Target::all() | Target::channel("a"), msg("all"))->delivered == 3);
  // A union of clients only is direct: no automatic id.
  auto direct = hub.send(Target::client(both.id()) | Target::client(one.id()), msg("d"));
  CHECK(direct->delivered == 2);
  CHECK(direct->id.empty());
}

TEST_CASE("join and leave change what a client receives") {
  Hub hub({}, t0);
  auto a = connect(hub);
  CHECK(hub.join(a.id(), "news"));
  CHECK(hub.join(a.id(), "news"));  // idempotent
  CHECK(hub.stats().channels == 1);
  (void)hub.publish("news", msg("1"));
  CHECK(hub.leave(a.id(), "news"));
  CHECK(hub.leave(a.id(), "news"));  // not in it: nothing to do
  (void)hub.publish("news", msg("2"));
  CHECK(data_of(*a.log) == Strings{"1"});
  CHECK(hub.stats().channels == 0);  // empty channels are forgotten
  CHECK(hub.join(999, "news").error() == ssepp::errc::unknown_client);
  CHECK(hub.leave(999, "news").error() == ssepp::errc::unknown_client);
  CHECK(hub.join(a.id(), "").error() == ssepp::errc::invalid_name);
  CHECK(hub.join(a.id(), std::string(ssepp::max_group_name + 1, 'x')).error() == ssepp::errc::invalid_name);
}

TEST_CASE("leaving one channel keeps the others and the other members") {
  Hub hub({}, t0);
  auto a = connect(hub, as("", {}, {"x", "y", "z"}));
  auto b = connect(hub, as("", {}, {"x", "y"}));
  auto c = connect(hub, as("", {}, {"y"}));
  CHECK(hub.leave(a.id(), "x"));
  CHECK(hub.leave(b.id(), "y"));
  CHECK(hub.client(a.id())->channels.size() == 2);
  CHECK(hub.publish("x", msg("x"))->delivered == 1);  // b
  CHECK(hub.publish("y", msg("y"))->delivered == 2);  // a, c
  CHECK(hub.publish("z", msg("z"))->delivered == 1);  // a
  CHECK(data_of(*a.log) == Strings{"y", "z"});
  CHECK(data_of(*b.log) == Strings{"x"});
  CHECK(data_of(*c.log) == Strings{"y"});
}

TEST_CASE("the authoriser decides joins; a refused join changes nothing and says so") {
  ssepp::BroadcasterOptions opt;
  std::vector<std::pair<ClientId, std::string>> refused;
  opt.hooks.on_join_refused = [&](ClientId id, std::string_view ch) {
    refused.emplace_back(id, std::string(ch));
  };
  Hub hub(opt, t0);
  std::vector<ssepp::ClientInfo> seen;
  hub.set_authorizer([&](const ssepp::ClientInfo& who, std::string_view channel) {
    seen.push_back(who);
    return channel.substr(0, 6) != "admin:" ||
           std::find(who.pools.begin(), who.pools.end(), "role:admin") != who.pools.end();
  });
  auto admin = connect(hub, as("root", {"role:admin"}, {"admin:ops", "news"}));
  auto user = connect(hub, as("joe", {"role:user"}, {"admin:ops", "news"}));
  CHECK(admin.result->refused_channels.empty());
  CHECK(user.result->refused_channels == Strings{"admin:ops"});
  CHECK(hub.client(user.id())->channels == Strings{"news"});
  REQUIRE(!seen.empty());
  CHECK(seen[0].user == "root");
  CHECK(seen[0].pools == Strings{"role:admin"});

  CHECK(hub.join(user.id(), "admin:billing").error() == ssepp::errc::join_refused);
  CHECK(hub.client(user.id())->channels == Strings{"news"});
  CHECK(hub.join(admin.id(), "admin:billing"));
  CHECK(hub.stats().refused_joins == 2);
  REQUIRE(refused.size() == 2);
  CHECK(refused[1] == std::make_pair(user.id(), std::string("admin:billing")));

  hub.set_authorizer(nullptr);  // everyone may join
  CHECK(hub.join(user.id(), "admin:billing"));
}

TEST_CASE("connect sends the preamble and retry hint first, then the replay") {
  ssepp::BroadcasterOptions opt;
  opt.preamble = true;
  opt.retry = 2500ms;
  Hub hub(opt, t0);
  auto a = connect(hub);
  REQUIRE(a.log->frames.size() == 2);
  CHECK(a.log->frames[0].size() > 2048);
  CHECK(a.log->frames[0].rfind(": ", 0) == 0);
  CHECK(a.log->frames[0].substr(a.log->frames[0].size() - 2) == "\n\n");
  CHECK(a.log->frames[1] == "retry: 2500\n\n");
  (void)hub.broadcast(msg("x"));
  auto b = connect(hub, as("", {}, {}, std::string("0")));  // before the oldest kept id
  CHECK(b.result->replay == ssepp::Replay::too_old);
  CHECK(b.log->frames.size() == 2);  // preamble and retry, nothing replayed
  (void)hub.broadcast(msg("y"));
  auto c = connect(hub, as("", {}, {}, std::string("1")));
  REQUIRE(c.log->frames.size() == 3);
  CHECK(c.log->frames[1] == "retry: 2500\n\n");
  CHECK(c.log->frames[2] == "id: 2\ndata: y\n\n");
}

TEST_CASE("replay: the events this client missed, in order, before anything new") {
  ssepp::BroadcasterOptions opt;
  std::vector<std::tuple<ClientId, Replay, std::size_t>> replays;
  opt.hooks.on_replay = [&](ClientId id, Replay r, std::size_t n) { replays.emplace_back(id, r, n); };
  Hub hub(opt, t0);
  auto first = connect(hub, as("alice", {"tenant:acme"}, {"news"}));
  (void)hub.broadcast(msg("1"));                         // id 1
  (void)hub.send_to_user("alice", msg("2"));             // id 2
  (void)hub.send_to_user("bob", msg("3"));               // id 3: not for alice
  (void)hub.publish("news", msg("4"));                   // id 4
  (void)hub.publish("sport", msg("5"));                  // id 5: not joined
  (void)hub.send_to_pool("tenant:acme", msg("6"));       // id 6
  (void)hub.send_to(first.id(), msg("direct"));          // no id, not replayed
  (void)hub.broadcast(msg("7"));                         // id 7
  (void)hub.disconnect(first.id());

  auto back = connect(hub, as("alice", {"tenant:acme"}, {"news"}, std::string("1")));
  CHECK(back.result->replay == Replay::found);
  CHECK(back.result->replayed == 4);
  (void)hub.broadcast(msg("8"));
  CHECK(data_of(*back.log) == Strings{"2", "4", "6", "7", "8"});
  CHECK(ids_of(*back.log) == Strings{"2", "4", "6", "7", "8"});

  // Another identity replays other events from the same point.
  auto bob = connect(hub, as("bob", {}, {"sport"}, std::string("2")));
  CHECK(data_of(*bob.log) == Strings{"3", "5", "7", "8"});

  // Up to date: found, nothing to replay.
  auto current = connect(hub, as("", {}, {}, std::string("8")));
  CHECK(current.result->replay == Replay::found);
  CHECK(current.result->replayed == 0);

  auto s = hub.stats();
  CHECK(s.replays == 3);
  CHECK(s.replayed_frames == 4 + 4);  // back: 2 4 6 7; bob: 3 5 7 8
  CHECK(s.replay_misses == 0);
  REQUIRE(replays.size() == 3);
  CHECK(replays[0] == std::make_tuple(back.id(), Replay::found, std::size_t(4)));
}

TEST_CASE("replay covers initial channels, but not refused ones") {
  Hub hub({}, t0);
  hub.set_authorizer([](const ssepp::ClientInfo&, std::string_view ch) { return ch != "secret"; });
  (void)hub.publish("open", msg("o1"));
  (void)hub.publish("secret", msg("s1"));
  auto c = connect(hub, as("", {}, {"open", "secret"}, std::string("0")));
  CHECK(c.result->replay == Replay::too_old);  // "0" is older than "1"
  (void)hub.publish("secret", msg("s2"));
  auto d = connect(hub, as("", {}, {"open", "secret"}, std::string("1")));
  CHECK(d.result->replay == Replay::found);
  CHECK(d.result->refused_channels == Strings{"secret"});
  CHECK(data_of(*d.log).empty());  // s1 and s2 were for "secret"
  (void)hub.publish("open", msg("o2"));
  CHECK(data_of(*d.log) == Strings{"o2"});
}

TEST_CASE("replay reports unknown and too old ids so the host can send a snapshot") {
  ssepp::BroadcasterOptions opt;
  opt.history_size = 3;
  Hub hub(opt, t0);
  for (int i = 0; i < 5; ++i) (void)hub.broadcast(msg(std::to_string(i)));  // ids 1..5, keeps 3..5
  auto old = connect(hub, as("", {}, {}, std::string("1")));
  CHECK(old.result->replay == Replay::too_old);
  CHECK(old.result->replayed == 0);
  CHECK(old.log->frames.empty());
  auto future = connect(hub, as("", {}, {}, std::string("77")));
  CHECK(future.result->replay == Replay::unknown);
  auto garbage = connect(hub, as("", {}, {}, std::string("abc")));
  CHECK(garbage.result->replay == Replay::unknown);
  auto empty = connect(hub, as("", {}, {}, std::string("")));
  CHECK(empty.result->replay == Replay::none);
  CHECK(hub.stats().replay_misses == 3);
  // Missing the replay does not stop live events.
  (void)hub.broadcast(msg("live"));
  CHECK(data_of(*old.log) == Strings{"live"});
}

TEST_CASE("tick expires history by age; the newest id stays found") {
  ssepp::BroadcasterOptions opt;
  opt.history_max_age = 60s;
  Hub hub(opt, t0);
  (void)hub.broadcast(msg("a"));  // stamped t0
  hub.tick(t0 + 30s);
  (void)hub.broadcast(msg("b"));  // stamped t0 + 30s
  hub.tick(t0 + 59s);
  CHECK(hub.stats().history == 2);
  hub.tick(t0 + 60s);
  CHECK(hub.stats().history == 1);
  auto c = connect(hub, as("", {}, {}, std::string("1")), t0 + 61s);
  CHECK(c.result->replay == Replay::found);
  CHECK(data_of(*c.log) == Strings{"b"});
  hub.tick(t0 + 91s);
  CHECK(hub.stats().history == 0);
  auto d = connect(hub, as("", {}, {}, std::string("2")), t0 + 92s);
  CHECK(d.result->replay == Replay::found);
  CHECK(d.result->replayed == 0);
  auto e = connect(hub, as("", {}, {}, std::string("1")), t0 + 92s);
  CHECK(e.result->replay == Replay::too_old);
}

TEST_CASE("heartbeats go to clients idle for the interval, measured in ticks") {
  ssepp::BroadcasterOptions opt;
  opt.heartbeat = 15s;
  Hub hub(opt, t0);
  auto idle = connect(hub, as("", {}, {"quiet"}));
  auto busy = connect(hub, as("", {}, {"busy"}));
  hub.tick(t0 + 14s);
  CHECK(count_heartbeats(*idle.log) == 0);
  hub.tick(t0 + 15s);  // 15 s without a write: heartbeat
  CHECK(count_heartbeats(*idle.log) == 1);
  CHECK(count_heartbeats(*busy.log) == 1);
  CHECK(idle.log->frames.back() == ":\n\n");

  // busy gets writes every tick and so no heartbeat; idle gets one every 15 s.
  for (int s = 16; s <= 45; ++s) {
    (void)hub.publish("busy", msg("tick"));
    hub.tick(t0 + std::chrono::seconds(s));
  }
  CHECK(count_heartbeats(*busy.log) == 1);
  CHECK(count_heartbeats(*idle.log) == 3);  // at 15, 30, 45
  auto s = hub.stats();
  CHECK(s.heartbeats == 4);
}

TEST_CASE("a write counts as made at the previous tick") {
  ssepp::BroadcasterOptions opt;
  opt.heartbeat = 10s;
  Hub hub(opt, t0);
  auto a = connect(hub);
  hub.tick(t0 + 5s);
  (void)hub.broadcast(msg("x"));  // somewhere in (5 s, 9 s]
  hub.tick(t0 + 9s);
  CHECK(count_heartbeats(*a.log) == 0);
  hub.tick(t0 + 14s);  // 14 - 5 < 10: not yet
  CHECK(count_heartbeats(*a.log) == 0);
  hub.tick(t0 + 15s);  // 15 - 5 >= 10
  CHECK(count_heartbeats(*a.log) == 1);
}

TEST_CASE("a client connected later is measured from its connect time; zero disables") {
  SECTION("from connect") {
    Hub hub({}, t0);
    auto late = connect(hub, {}, t0 + 10s);
    hub.tick(t0 + 20s);
    CHECK(count_heartbeats(*late.log) == 0);
    hub.tick(t0 + 25s);
    CHECK(count_heartbeats(*late.log) == 1);
  }
  SECTION("disabled") {
    ssepp::BroadcasterOptions opt;
    opt.heartbeat = 0ms;
    Hub hub(opt, t0);
    auto a = connect(hub);
    hub.tick(t0 + 1000s);
    CHECK(a.log->frames.empty());
  }
}

TEST_CASE("a failing sink is removed at once, counted and closed; the others lose nothing") {
  ssepp::BroadcasterOptions opt;
  std::vector<std::pair<ClientId, ssepp::DisconnectReason>> gone;
  opt.hooks.on_disconnect = [&](ClientId id, ssepp::DisconnectReason r) { gone.emplace_back(id, r); };
  Hub hub(opt, t0);
  auto a = connect(hub, as("", {}, {"c"}));
  auto bad = connect(hub, as("", {}, {"c"}));
  auto thrower = connect(hub, as("", {}, {"c"}));
  auto b = connect(hub, as("", {}, {"c"}));
  bad.log->fail = true;
  thrower.log->throws = true;
  auto r = hub.publish("c", msg("1"));
  CHECK(r->delivered == 2);
  CHECK_FALSE(hub.client(bad.id()));
  CHECK_FALSE(hub.client(thrower.id()));
  CHECK(bad.log->closes == 1);
  CHECK(thrower.log->closes == 1);
  (void)hub.publish("c", msg("2"));
  (void)hub.broadcast(msg("3"));
  CHECK(data_of(*a.log) == Strings{"1", "2", "3"});
  CHECK(data_of(*b.log) == Strings{"1", "2", "3"});
  auto s = hub.stats();
  CHECK(s.clients == 2);
  CHECK(s.drops == 2);
  CHECK(s.disconnects == 2);
  REQUIRE(gone.size() == 2);
  CHECK(gone[0] == std::make_pair(bad.id(), ssepp::DisconnectReason::sink_failed));
  CHECK(gone[1] == std::make_pair(thrower.id(), ssepp::DisconnectReason::sink_failed));
  CHECK(bad.log->closes == 1);  // closed once
}

TEST_CASE("a heartbeat that fails removes the client too") {
  Hub hub({}, t0);
  auto a = connect(hub);
  a.log->fail = true;
  hub.tick(t0 + 1h);
  CHECK_FALSE(hub.client(a.id()));
  CHECK(hub.stats().drops == 1);
}

TEST_CASE("a sink failing during connect is not registered") {
  ssepp::BroadcasterOptions opt;
  opt.retry = 1s;
  Hub hub(opt, t0);
  Client c;
  c.log->fail = true;
  c.result = hub.connect(c.sink(), as("alice", {"p"}, {"ch"}), t0);
  CHECK_FALSE(c.result);
  CHECK(c.id() == 0);
  CHECK(c.log->closes == 1);
  auto s = hub.stats();
  CHECK(s.clients == 0);
  CHECK(s.pools == 0);
  CHECK(s.channels == 0);
  CHECK(s.drops == 1);
  CHECK(s.connects == 0);
}

TEST_CASE("disconnect removes the client from every registry and closes the sink") {
  ssepp::BroadcasterOptions opt;
  int connects = 0;
  std::vector<ssepp::DisconnectReason> reasons;
  opt.hooks.on_connect = [&](const ssepp::ClientInfo& info) {
    ++connects;
    CHECK(info.user == "alice");
  };
  opt.hooks.on_disconnect = [&](ClientId, ssepp::DisconnectReason r) { reasons.push_back(r); };
  Hub hub(opt, t0);
  auto a = connect(hub, as("alice", {"tenant:acme"}, {"news"}));
  CHECK(connects == 1);
  CHECK(hub.disconnect(a.id()));
  CHECK(a.log->closes == 1);
  CHECK_FALSE(hub.disconnect(a.id()));
  CHECK(a.log->closes == 1);
  CHECK(hub.broadcast(msg("x"))->delivered == 0);
  CHECK(hub.send_to_user("alice", msg("x"))->delivered == 0);
  CHECK(a.log->frames.empty());
  auto s = hub.stats();
  CHECK(s.clients == 0);
  CHECK(s.pools == 0);
  CHECK(s.channels == 0);
  CHECK(s.disconnects == 1);
  CHECK(s.drops == 0);
  CHECK(reasons == std::vector<ssepp::DisconnectReason>{ssepp::DisconnectReason::requested});
}

TEST_CASE("group membership stays right through many connects and disconnects") {
  Hub hub({}, t0);
  std::vector<Client> clients;
  for (int i = 0; i < 40; ++i)
    clients.push_back(connect(hub, as("u" + std::to_string(i % 5), {"t" + std::to_string(i % 3)},
                                      {"c" + std::to_string(i % 4)})));
  for (std::size_t i = 0; i < clients.size(); i += 3) (void)hub.disconnect(clients[i].id());
  for (std::size_t i = 1; i < clients.size(); i += 3) CHECK(hub.leave(clients[i].id(), "c" + std::to_string(i % 4)));
  for (int u = 0; u < 5; ++u) (void)hub.send_to_user("u" + std::to_string(u), msg("u"));
  for (int t = 0; t < 3; ++t) (void)hub.send_to_pool("t" + std::to_string(t), msg("t"));
  for (int c = 0; c < 4; ++c) (void)hub.publish("c" + std::to_string(c), msg("c"));
  for (std::size_t i = 0; i < clients.size(); ++i) {
    Strings want;
    if (i % 3 != 0) {
      want = {"u", "t"};
      if (i % 3 != 1) want.push_back("c");
    }
    CHECK(data_of(*clients[i].log) == want);
  }
}

TEST_CASE("a sink may disconnect itself from inside send") {
  Hub hub({}, t0);
  auto a = connect(hub);
  auto b = connect(hub);
  a.log->on_send = [&](const Frame&) {
    CHECK(hub.disconnect(a.id()));
    CHECK(a.log->closes == 0);  // not while its own delivery is running
  };
  auto r = hub.broadcast(msg("x"));
  CHECK(r->delivered == 2);
  CHECK(a.log->closes == 1);  // right after it
  CHECK_FALSE(hub.client(a.id()));
  (void)hub.broadcast(msg("y"));
  CHECK(data_of(*a.log) == Strings{"x"});
  CHECK(data_of(*b.log) == Strings{"x", "y"});
}

TEST_CASE("a sink may disconnect another client that is still to be delivered to") {
  Hub hub({}, t0);
  auto a = connect(hub);
  auto b = connect(hub);
  auto c = connect(hub);
  bool done = false;
  auto kill_others = [&](const Frame&) {
    if (done) return;
    done = true;
    for (auto* x : {&a, &b, &c}) (void)hub.disconnect(x->id());
  };
  a.log->on_send = b.log->on_send = c.log->on_send = kill_others;
  (void)hub.broadcast(msg("x"));
  for (auto* x : {&a, &b, &c}) {
    CHECK(x->log->closes == 1);
    CHECK(x->log->frames.size() <= 1);
  }
  CHECK(hub.stats().clients == 0);
}

TEST_CASE("a sink may send from inside send: queued, delivered right after, in id order") {
  Hub hub({}, t0);
  auto a = connect(hub);
  auto b = connect(hub);
  ssepp::SendResult nested;
  int depth = 0;
  a.log->on_send = [&](const Frame& f) {
    if (f.view().find("data: first") == std::string_view::npos) return;
    ++depth;
    nested = hub.broadcast(msg("echo"));
    (void)hub.send_to(b.id(), msg("direct"));
  };
  auto r = hub.broadcast(msg("first"));
  CHECK(r->delivered == 2);
  CHECK(depth == 1);
  CHECK(nested->id == "2");
  CHECK(nested->delivered == 0);  // queued: counted when delivered
  CHECK(data_of(*a.log) == Strings{"first", "echo"});
  CHECK(data_of(*b.log) == Strings{"first", "echo", "direct"});
  CHECK(hub.stats().sends == 3);
  // ...and in the history in the same order.
  auto late = connect(hub, as("", {}, {}, std::string("1")));
  CHECK(data_of(*late.log) == Strings{"echo"});
}

TEST_CASE("a sink may join, leave, query and tick from inside send") {
  Hub hub({}, t0);
  auto a = connect(hub);
  a.log->on_send = [&](const Frame& f) {
    if (f.view().find("data: go") == std::string_view::npos) return;
    CHECK(hub.join(a.id(), "room"));
    CHECK(hub.client(a.id())->channels == Strings{"room"});
    CHECK(hub.stats().clients == 1);
    hub.tick(t0 + 1h);  // queued: heartbeat after this delivery
    (void)hub.publish("room", msg("in room"));
  };
  (void)hub.broadcast(msg("go"));
  CHECK(data_of(*a.log) == Strings{"go", "", "in room"});
  CHECK(a.log->frames[1] == ":\n\n");
}

TEST_CASE("a sink may connect a client with a replay from inside send, without duplicates") {
  Hub hub({}, t0);
  auto a = connect(hub);
  Client late;
  a.log->on_send = [&](const Frame& f) {
    if (f.view().find("data: 2") == std::string_view::npos) return;
    (void)hub.broadcast(msg("3"));  // queued, not yet in the history
    late = connect(hub, as("", {}, {}, std::string("1")));
  };
  (void)hub.broadcast(msg("1"));
  (void)hub.broadcast(msg("2"));
  (void)hub.broadcast(msg("4"));
  CHECK(late.result->replay == Replay::found);
  CHECK(data_of(*a.log) == Strings{"1", "2", "3", "4"});
  CHECK(data_of(*late.log) == Strings{"2", "3", "4"});  // each once, in order
}

TEST_CASE("a closing sink may call back into the broadcaster") {
  Hub hub({}, t0);
  auto a = connect(hub);
  auto b = connect(hub);
  auto c = connect(hub);
  a.log->on_close = [&] { (void)hub.broadcast(msg("bye")); };
  b.log->on_close = [&] { (void)hub.disconnect(c.id()); };
  (void)hub.disconnect(a.id());
  CHECK(a.log->closes == 1);
  CHECK(data_of(*b.log) == Strings{"bye"});
  CHECK(data_of(*c.log) == Strings{"bye"});
  (void)hub.disconnect(b.id());
  CHECK(b.log->closes == 1);
  CHECK(c.log->closes == 1);
  CHECK(hub.stats().clients == 0);
}

TEST_CASE("disconnect from another thread never waits for a running delivery") {
  Hub hub({}, t0);
  auto slow = connect(hub);
  auto victim = connect(hub);
  std::mutex m;
  std::condition_variable cv;
  bool entered = false, go = false;
  slow.log->on_send = [&](const Frame&) {
    std::unique_lock<std::mutex> lock(m);
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return go; });
  };
  std::thread sender([&] { (void)hub.broadcast(msg("x")); });
  {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return entered; });
  }
  // The delivery is stuck in slow's sink (holding the delivery lock): disconnect still returns,
  // and the victim's sink is not closed under the delivery's feet.
  CHECK(hub.disconnect(victim.id()));
  CHECK_FALSE(hub.client(victim.id()));
  CHECK(hub.stats().clients == 1);
  {
    std::lock_guard<std::mutex> lock(m);
    go = true;
  }
  cv.notify_all();
  sender.join();
  // Closed once the delivery ended, and never sent to after being closed.
  CHECK(victim.log->closes == 1);
  CHECK(victim.log->frames.size() <= 1);
  (void)hub.broadcast(msg("y"));
  CHECK(victim.log->frames.size() <= 1);
}

TEST_CASE("send_encoded delivers a bus frame as is and records its id") {
  ssepp::BroadcasterOptions opt;
  // Bus-style ids of one length, compared as text (a Redis bus uses stream_id_order, redis.hpp).
  opt.id_order = [](std::string_view a, std::string_view b) noexcept -> std::optional<int> {
    if (a.size() != b.size()) return std::nullopt;
    int c = a.compare(b);
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  };
  opt.history_size = 2;
  Hub hub(opt, t0);
  auto a = connect(hub, as("", {}, {"prices"}));
  auto frame = Frame::from_event(msg("p1").with_id("1700000000000-0"));
  auto r = hub.send_encoded(Target::channel("prices"), frame, std::string("1700000000000-0"));
  CHECK(r->delivered == 1);
  CHECK(r->id == "1700000000000-0");
  (void)hub.send_encoded(Target::channel("prices"), Frame::from_event(msg("p2").with_id("1700000000001-0")),
                   std::string("1700000000001-0"));
  (void)hub.send_encoded(Target::channel("prices"), Frame::from_event(msg("p3").with_id("1700000000002-0")),
                   std::string("1700000000002-0"));
  CHECK(a.log->bytes[0] == frame.data());
  CHECK(ids_of(*a.log) == Strings{"1700000000000-0", "1700000000001-0", "1700000000002-0"});
  auto back = connect(hub, as("", {}, {"prices"}, std::string("1700000000001-0")));
  CHECK(back.result->replay == Replay::found);
  CHECK(data_of(*back.log) == Strings{"p3"});
  auto old = connect(hub, as("", {}, {"prices"}, std::string("1600000000000-0")));
  CHECK(old.result->replay == Replay::too_old);
  auto evicted = connect(hub, as("", {}, {"prices"}, std::string("1700000000000-0")));
  CHECK(evicted.result->replay == Replay::found);  // the newest evicted: nothing lost after it
  CHECK(data_of(*evicted.log) == Strings{"p2", "p3"});
  // Without an id: delivered, not recorded.
  (void)hub.send_encoded(Target::all(), Frame::comment("hello"));
  CHECK(hub.stats().history == 2);
  CHECK(a.log->frames.back() == ": hello\n\n");
}

TEST_CASE("first_client_id and deliver_to, for a multi-node bus") {
  ssepp::BroadcasterOptions opt;
  opt.first_client_id = 5000000000;
  Hub hub(opt, t0);
  auto a = connect(hub);
  auto b = connect(hub);
  CHECK(a.id() == 5000000000);
  CHECK(b.id() == 5000000001);
  CHECK(hub.deliver_to(a.id(), Frame::from_event(msg("replayed").with_id("1700000000000-0"))));
  CHECK(a.log->frames == Strings{"id: 1700000000000-0\ndata: replayed\n\n"});
  CHECK(b.log->frames.empty());
  CHECK(hub.stats().history == 0);
  CHECK_FALSE(hub.deliver_to(42, Frame("data: x\n\n")));
  a.log->fail = true;
  CHECK_FALSE(hub.deliver_to(a.id(), Frame("data: x\n\n")));
  CHECK_FALSE(hub.client(a.id()));
}

TEST_CASE("destroying the broadcaster closes every sink") {
  auto log = std::make_shared<Log>();
  {
    Hub hub({}, t0);
    (void)hub.connect(TestSink{log}, as("x", {"p"}, {"c"}), t0);
  }
  CHECK(log->closes == 1);
}

TEST_CASE("Broadcaster<Mailbox>: an overflowing client is dropped and replays on reconnect") {
  Hub::Clock::time_point now = t0;
  ssepp::Broadcaster<ssepp::Mailbox> hub({}, now);
  ssepp::Mailbox fast, slow(ssepp::MailboxOptions{2, 0, ssepp::Overflow::close});
  auto f = hub.connect(fast, {}, now);
  auto s = hub.connect(slow, {}, now);
  for (int i = 1; i <= 3; ++i) (void)hub.broadcast(msg(std::to_string(i)));
  CHECK(fast.stats().queued_frames == 3);
  CHECK(slow.closed());
  CHECK_FALSE(hub.client(s->id));
  CHECK(hub.client(f->id));
  // The slow client wrote what it had ("1", "2"), reconnects from id 2 and gets "3".
  std::vector<Frame> got;
  slow.take_all(got);
  REQUIRE(got.size() == 2);
  ssepp::Mailbox again;
  ConnectOptions o;
  o.last_event_id = "2";
  auto r = hub.connect(again, o, now);
  CHECK(r->replay == Replay::found);
  got.clear();
  again.take_all(got);
  REQUIRE(got.size() == 1);
  CHECK(got[0].view() == "id: 3\ndata: 3\n\n");
}

TEST_CASE("Broadcaster<Mailbox>: a client cut by its bound resumes through the replay room") {
  Hub::Clock::time_point now = t0;
  ssepp::Broadcaster<ssepp::Mailbox> hub({}, now);
  const ssepp::MailboxOptions bounded{4, 0, ssepp::Overflow::close};
  ssepp::Mailbox slow(bounded);
  REQUIRE(hub.connect(slow, {}, now));
  std::vector<Frame> got;
  (void)hub.broadcast(msg("1"));
  slow.take_all(got);  // the writer took "1"; then the client stops reading
  for (int i = 2; i <= 6; ++i) (void)hub.broadcast(msg(std::to_string(i)));  // 2..5 queued, 6 overflows
  REQUIRE(slow.stats().overflowed);
  // The client got "1" and missed more than its bound holds.
  ConnectOptions o;
  o.last_event_id = "1";
  SECTION("without room the replay cannot fit: the client could never resume") {
    ssepp::Mailbox again(bounded);
    CHECK_FALSE(hub.connect(again, o, now));
  }
  SECTION("with room it replays everything it missed, then the live bound applies") {
    ssepp::MailboxOptions roomy = bounded;
    roomy.replay_frames = 1024;
    ssepp::Mailbox again(roomy);
    auto r = hub.connect(again, o, now);
    REQUIRE(r);
    CHECK(r->replayed == 5);
    got.clear();
    again.take_all(got);
    REQUIRE(got.size() == 5);
    CHECK(got.front().view() == "id: 2\ndata: 2\n\n");
    CHECK(got.back().view() == "id: 6\ndata: 6\n\n");
    for (int i = 7; i <= 10; ++i) (void)hub.broadcast(msg(std::to_string(i)));
    CHECK_FALSE(again.closed());
    (void)hub.broadcast(msg("11"));
    CHECK(again.stats().overflowed);
  }
}

namespace {
/// A sink that takes frames by value and keeps them (as a queue does), or refuses.
struct KeepingSink {
  std::shared_ptr<std::vector<Frame>> kept;
  bool refuse = false;
  bool send(Frame f) {
    if (refuse) return false;
    kept->push_back(std::move(f));
    return true;
  }
};
}  // namespace

TEST_CASE("a send's references are counted in bulk and add up whatever the sinks do") {
  const Frame probe = Frame::from_event(msg("x"));
  SECTION("sinks that copy, refuse or throw: only the copies stay") {
    Hub hub({}, t0);
    std::vector<Frame> copies;
    Client copier, failing, throwing;
    copier.log->on_send = [&](const Frame& f) { copies.push_back(f); };
    failing.log->fail = true;
    throwing.log->throws = true;
    for (Client* c : {&copier, &failing, &throwing}) c->result = hub.connect(c->sink(), {}, t0);
    CHECK(hub.send_encoded(Target::all(), probe)->delivered == 1);
    CHECK(probe.use_count() == 2);  // the caller's and the copy
    copies.clear();
    CHECK(probe.use_count() == 1);
  }
  SECTION("sinks that keep the reference they are given, and one that refuses") {
    ssepp::Broadcaster<KeepingSink> hub({}, t0);
    auto kept = std::make_shared<std::vector<Frame>>();
    for (int i = 0; i < 40; ++i) (void)hub.connect(KeepingSink{kept, i % 7 == 3}, {}, t0);
    CHECK(hub.send_encoded(Target::all(), probe)->delivered == 34);
    CHECK(kept->size() == 34);
    CHECK(probe.use_count() == 35);
    kept->clear();
    CHECK(probe.use_count() == 1);
  }
  SECTION("mailboxes, one of them full") {
    ssepp::Broadcaster<ssepp::Mailbox> hub({}, t0);
    std::vector<ssepp::Mailbox> boxes(30);
    boxes[5] = ssepp::Mailbox(ssepp::MailboxOptions{1, 0, ssepp::Overflow::close});
    boxes[5].send(Frame("full"));
    for (auto& b : boxes) (void)hub.connect(b, {}, t0);
    CHECK(hub.send_encoded(Target::all(), probe)->delivered == 29);
    CHECK(probe.use_count() == 30);
    std::vector<Frame> out;
    for (auto& b : boxes) b.take_all(out);
    CHECK(out.size() == 30);  // 29 of the probe and the frame that filled boxes[5]
    out.clear();
    CHECK(probe.use_count() == 1);
  }
}

TEST_CASE("Broadcaster<Mailbox>: every mailbox of a large fan-out gets every event in order") {
  ssepp::Broadcaster<ssepp::Mailbox> hub({}, t0);
  std::vector<ssepp::Mailbox> boxes(257);  // more than the delivery loop's prefetch distances
  for (auto& b : boxes) (void)hub.connect(b, {}, t0);
  for (int i = 1; i <= 20; ++i) CHECK(hub.broadcast(msg(std::to_string(i)))->delivered == boxes.size());
  std::vector<Frame> out;
  for (auto& b : boxes) {
    out.clear();
    b.take_all(out);
    REQUIRE(out.size() == 20);
    for (int i = 1; i <= 20; ++i)
      CHECK(out[static_cast<std::size_t>(i - 1)].view() ==
            "id: " + std::to_string(i) + "\ndata: " + std::to_string(i) + "\n\n");
  }
}

TEST_CASE("disconnect(id) reports an unknown client") {
  Hub hub({}, t0);
  auto a = connect(hub);
  CHECK(hub.disconnect(a.id()));
  auto again = hub.disconnect(a.id());
  CHECK_FALSE(again);
  CHECK(again.error() == ssepp::errc::unknown_client);
  CHECK(hub.disconnect(424242).error() == ssepp::errc::unknown_client);
  CHECK(a.log->closes == 1);
}

TEST_CASE("disconnect(target) logs a user out everywhere and says how many") {
  ssepp::BroadcasterOptions opt;
  std::vector<std::pair<ClientId, ssepp::DisconnectReason>> gone;
  opt.hooks.on_disconnect = [&](ClientId id, ssepp::DisconnectReason r) { gone.emplace_back(id, r); };
  Hub hub(opt, t0);
  auto tab1 = connect(hub, as("alice"));
  auto tab2 = connect(hub, as("alice", {"tenant:a"}, {"x"}));
  auto tab3 = connect(hub, as("alice", {}, {"y"}));
  auto bob = connect(hub, as("bob", {"tenant:a"}));
  auto anon = connect(hub, as("", {}, {"x"}));
  auto other = connect(hub, as("carol"));

  CHECK(hub.disconnect(Target::user("alice")) == 3);
  for (auto* c : {&tab1, &tab2, &tab3}) {
    CHECK(c->log->closes == 1);
    CHECK_FALSE(hub.client(c->id()));
  }
  CHECK(bob.log->closes == 0);
  CHECK(hub.disconnect(Target::user("alice")) == 0);
  CHECK(hub.send_to_user("alice", msg("x"))->delivered == 0);
  CHECK(hub.stats().channels == 1);  // "y" is gone with tab3, "x" keeps anon

  // A union removes each client once.
  CHECK(hub.disconnect(Target::channel("x") | Target::pool("tenant:a") | Target::client(bob.id()) |
                       Target::client(999)) == 2);
  CHECK(bob.log->closes == 1);
  CHECK(anon.log->closes == 1);
  CHECK(hub.disconnect(Target()) == 0);
  CHECK(hub.disconnect(Target::all()) == 1);
  CHECK(other.log->closes == 1);

  auto s = hub.stats();
  CHECK(s.clients == 0);
  CHECK(s.pools == 0);
  CHECK(s.channels == 0);
  CHECK(s.disconnects == 6);
  REQUIRE(gone.size() == 6);
  for (auto& g : gone) CHECK(g.second == ssepp::DisconnectReason::requested);
  CHECK(gone[5].first == other.id());
}

TEST_CASE("disconnect(target) from inside a sink closes the others after the delivery") {
  Hub hub({}, t0);
  auto a = connect(hub);
  auto b = connect(hub);
  auto c = connect(hub);
  std::size_t removed = 0;
  a.log->on_send = [&](const Frame&) {
    if (removed != 0) return;
    removed = hub.disconnect(Target::all());
    CHECK(a.log->closes == 0);  // not under the running delivery
  };
  (void)hub.broadcast(msg("x"));
  CHECK(removed == 3);
  for (auto* x : {&a, &b, &c}) {
    CHECK(x->log->closes == 1);
    CHECK(x->log->frames.size() <= 1);
  }
  CHECK(hub.stats().clients == 0);
}

TEST_CASE("close_all sends the last event, closes everyone, then refuses clients and sends") {
  ssepp::BroadcasterOptions opt;
  std::vector<std::pair<ClientId, ssepp::DisconnectReason>> gone;
  opt.hooks.on_disconnect = [&](ClientId id, ssepp::DisconnectReason r) { gone.emplace_back(id, r); };
  Hub hub(opt, t0);
  auto a = connect(hub);
  auto b = connect(hub, as("alice", {"p"}));
  auto c = connect(hub, as("", {}, {"room"}));
  (void)hub.publish("room", msg("before"));
  CHECK_FALSE(hub.closed());

  auto r = hub.close_all(Event{}.with_type("shutdown").with_data("bye"));
  REQUIRE(r);
  CHECK(*r == 3);
  CHECK(hub.closed());
  for (auto* x : {&a, &b, &c}) {
    CHECK(x->log->frames.back() == "event: shutdown\nid: 2\ndata: bye\n\n");
    CHECK(x->log->closes == 1);
  }
  CHECK(data_of(*c.log) == Strings{"before", "bye"});
  CHECK(hub.last_event_id() == "2");  // the last event is in the history like any broadcast
  auto s = hub.stats();
  CHECK(s.clients == 0);
  CHECK(s.pools == 0);
  CHECK(s.channels == 0);
  CHECK(s.disconnects == 3);
  REQUIRE(gone.size() == 3);
  for (auto& g : gone) CHECK(g.second == ssepp::DisconnectReason::shutdown);

  auto late = connect(hub, as("bob"));
  CHECK(late.result.error() == ssepp::errc::closed);
  CHECK(late.log->closes == 1);
  CHECK(late.log->frames.empty());
  auto late_replay = connect(hub, as("bob", {}, {}, std::string("1")));
  CHECK(late_replay.result.error() == ssepp::errc::closed);
  CHECK(late_replay.log->closes == 1);
  CHECK(hub.broadcast(msg("x")).error() == ssepp::errc::closed);
  CHECK(hub.send_encoded(Target::all(), Frame("data: x\n\n")).error() == ssepp::errc::closed);
  CHECK(hub.deliver_to(a.id(), Frame("data: x\n\n")).error() == ssepp::errc::closed);
  CHECK(hub.join(a.id(), "room").error() == ssepp::errc::unknown_client);
  hub.tick(t0 + 1h);
  auto again = hub.close_all(msg("twice"));
  REQUIRE(again);
  CHECK(*again == 0);
  CHECK(a.log->frames.back() == "event: shutdown\nid: 2\ndata: bye\n\n");
  CHECK(hub.stats().connects == 3);
}

TEST_CASE("close_all with no event; an invalid last event changes nothing") {
  Hub hub({}, t0);
  auto a = connect(hub);
  auto b = connect(hub);
  auto bad = hub.close_all(Event{}.with_type("a\nb").with_data("x"));
  CHECK(bad.error() == ssepp::errc::invalid_event_type);
  CHECK_FALSE(hub.closed());
  CHECK(hub.stats().clients == 2);
  CHECK(a.log->closes == 0);
  auto r = hub.close_all();
  REQUIRE(r);
  CHECK(*r == 2);
  CHECK(a.log->frames.empty());
  CHECK(b.log->frames.empty());
  CHECK(a.log->closes == 1);
  CHECK(b.log->closes == 1);
  CHECK(hub.last_event_id().empty());
}

TEST_CASE("close_all from inside a sink runs right after the delivery; closing sinks may call in") {
  Hub hub({}, t0);
  auto a = connect(hub);
  auto b = connect(hub);
  Client refused;
  std::optional<ssepp::Result<std::size_t>> inner;
  std::vector<std::error_code> from_close;
  a.log->on_send = [&](const Frame& f) {
    if (f.view().find("data: go") == std::string_view::npos) return;
    (void)hub.broadcast(msg("queued before"));
    inner = hub.close_all(msg("bye"));
    CHECK(hub.closed());  // at once: new clients are refused from now on
    refused = connect(hub);
    CHECK(a.log->closes == 0);
    CHECK(hub.broadcast(msg("after")).error() == ssepp::errc::closed);
  };
  a.log->on_close = [&] {
    from_close.push_back(hub.broadcast(msg("from close")).error());
    from_close.push_back(hub.disconnect(b.id()).error());
  };
  auto r = hub.broadcast(msg("go"));
  REQUIRE(r);
  CHECK(r->delivered == 2);
  REQUIRE(inner);
  REQUIRE(*inner);
  CHECK(**inner == 0);  // queued
  CHECK(refused.result.error() == ssepp::errc::closed);
  CHECK(refused.log->closes == 1);
  CHECK(data_of(*a.log) == Strings{"go", "queued before", "bye"});
  CHECK(data_of(*b.log) == Strings{"go", "queued before", "bye"});
  CHECK(a.log->closes == 1);
  CHECK(b.log->closes == 1);
  CHECK(from_close ==
        std::vector<std::error_code>{ssepp::errc::closed, ssepp::errc::unknown_client});
  CHECK(hub.stats().clients == 0);
}

TEST_CASE("send_encoded with `except` leaves out the clients it matches; has_members; size") {
  Hub hub({}, t0);
  auto in_a = connect(hub, as("ann", {"a"}, {}));
  auto in_b = connect(hub, as("", {"b"}, {"x"}));
  auto in_both = connect(hub, as("", {"a", "b"}, {}));
  // A bus's second copy of an event for pools a|b: clients of pool a got the first copy.
  auto r = hub.send_encoded(Target::pools({"a", "b"}), Frame::from_event(msg("second")),
                            std::nullopt, Target::pool("a"));
  REQUIRE(r);
  CHECK(r->delivered == 1);
  CHECK(data_of(*in_a.log).empty());
  CHECK(data_of(*in_b.log) == Strings{"second"});
  CHECK(data_of(*in_both.log).empty());
  // Without `except`, a union reaches each client once.
  (void)hub.send_encoded(Target::pools({"a", "b"}) | Target::user("ann"),
                         Frame::from_event(msg("all")));
  CHECK(data_of(*in_a.log) == Strings{"all"});
  CHECK(data_of(*in_both.log) == Strings{"all"});
  // Everyone except: nobody.
  CHECK(hub.send_encoded(Target::all(), Frame::from_event(msg("none")), std::nullopt, Target::all())
            ->delivered == 0);
  using Sel = Target::Selector;
  CHECK(hub.has_members(Sel{Target::Kind::pool, 0, "a"}));
  CHECK(hub.has_members(Sel{Target::Kind::channel, 0, "x"}));
  CHECK_FALSE(hub.has_members(Sel{Target::Kind::channel, 0, "a"}));  // namespaces apart
  CHECK(hub.has_members(Sel{Target::Kind::user, 0, "ann"}));
  CHECK(hub.has_members(Sel{Target::Kind::client, in_b.id(), {}}));
  CHECK(hub.size() == 3);
  REQUIRE(hub.leave(in_b.id(), "x"));
  CHECK_FALSE(hub.has_members(Sel{Target::Kind::channel, 0, "x"}));
  REQUIRE(hub.disconnect(in_b.id()));
  CHECK_FALSE(hub.has_members(Sel{Target::Kind::client, in_b.id(), {}}));
  CHECK(hub.size() == 2);
}
