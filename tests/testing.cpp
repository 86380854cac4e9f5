// ssepp/testing.hpp: parse_events (bytes -> owned events) and RecordingSink.
#include <ssepp/testing.hpp>

#include <ssepp/broadcaster.hpp>

#include "support/catch.hpp"

#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using ssepp::Event;

TEST_CASE("parse_events: one call from bytes to owned events") {
  auto parsed = ssepp::parse_events(
      "\xEF\xBB\xBF: hello\r\nretry: 1500\nevent: price\ndata: 1\ndata: 2\nid: 7\n\n"
      "data: plain\n\n:\n\ndata: unfinished");
  REQUIRE(parsed);
  CHECK(parsed->events == std::vector<Event>{
                              Event{}.with_type("price").with_data("1\n2").with_id("7"),
                              Event{}.with_data("plain"),
                          });
  CHECK(parsed->retry == std::optional<std::chrono::milliseconds>(1500ms));
  CHECK(parsed->last_event_id == "7");
  CHECK(parsed->comments == std::vector<std::string>{"hello", ""});
}

TEST_CASE("parse_events round-trips what encode writes") {
  const std::vector<Event> sent = {
      Event{}.with_data("a"),
      Event{}.with_type("t").with_data("multi\r\nline\rdata\n").with_id("1"),
      Event{}.with_data(""),
      Event{}.with_id("").with_data("reset id"),
      Event{}.with_type("message").with_data("default type, spelled out"),
  };
  std::string bytes;
  for (const Event& e : sent) REQUIRE(ssepp::encode_to(bytes, e));
  auto parsed = ssepp::parse_events(bytes).value();
  REQUIRE(parsed.events.size() == sent.size());
  CHECK(parsed.events[0] == sent[0]);
  CHECK(parsed.events[1] == Event{}.with_type("t").with_data("multi\nline\ndata\n").with_id("1"));
  CHECK(parsed.events[2] == sent[2]);
  CHECK(parsed.events[3] == sent[3]);
  // "message" is the default type: the same to every client, so it reads back as the default.
  CHECK(parsed.events[4] == Event{}.with_data("default type, spelled out"));
  CHECK(parsed.last_event_id.empty());  // the empty id reset it
  CHECK_FALSE(parsed.retry);
  // An event's id is its own id field: one without it has none, though the client's
  // lastEventId still holds the one before.
  auto two = ssepp::parse_events(ssepp::encode(Event{}.with_id("5").with_data("x")) +
                                 ssepp::encode(Event{}.with_data("y")));
  REQUIRE(two);
  CHECK(two->events ==
        std::vector<Event>{Event{}.with_id("5").with_data("x"), Event{}.with_data("y")});
  CHECK(two->last_event_id == "5");
}

TEST_CASE("parse_events reports the parser's limits as errors, never throws") {
  ssepp::ParserOptions o;
  o.limits.max_line = 8;
  auto r = ssepp::parse_events("data: far too long a line\n\n", o);
  CHECK_FALSE(r);
  CHECK(r.error() == ssepp::errc::line_too_long);
  o.limits.max_line = 64;
  o.limits.max_event = 5;
  r = ssepp::parse_events("data: 123\ndata: 456\n\n", o);
  CHECK(r.error() == ssepp::errc::event_too_large);
  CHECK(ssepp::parse_events("").value() == ssepp::ParsedStream{});
  ssepp::ParserOptions replace;
  replace.utf8 = ssepp::Utf8::replace;
  CHECK(ssepp::parse_events("data: \xFF\n\n", replace).value().events.at(0).data == "\xEF\xBF\xBD");
}

