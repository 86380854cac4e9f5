// ssepp/format.hpp: format_frame (same bytes as encode, one allocation per small frame), the
// try_ twins, and the fmt formatters' wire and debug forms.
#include <ssepp/format.hpp>

#include <fmt/compile.h>
#include <fmt/format.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "support/catch.hpp"

// Counting allocator for this test program only: the allocation tests count frames' allocations.
#include "support/counting_new.hpp"

using namespace std::chrono_literals;

namespace {

/// The Event an EventHead and data stand for.
ssepp::Event as_event(const ssepp::EventHead& h, std::string data) {
  ssepp::Event ev;
  ev.data = std::move(data);
  ev.type = std::string(h.type);
  if (h.id) ev.id = std::string(*h.id);
  ev.retry = h.retry;
  ev.comment = std::string(h.comment);
  return ev;
}

/// Heads covering every field, each alone and together.
std::vector<ssepp::EventHead> heads() {
  std::vector<ssepp::EventHead> out;
  out.push_back({});
  out.push_back({"price"});
  out.push_back({"", "7"});
  out.push_back({"", ""});  // empty id: written, resets Last-Event-ID
  out.push_back(ssepp::EventHead{}.with_retry(3000ms));
  out.push_back(ssepp::EventHead{}.with_retry(0ms));
  out.push_back(ssepp::EventHead{}.with_comment("note"));
  out.push_back(ssepp::EventHead{}.with_comment("two\nlines\r\nand\rthree"));
  out.push_back(ssepp::EventHead{"update", "42", 1500ms, "c"});
  return out;
}

/// Data covering every line-break rule, the short path, and the heap path (> 500 bytes).
std::vector<std::string> datas() {
  std::vector<std::string> out = {"",
                                  "x",
                                  "a\nb",
                                  "a\rb",
                                  "a\r\nb",
                                  "\n",
                                  "\r",
                                  "\r\n",
                                  "a\n\rb",
                                  "a\r\rb",
                                  "end\n",
                                  "end\r",
                                  "end\r\n",
                                  "\r\n\r\n",
                                  "\n\n\n",
                                  " lead",
                                  "trail ",
                                  "data: forged\n\nevent: x",
                                  "{\"sym\":\"ACME\",\"px\":12.5}"};
  out.push_back(std::string(499, 'a'));
  out.push_back(std::string(500, 'b'));
  out.push_back(std::string(501, 'c'));
  std::string lines;
  while (lines.size() < 3000) lines += "line of text\r\nanother one\rand a third\n";
  out.push_back(lines);
  out.push_back(std::string(5000, 'z') + "\r" + std::string(100, 'y'));
  return out;
}

struct Counted {
  int* calls;
};

}  // namespace

template <>
struct fmt::formatter<Counted> : fmt::formatter<int> {
  template <class FormatContext>
  auto format(const Counted& c, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::formatter<int>::format(++*c.calls, ctx);
  }
};

TEST_CASE("format_frame writes exactly what encode writes") {
  for (const auto& h : heads()) {
    for (const auto& d : datas()) {
      INFO("type=" << h.type << " data size " << d.size());
      const std::string expected = ssepp::encode(as_event(h, d));
      CHECK(ssepp::format_frame(h, "{}", d).view() == expected);
      auto r = ssepp::try_format_frame(h, "{}", d);
      REQUIRE(r);
      CHECK(r->view() == expected);
      CHECK(ssepp::make_frame(h, d).view() == expected);
      CHECK(ssepp::try_make_frame(h, d)->view() == expected);
    }
  }
}

TEST_CASE("format_frame formats the data from the arguments") {
  std::string sym = "ACME";
  double px = 12.5;
  auto f = ssepp::format_frame({"price", "7"}, "{{\"sym\":\"{}\",\"px\":{}}}", sym, px);
  CHECK(f.view() == "event: price\nid: 7\ndata: {\"sym\":\"ACME\",\"px\":12.5}\n\n");
  CHECK(ssepp::format_frame({}, "{}-{}", 1, "two").view() == "data: 1-two\n\n");
  CHECK(ssepp::format_frame({}, "").view() == "data:\n\n");
  // Line breaks coming from an argument are split like any other: no field can be forged.
  std::string evil = "x\r\nevent: admin\rid: 0";
  CHECK(ssepp::format_frame({"chat"}, "msg={}", evil).view() ==
        "event: chat\ndata: msg=x\ndata: event: admin\ndata: id: 0\n\n");
#if SSEPP_HAS_CONCEPTS
  ssepp::EventHead h{.type = "price", .id = "8"};
  CHECK(ssepp::format_frame(h, "{}", 1).view() == "event: price\nid: 8\ndata: 1\n\n");
#endif
}

