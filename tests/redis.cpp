// The Redis bus against a real redis-server on a free loopback port: two nodes behave as one,
// clients resume on any node, Redis restarts lose and duplicate nothing, Pub/Sub interop.
#include <ssepp/redis.hpp>

#include <ssepp/parser.hpp>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/redis_server.hpp"

using namespace std::chrono_literals;
using ssepp::ConnectOptions;
using ssepp::Event;
using ssepp::Replay;
using ssepp::Target;

namespace {

// What one client received, parsed back into events; filled from the bus's reader thread.
struct Inbox {
  std::mutex m;
  std::condition_variable cv;
  ssepp::Parser parser;
  std::vector<std::string> events;  // "type|data|id"

  void add(const ssepp::Frame& f) {
    std::lock_guard<std::mutex> lock(m);
    (void)parser.feed(f.view(), [&](const ssepp::EventView& ev) {
      events.push_back(std::string(ev.type) + "|" + std::string(ev.data) + "|" +
                       std::string(ev.id));
    });
    cv.notify_all();
  }
  /// Waits until at least n events arrived (or 5 s); returns a copy.
  std::vector<std::string> wait_for(std::size_t n) {
    std::unique_lock<std::mutex> lock(m);
    cv.wait_for(lock, 5s, [&] { return events.size() >= n; });
    return events;
  }
  std::vector<std::string> now() {
    std::lock_guard<std::mutex> lock(m);
    return events;
  }
};

struct InboxSink {
  std::shared_ptr<Inbox> inbox;
  bool send(const ssepp::Frame& f) {
    inbox->add(f);
    return true;
  }
};

using Hub = ssepp::Broadcaster<InboxSink>;
using Bus = ssepp::RedisStreamBus<InboxSink>;

ssepp::BroadcasterOptions node_options(std::size_t history = 1024) {
  ssepp::BroadcasterOptions o;
  o.id_order = ssepp::stream_id_order;
  o.history_size = history;
  o.heartbeat = 0ms;
  o.first_client_id = ssepp::cluster_client_id_base();
  return o;
}

ssepp::RedisOptions redis_at(int port) {
  ssepp::RedisOptions o;
  o.port = port;
  o.block = 200ms;
  o.retry_min = 20ms;
  o.retry_max = 200ms;
  o.timeout = 500ms;
  return o;
}

// A node: a broadcaster and its bus.
struct Node {
  Hub hub;
  Bus bus;
  Node(int port, std::size_t history = 1024) : hub(node_options(history)), bus(hub, redis_at(port)) {
    bus.start();
  }
  // Waits until this node has delivered the entry `id` (and everything before it).
  void wait_delivered(const std::string& id) {
    for (int i = 0; i < 250; ++i) {
      auto last = bus.last_id();
      auto cmp = ssepp::stream_id_order(last, id);
      if (cmp && *cmp >= 0) return;
      std::this_thread::sleep_for(10ms);
    }
    FAIL("node did not deliver " << id);
  }
  // Waits until the reader has connected and knows where the stream ends.
  void wait_ready() {
    for (int i = 0; i < 250 && (!bus.stats().connected || bus.last_id().empty()); ++i)
      std::this_thread::sleep_for(20ms);
    REQUIRE(bus.stats().connected);
  }
  std::pair<std::shared_ptr<Inbox>, ssepp::ConnectResult> connect(ConnectOptions o = {}) {
    auto inbox = std::make_shared<Inbox>();
    auto r = bus.connect(InboxSink{inbox}, std::move(o));
    return {inbox, r};
  }
};

ConnectOptions as(std::string user, std::vector<std::string> pools = {},
                  std::vector<std::string> channels = {}) {
  ConnectOptions o;
  o.user = std::move(user);
  o.pools = std::move(pools);
  o.channels = std::move(channels);
  return o;
}

Event ev(std::string data, std::string type = {}) {
  return Event{}.with_data(std::move(data)).with_type(std::move(type));
}

// A plain hiredis connection for the test's own commands (PUBLISH, ...).
struct Cli {
  ssepp::detail::RedisConnection conn;
  explicit Cli(int port) {
    std::string error;
    REQUIRE(conn.connect(redis_at(port), error));
  }
  void publish(const std::string& channel, const std::string& msg) {
    std::string error;
    REQUIRE(conn.command({"PUBLISH", channel, msg}, error));
  }
};

}  // namespace