TEST_CASE("RecordingSink keeps every frame, shared by its copies") {
  STATIC_REQUIRE(ssepp::is_sink_v<ssepp::RecordingSink>);
  STATIC_REQUIRE(ssepp::sink_has_close_v<ssepp::RecordingSink>);
  ssepp::RecordingSink sink;
  ssepp::RecordingSink copy = sink;
  CHECK(copy == sink);
  CHECK(copy != ssepp::RecordingSink());
  const ssepp::Frame f = ssepp::Frame::from_event(Event{}.with_data("x"));
  CHECK(copy.send(f));
  CHECK(copy.send(ssepp::Frame::comment("c")));
  CHECK(copy.send(ssepp::Frame()));  // empty: nothing recorded
  REQUIRE(sink.frames().size() == 2);
  CHECK(sink.frames()[0].data() == f.data());  // the same bytes, not a copy
  CHECK(sink.bytes() == "data: x\n\n: c\n\n");
  CHECK(sink.events() == std::vector<Event>{Event{}.with_data("x")});
  CHECK(sink.parsed().value().comments == std::vector<std::string>{"c"});
  ssepp::RecordingSink moved = std::move(copy);
  CHECK(copy == sink);  // NOLINT(bugprone-use-after-move): a move copies, never empties
  CHECK(moved == sink);
  CHECK_FALSE(sink.closed());
  moved.close();
  CHECK(sink.closed());
  CHECK_FALSE(sink.send(f));  // a closed connection
  CHECK(sink.size() == 2);
  sink.clear();
  CHECK(sink.frames().empty());
  CHECK(sink.events().empty());
}

TEST_CASE("RecordingSink behind a real Broadcaster reads like the spec") {
  ssepp::BroadcasterOptions opts;
  opts.retry = 2000ms;
  ssepp::Broadcaster<ssepp::RecordingSink> hub(opts);
  ssepp::RecordingSink alice, bob;
  ssepp::ConnectOptions a;
  a.user = "alice";
  a.channels = {"room"};
  const auto alice_id = hub.connect(alice, a).value().id;
  REQUIRE(alice_id != 0);
  REQUIRE(hub.connect(bob).value().id != 0);

  CHECK(hub.broadcast(Event{}.with_data("hello all")).value().delivered == 2);
  CHECK(hub.publish("room", Event{}.with_type("chat").with_data("in the room")).value().delivered == 1);
  CHECK(hub.send_to_user("alice", Event{}.with_data("just you")).value().delivered == 1);

  CHECK(alice.events() == std::vector<Event>{
                              Event{}.with_data("hello all").with_id("1"),
                              Event{}.with_type("chat").with_data("in the room").with_id("2"),
                              Event{}.with_data("just you").with_id("3"),
                          });
  CHECK(bob.events() == std::vector<Event>{Event{}.with_data("hello all").with_id("1")});
  CHECK(bob.parsed().value().retry == std::optional<std::chrono::milliseconds>(2000ms));

  // A reconnect with Last-Event-ID replays what was missed, in order, before anything new.
  ssepp::RecordingSink bob_again;
  ssepp::ConnectOptions resume;
  resume.last_event_id = "1";
  resume.channels = {"room"};
  CHECK(hub.connect(bob_again, resume).value().replayed == 1);
  CHECK(bob_again.events() ==
        std::vector<Event>{Event{}.with_type("chat").with_data("in the room").with_id("2")});

  CHECK_FALSE(alice.closed());
  CHECK(hub.disconnect(alice_id));
  CHECK(alice.closed());  // the broadcaster closed the sink when it dropped the client
  CHECK(hub.broadcast(Event{}.with_data("after")).value().delivered == 2);
  CHECK(alice.events().size() == 3);
}

TEST_CASE("RecordingSink is safe to share across threads") {
  ssepp::RecordingSink sink;
  constexpr int threads = 4, per = 500;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([sink, t]() mutable {
      for (int i = 0; i < per; ++i)
        (void)sink.send(ssepp::Frame::from_event(Event{}.with_data(std::to_string(t))));
    });
  std::size_t seen = 0;
  while (seen < threads * per) seen = sink.size();  // reads while others write
  for (auto& w : workers) w.join();
  CHECK(sink.events().size() == threads * per);
}