TEST_CASE("random data: format_frame and encode agree byte for byte") {
  std::mt19937 rng(11);
  const char alphabet[] = {'a', 'b', '\r', '\n', ' ', ':', '\0', '\xc3', '\xa9'};
  for (int i = 0; i < 2000; ++i) {
    std::string d;
    const std::size_t n = rng() % (i % 10 == 0 ? 1200 : 40);
    for (std::size_t k = 0; k < n; ++k) d += alphabet[rng() % sizeof alphabet];
    const ssepp::EventHead h = heads()[static_cast<std::size_t>(i) % heads().size()];
    INFO("case " << i);
    CHECK(ssepp::format_frame(h, "{}", d).view() == ssepp::encode(as_event(h, d)));
  }
}

TEST_CASE("an invalid head is rejected like validate rejects the event") {
  using ssepp::errc;
  struct Bad {
    ssepp::EventHead head;
    errc code;
  };
  const std::string nul("a\0b", 3);
  const std::vector<Bad> bad = {
      {{"a\nb"}, errc::invalid_event_type},
      {{"a\rb"}, errc::invalid_event_type},
      {{"\r\n"}, errc::invalid_event_type},
      {{"", "1\n2"}, errc::invalid_event_id},
      {{"", "1\r"}, errc::invalid_event_id},
      {{"", std::string_view(nul)}, errc::invalid_event_id},
      {ssepp::EventHead{}.with_retry(-1ms), errc::invalid_retry},
  };
  for (const auto& b : bad) {
    INFO("code " << static_cast<int>(b.code));
    REQUIRE(ssepp::validate(as_event(b.head, "x")).error() == b.code);
    int calls = 0;
    auto r = ssepp::try_format_frame(b.head, "{}", Counted{&calls});
    REQUIRE_FALSE(r);
    CHECK(r.error() == b.code);
    CHECK(calls == 0);  // nothing formatted for an invalid head
    CHECK_THROWS_AS(ssepp::format_frame(b.head, "{}", Counted{&calls}), ssepp::Error);
    try {
      (void)ssepp::format_frame(b.head, "x");
    } catch (const ssepp::Error& e) {
      CHECK(e.code() == b.code);
    }
    CHECK(calls == 0);
    CHECK_FALSE(ssepp::try_make_frame(b.head, "x"));
    CHECK_THROWS_AS(ssepp::make_frame(b.head, "x"), ssepp::Error);
  }
  // NUL is fine in a type (as validate says), and so is anything in comments and data.
  CHECK(ssepp::format_frame({std::string_view(nul)}, "{}", nul).view() ==
        ssepp::encode(as_event({std::string_view(nul)}, nul)));
}

TEST_CASE("validate_head agrees with validate on random heads") {
  std::mt19937 rng(5);
  const char alphabet[] = {'a', '\r', '\n', '\0', ' '};
  for (int i = 0; i < 3000; ++i) {
    std::string type, id;
    for (std::size_t k = rng() % 12; k > 0; --k) type += alphabet[rng() % sizeof alphabet];
    for (std::size_t k = rng() % 12; k > 0; --k) id += alphabet[rng() % sizeof alphabet];
    ssepp::EventHead h{type, id};
    ssepp::Event ev = as_event(h, "d");
    auto r = ssepp::try_format_frame(h, "d");
    CHECK(r.error() == ssepp::validate(ev).error());
    if (r) CHECK(r->view() == ssepp::encode(ev));
  }
}

TEST_CASE("one allocation per small formatted frame, two for fmt::format then encode") {
  const std::string sym = "ACME-LONG-SYMBOL";
  const double px = 1234.5678;
  const long long ts = 1764700000123;
  const ssepp::EventHead head{"price", "100042"};
  auto count = [](auto&& make) {
    std::size_t before = g_allocations.load();
    auto f = make();
    std::size_t after = g_allocations.load();
    CHECK_FALSE(f.empty());
    return after - before;
  };
  CHECK(count([&] {
          return ssepp::format_frame(head, "{{\"sym\":\"{}\",\"px\":{},\"ts\":{}}}", sym, px, ts);
        }) == 1);
  // The same with a few line breaks in the data.
  CHECK(count([&] { return ssepp::format_frame(head, "{}\n{}\r\n{}", sym, px, ts); }) == 1);
  // 400 bytes of data still fit the stack buffer.
  const std::string big(400, 'q');
  CHECK(count([&] { return ssepp::format_frame(head, "{}", big); }) == 1);
  // The usual way, for comparison (and to show the counter counts).
  CHECK(count([&] {
          auto ev = ssepp::Event{}.with_type("price").with_id("100042").with_data(
              fmt::format("{{\"sym\":\"{}\",\"px\":{},\"ts\":{}}}", sym, px, ts));
          return ssepp::Frame::from_event(ev);
        }) == 2);
  // Past the 500-byte stack buffer the data spills to the heap once.
  const std::string huge(2000, 'h');
  CHECK(count([&] { return ssepp::format_frame(head, "{}", huge); }) == 2);
}