TEST_CASE("JSON reader: members, escapes, raw non-string values, errors") {
  std::vector<ssepp::detail::JsonMember> m;
  std::string error;
  REQUIRE(ssepp::detail::JsonReader(R"( {"a":"x\n\"y\" \u00e9\ud83d\ude00","b":{"c":[1,2.5e3,null]},"n":-0.5,"t":true,"z":null} )")
              .object(m, error));
  REQUIRE(m.size() == 5);
  CHECK(m[0].key == "a");
  CHECK(m[0].is_string);
  CHECK(m[0].value == "x\n\"y\" \xC3\xA9\xF0\x9F\x98\x80");
  CHECK(m[1].value == R"({"c":[1,2.5e3,null]})");
  CHECK_FALSE(m[1].is_string);
  CHECK(m[2].value == "-0.5");
  CHECK(m[3].value == "true");
  CHECK(m[4].is_null);
  for (const char* bad : {"", "[]", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{\"a\":01}",
                          "{\"a\":\"\\x\"}", "{\"a\":\"\\ud800\"}", "{\"a\":1} x", "{a:1}",
                          "{\"a\":\"tab\there\"}", "{\"a\":tru}"}) {
    INFO(bad);
    CHECK_FALSE(ssepp::detail::JsonReader(bad).object(m, error));
    CHECK_FALSE(error.empty());
  }
  std::string deep = "{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}";
  CHECK_FALSE(ssepp::detail::JsonReader(deep).object(m, error));
}