TEST_CASE("Event: {} is the wire form, {:?} the debug form") {
  auto ev = ssepp::Event{}.with_type("price").with_id("7").with_data("a\nb");
  CHECK(fmt::format("{}", ev) == ssepp::encode(ev));
  CHECK(fmt::format("{:?}", ev) == "Event{type=\"price\", id=\"7\", data=\"a\\nb\"}");
  CHECK(fmt::format("{:?}", ssepp::Event{}) == "Event{data=\"\"}");
  auto full = ssepp::Event{}.with_comment("c").with_retry(3000ms).with_id("").with_data("x");
  CHECK(fmt::format("{}", full) == ssepp::encode(full));
  CHECK(fmt::format("{:?}", full) == "Event{id=\"\", retry=3000ms, comment=\"c\", data=\"x\"}");
  // Invalid events throw from the wire form, as encode does; the debug form shows them.
  auto bad = ssepp::Event{}.with_type("a\nb");
  CHECK_THROWS_AS(fmt::format("{}", bad), ssepp::Error);
  CHECK(fmt::format("{:?}", bad) == "Event{type=\"a\\nb\", data=\"\"}");
  // Any other spec is refused by fmt.
  CHECK_THROWS_AS(fmt::format(fmt::runtime("{:x}"), ev), fmt::format_error);
}

TEST_CASE("debug strings are one line, escaped, UTF-8 kept") {
  auto dbg = [](std::string data) {
    return fmt::format("{:?}", ssepp::Event{}.with_data(std::move(data)));
  };
  CHECK(dbg("q\"b\\") == R"(Event{data="q\"b\\"})");
  CHECK(dbg("\r\n\t") == R"(Event{data="\r\n\t"})");
  CHECK(dbg(std::string("\0\x01\x1f\x7f", 4)) == R"(Event{data="\x00\x01\x1f\x7f"})");
  CHECK(dbg("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") ==
        "Event{data=\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}");
  // Ill-formed UTF-8: each byte of the bad sequence escaped, the rest kept.
  CHECK(dbg("a\xc3(b\xff\xe2\x82") == R"(Event{data="a\xc3(b\xff\xe2\x82"})");
  CHECK(dbg("\xed\xa0\x80") == R"(Event{data="\xed\xa0\x80"})");  // a surrogate
  for (char c : dbg(std::string(300, '\n'))) CHECK(c != '\n');
}

TEST_CASE("EventView: {} reads back as the same view, {:?} shows all three fields") {
  const std::string stream =
      "event: price\nid: 7\ndata: a\ndata: b\n\n"
      "data: plain\n\n"
      "id\ndata:\n\n";
  std::vector<std::string> wire, debug;
  ssepp::Parser parser;
  REQUIRE(parser.feed(stream, [&](const ssepp::EventView& v) {
    wire.push_back(fmt::format("{}", v));
    debug.push_back(fmt::format("{:?}", v));
  }));
  REQUIRE(wire.size() == 3);
  CHECK(wire[0] == "event: price\nid: 7\ndata: a\ndata: b\n\n");
  CHECK(debug[0] == "EventView{type=\"price\", id=\"7\", data=\"a\\nb\"}");
  // The id is still 7 here (the last event id persists), so the wire form repeats it.
  CHECK(wire[1] == "id: 7\ndata: plain\n\n");
  CHECK(debug[1] == "EventView{type=\"message\", id=\"7\", data=\"plain\"}");
  CHECK(wire[2] == "data:\n\n");
  CHECK(debug[2] == "EventView{type=\"message\", id=\"\", data=\"\"}");
  // Each wire form, parsed by a fresh parser, gives the same view back.
  for (std::size_t i = 0; i < wire.size(); ++i) {
    ssepp::Parser fresh;
    std::vector<std::string> again;
    REQUIRE(fresh.feed(
        wire[i], [&](const ssepp::EventView& v) { again.push_back(fmt::format("{:?}", v)); }));
    CHECK(again == std::vector<std::string>{debug[i]});
  }
  ssepp::EventView forged{"a\rb", "d", ""};
  CHECK_THROWS_AS(fmt::format("{}", forged), ssepp::Error);
}