TEST_CASE("Pub/Sub messages: every target kind, data of any JSON type, and rejections") {
  Target t;
  Event e;
  std::string error;
  REQUIRE(ssepp::parse_pubsub_message(R"({"target":{"channel":"room"},"event":"chat","data":"hi","id":"9"})", t, e, error));
  CHECK(t == Target::channel("room"));
  CHECK(e.type == "chat");
  CHECK(e.data == "hi");
  CHECK(e.id == std::optional<std::string>("9"));
  REQUIRE(ssepp::parse_pubsub_message(R"({"target":{"user":"alice"},"data":{"n":1}})", t, e, error));
  CHECK(t == Target::user("alice"));
  CHECK(e.data == R"({"n":1})");
  REQUIRE(ssepp::parse_pubsub_message(R"({"target":{"pool":"tenant:acme"},"data":"x"})", t, e, error));
  CHECK(t == Target::pool("tenant:acme"));
  REQUIRE(ssepp::parse_pubsub_message(R"({"target":{"client":"42"},"data":"x","retry":1500})", t, e, error));
  CHECK(t == Target::client(42));
  CHECK(e.retry == std::optional<std::chrono::milliseconds>(1500ms));
  REQUIRE(ssepp::parse_pubsub_message(R"({"data":"everyone"})", t, e, error));
  CHECK(t.is_all());
  REQUIRE(ssepp::parse_pubsub_message(R"({"target":{"all":true},"data":"x"})", t, e, error));
  CHECK(t.is_all());

  for (const char* bad : {"not json", R"({"target":"room","data":"x"})",
                          R"({"target":{"planet":"x"},"data":"x"})",
                          R"({"target":{"channel":"a","user":"b"},"data":"x"})",
                          R"({"target":{"channel":""},"data":"x"})",
                          R"({"event":"a\nb","data":"x"})", R"({"id":"1\n2","data":"x"})",
                          R"({"data":"x","extra":1})", R"({"retry":-5,"data":"x"})",
                          R"({"target":{"client":"12a"},"data":"x"})"}) {
    INFO(bad);
    error.clear();
    CHECK_FALSE(ssepp::parse_pubsub_message(bad, t, e, error));
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("stream entry targets round-trip, names with any bytes") {
  Target t = Target::channel("a:b") | Target::pool(std::string("p\0q\n", 4)) | Target::client(77);
  auto back = ssepp::detail::decode_target(ssepp::detail::encode_target(t));
  REQUIRE(back);
  CHECK(*back == t);
  CHECK(ssepp::detail::decode_target("*")->is_all());
  for (const char* bad : {"", "x3:abc", "c9:ab", "c:ab", "k2:1x"}) CHECK_FALSE(ssepp::detail::decode_target(bad));
}

TEST_CASE("two nodes on one Redis: a send on A reaches matching clients on A and B, same id") {
  testing_redis::RedisServer redis;
  Node a(redis.port()), b(redis.port());
  a.wait_ready();
  b.wait_ready();

  auto [all_a, r1] = a.connect();
  auto [alice_b, r2] = b.connect(as("alice", {"tenant:acme"}, {"room"}));
  auto [bob_b, r3] = b.connect(as("bob"));
  REQUIRE(r1);
  REQUIRE(r2);
  REQUIRE(r3);

  auto s1 = a.bus.broadcast(ev("to all"));
  REQUIRE(s1);
  CHECK(s1.id.find('-') != std::string::npos);  // a Redis entry id
  REQUIRE(a.bus.publish("room", ev("to room", "chat")));
  REQUIRE(a.bus.send_to_user("alice", ev("to alice")));
  REQUIRE(a.bus.send(Target::pool("tenant:acme"), ev("to acme")));
  REQUIRE(a.bus.send_to(r3.id, ev("to bob's connection")));

  auto alice = alice_b->wait_for(4);
  REQUIRE(alice.size() == 4);
  CHECK(alice[0] == "message|to all|" + s1.id);
  CHECK(alice[1].rfind("chat|to room|", 0) == 0);
  CHECK(alice[2].rfind("message|to alice|", 0) == 0);
  CHECK(alice[3].rfind("message|to acme|", 0) == 0);
  auto bob = bob_b->wait_for(2);
  REQUIRE(bob.size() == 2);
  CHECK(bob[0] == "message|to all|" + s1.id);
  CHECK(bob[1].rfind("message|to bob's connection|", 0) == 0);
  auto on_a = all_a->wait_for(1);
  CHECK(on_a == std::vector<std::string>{"message|to all|" + s1.id});
  std::this_thread::sleep_for(100ms);  // nothing more arrives anywhere
  CHECK(alice_b->now().size() == 4);
  CHECK(bob_b->now().size() == 2);
  CHECK(all_a->now().size() == 1);
}

TEST_CASE("a client that drops from A and reconnects to B gets exactly the missed events") {
  testing_redis::RedisServer redis;
  // B keeps four events locally, so a longer gap is replayed from Redis.
  Node a(redis.port()), b(redis.port(), 4);
  a.wait_ready();
  b.wait_ready();
  auto [first, r1] = a.connect(as("carol", {}, {"news"}));
  REQUIRE(r1);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(a.bus.publish("news", ev("n" + std::to_string(i))).id);
  REQUIRE(first->wait_for(3).size() == 3);
  a.hub.disconnect(r1.id);
  b.wait_delivered(ids[2]);

  SECTION("gap inside B's local history") {
    auto s = a.bus.publish("news", ev("missed"));
    REQUIRE(s);
    b.wait_delivered(a.bus.publish("other", ev("not for carol")).id);
    ConnectOptions o = as("carol", {}, {"news"});
    o.last_event_id = ids[2];
    auto [again, r] = b.connect(o);
    CHECK(r.replay == Replay::found);
    CHECK(again->now() == std::vector<std::string>{"message|missed|" + s.id});
    CHECK(b.bus.stats().redis_replays == 0);
  }
  SECTION("gap past B's local history: replayed from Redis") {
    std::vector<std::string> missed;
    std::string last;
    for (int i = 0; i < 5; ++i) {
      auto s = a.bus.publish("news", ev("m" + std::to_string(i)));
      missed.push_back("message|m" + std::to_string(i) + "|" + s.id);
      last = a.bus.publish("other", ev("not for carol")).id;
    }
    b.wait_delivered(last);
    ConnectOptions o = as("carol", {}, {"news"});
    o.last_event_id = ids[0];
    auto [again, r] = b.connect(o);
    CHECK(r.replay == Replay::found);
    CHECK(r.replayed == 7);
    std::vector<std::string> want = {"message|n1|" + ids[1], "message|n2|" + ids[2]};
    want.insert(want.end(), missed.begin(), missed.end());
    CHECK(again->now() == want);
    CHECK(b.bus.stats().redis_replays == 1);
    // Then live events follow, once.
    auto s = a.bus.publish("news", ev("live"));
    CHECK(again->wait_for(8).back() == "message|live|" + s.id);
  }
  SECTION("an id older than the stream is too old; garbage is unknown") {
    ConnectOptions o = as("carol", {}, {"news"});
    o.last_event_id = "1-0";
    auto [x, r] = b.connect(o);
    CHECK(r.replay == Replay::too_old);
    o.last_event_id = "not-an-id";
    auto [y, r2] = b.connect(o);
    CHECK(r2.replay == Replay::unknown);
    CHECK(x->now().empty());
    CHECK(y->now().empty());
  }
}

TEST_CASE("a node that stops reading catches up from its last id, exactly once") {
  testing_redis::RedisServer redis;
  Node a(redis.port()), b(redis.port());
  a.wait_ready();
  b.wait_ready();
  auto [client, r] = b.connect();
  REQUIRE(a.bus.broadcast(ev("before")));
  REQUIRE(client->wait_for(1).size() == 1);
  b.bus.stop();
  for (int i = 0; i < 5; ++i) REQUIRE(a.bus.broadcast(ev("while away " + std::to_string(i))));
  CHECK(client->now().size() == 1);
  b.bus.start();
  auto got = client->wait_for(6);
  REQUIRE(got.size() == 6);
  for (int i = 0; i < 5; ++i) CHECK(got[static_cast<std::size_t>(i) + 1].rfind("message|while away " + std::to_string(i) + "|", 0) == 0);
  std::this_thread::sleep_for(100ms);
  CHECK(client->now().size() == 6);
}

TEST_CASE("Redis killed and restarted mid-stream: sends fail clearly, nothing lost or doubled") {
  testing_redis::RedisServer redis;
  Node a(redis.port()), b(redis.port());
  a.wait_ready();
  b.wait_ready();
  auto [on_a, ra] = a.connect();
  auto [on_b, rb] = b.connect();
  std::vector<std::string> sent;
  for (int i = 0; i < 20; ++i) {
    auto s = a.bus.broadcast(ev("e" + std::to_string(i)));
    REQUIRE(s);
    sent.push_back("message|e" + std::to_string(i) + "|" + s.id);
  }
  redis.kill();
  auto down = a.bus.broadcast(ev("while down"));
  CHECK(down.error == ssepp::errc::bus_unavailable);
  CHECK(a.bus.stats().publish_errors >= 1);
  redis.start();
  // Sends work again once the bus reconnects.
  ssepp::SendResult s;
  for (int i = 0; i < 200 && !(s = a.bus.broadcast(ev("after"))); ++i) std::this_thread::sleep_for(20ms);
  REQUIRE(s);
  sent.push_back("message|after|" + s.id);
  for (int i = 0; i < 5; ++i) {
    auto more = a.bus.broadcast(ev("more" + std::to_string(i)));
    REQUIRE(more);
    sent.push_back("message|more" + std::to_string(i) + "|" + more.id);
  }
  CHECK(on_a->wait_for(sent.size()) == sent);
  CHECK(on_b->wait_for(sent.size()) == sent);
  std::this_thread::sleep_for(200ms);
  CHECK(on_b->now().size() == sent.size());
  CHECK(b.bus.stats().reconnects >= 1);
}

TEST_CASE("Pub/Sub interop: any service PUBLISHes JSON, malformed messages are counted") {
  testing_redis::RedisServer redis;
  Hub hub(node_options());
  std::vector<std::string> logs;
  std::mutex log_mutex;
  ssepp::RedisOptions options = redis_at(redis.port());
  options.on_log = [&](std::string_view line) {
    std::lock_guard<std::mutex> lock(log_mutex);
    logs.emplace_back(line);
  };
  ssepp::RedisPubSubBridge<InboxSink> bridge(hub, options);
  bridge.start();
  for (int i = 0; i < 250 && !bridge.subscribed(); ++i) std::this_thread::sleep_for(20ms);
  REQUIRE(bridge.subscribed());

  auto dave = std::make_shared<Inbox>();
  ConnectOptions o = as("dave", {}, {"ops"});
  REQUIRE(hub.connect(InboxSink{dave}, o));
  Cli cli(redis.port());
  cli.publish("ssepp:publish", R"({"target":{"channel":"ops"},"event":"alert","data":"disk full"})");
  cli.publish("ssepp:publish", "{broken");
  cli.publish("ssepp:publish", R"({"target":{"user":"dave"},"data":{"n":1},"id":"x-1"})");
  cli.publish("ssepp:publish", R"({"event":"bad\nname","data":"x"})");
  cli.publish("ssepp:publish", R"({"target":{"user":"erin"},"data":"not for dave"})");
  cli.publish("ssepp:publish", R"({"data":"everyone"})");
  auto got = dave->wait_for(3);
  REQUIRE(got.size() == 3);
  CHECK(got[0].rfind("alert|disk full|", 0) == 0);
  CHECK(got[1] == "message|{\"n\":1}|x-1");
  CHECK(got[2].rfind("message|everyone|", 0) == 0);
  for (int i = 0; i < 100 && bridge.stats().received < 6; ++i) std::this_thread::sleep_for(10ms);
  CHECK(bridge.stats().received == 6);
  CHECK(bridge.stats().malformed == 2);
  bridge.stop();
  std::lock_guard<std::mutex> lock(log_mutex);
  auto dropped = std::count_if(logs.begin(), logs.end(), [](const std::string& l) {
    return l.find("malformed") != std::string::npos;
  });
  CHECK(dropped == 2);
}

TEST_CASE("stop() right after start() returns, whatever the reader was doing") {
  // stop() wakes a reader blocked on Redis by shutting its socket down; a reader still
  // connecting has no socket yet, and must notice the stop before it blocks (the Pub/Sub
  // bridge's wait for messages has no timeout).
  testing_redis::RedisServer redis;
  Hub hub(node_options());
  ssepp::RedisOptions options = redis_at(redis.port());
  options.block = 30s;  // a missed stop would show as a 30 s stall, not as a short XREAD
  options.timeout = 30s;
  ssepp::RedisPubSubBridge<InboxSink> bridge(hub, options);
  Bus bus(hub, options);
  for (int i = 0; i < 60; ++i) {
    const auto pause = std::chrono::microseconds(i * 50);  // 0 to 3 ms: before, during, after connect
    const auto t0 = std::chrono::steady_clock::now();
    bridge.start();
    bus.start();
    std::this_thread::sleep_for(pause);
    bridge.stop();
    bus.stop();
    INFO("round " << i << ", stopped " << pause.count() << " us after start");
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  }
}