TEST_CASE("Frame: {} is its bytes, {:?} its size and escaped bytes") {
  auto f = ssepp::format_frame({"t"}, "x");
  CHECK(fmt::format("{}", f) == "event: t\ndata: x\n\n");
  CHECK(fmt::format("{:?}", f) == "Frame{size=18, bytes=\"event: t\\ndata: x\\n\\n\"}");
  CHECK(fmt::format("{:?}", ssepp::Frame{}) == "Frame{size=0, bytes=\"\"}");
  CHECK(fmt::format("{}", ssepp::Frame::keepalive()) == ":\n\n");
  fmt::memory_buffer out;
  fmt::format_to(fmt::appender(out), "{}{}", f, ssepp::Frame::keepalive());
  CHECK(fmt::to_string(out) == "event: t\ndata: x\n\n:\n\n");
}

TEST_CASE("enums format as their names; {:?} adds the type; string specs apply") {
  CHECK(fmt::format("{}", ssepp::errc::invalid_event_id) == "invalid_event_id");
  CHECK(fmt::format("{:?}", ssepp::errc::closed) == "errc::closed");
  CHECK(fmt::format("[{:>8}]", ssepp::errc::closed) == "[  closed]");
  CHECK(fmt::format("[{:8}]", ssepp::errc::closed) == "[closed  ]");
  CHECK(fmt::format("[{:?<8}]", ssepp::errc::closed) == "[closed??]");
  CHECK(fmt::format("[{:*^15?}]", ssepp::errc::closed) == "[*errc::closed**]");
  CHECK(fmt::format("[{:>3}]", ssepp::errc::closed) == "[closed]");
  CHECK(fmt::format("{}", ssepp::Overflow::drop_oldest) == "drop_oldest");
  CHECK(fmt::format("{:?}", ssepp::Replay::too_old) == "Replay::too_old");
  CHECK(fmt::format("{}", ssepp::DisconnectReason::sink_failed) == "sink_failed");
  CHECK(fmt::format("{}", ssepp::ReadyState::connecting) == "connecting");
  CHECK(fmt::format("{:?}", ssepp::Verdict::failed) == "Verdict::failed");
  CHECK(fmt::format("{}", ssepp::Utf8::replace) == "replace");
  CHECK(fmt::format("{}", ssepp::Parsed::need_more) == "need_more");
  // Every errc has a name (the switch has no default, so a new code without one warns).
  for (int e = 1; e <= static_cast<int>(ssepp::errc::invalid_message); ++e)
    CHECK(fmt::format("{}", static_cast<ssepp::errc>(e)) != "unknown");
}

TEST_CASE("format_frame takes FMT_COMPILE format strings too") {
  std::string sym = "ACME";
  auto f = ssepp::format_frame({"price", "7"}, FMT_COMPILE("{{\"sym\":\"{}\",\"px\":{}}}"), sym,
                               12.5);
  CHECK(f.view() == "event: price\nid: 7\ndata: {\"sym\":\"ACME\",\"px\":12.5}\n\n");
  CHECK(ssepp::format_frame({}, FMT_COMPILE("{}\r\n{}"), 1, 2).view() == "data: 1\ndata: 2\n\n");
  auto bad = ssepp::try_format_frame({"a\nb"}, FMT_COMPILE("{}"), 1);
  CHECK(bad.error() == ssepp::errc::invalid_event_type);
  CHECK_THROWS_AS(ssepp::format_frame({"", "\r"}, FMT_COMPILE("{}"), 1), ssepp::Error);
  std::size_t before = g_allocations.load();
  auto g = ssepp::format_frame({"price"}, FMT_COMPILE("{{\"sym\":\"{}\",\"px\":{}}}"), sym, 1.5);
  CHECK(g_allocations.load() - before == 1);
  // Runtime format strings still take the checked overload.
  CHECK(ssepp::format_frame({}, fmt::runtime("{}-{}"), 1, 2).view() == "data: 1-2\n\n");
  CHECK_THROWS_AS(ssepp::format_frame({}, fmt::runtime("{:d}"), "x"), fmt::format_error);
}
