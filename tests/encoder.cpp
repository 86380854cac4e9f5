// Encoder rules, one test each, plus round-trip properties against an independent reference
// reader of the stream format (tests/support/reference_parser.hpp).
#include <ssepp/encoder.hpp>

#include <fmt/format.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/normalise.hpp"
#include "support/reference_parser.hpp"

using namespace std::chrono_literals;
using namespace std::string_literals;

namespace {

ssepp::Event data_event(std::string data) {
  ssepp::Event ev;
  ev.data = std::move(data);
  return ev;
}

using testing_sse::normalised;

}  // namespace

TEST_CASE("the example from the issue encodes") {
  ssepp::Event ev;
  ev.type = "price";
  ev.data = "{\"x\":1}";
  ev.id = "7";
  ev.retry = std::chrono::milliseconds(3000);
  std::string bytes = ssepp::encode(ev);
  CHECK(bytes == "event: price\nid: 7\nretry: 3000\ndata: {\"x\":1}\n\n");
}

TEST_CASE("field order is comment, event, id, retry, data") {
  auto ev = ssepp::Event{}.with_comment("c").with_data("d").with_retry(5ms).with_id("i").with_type("t");
  CHECK(ssepp::encode(ev) == ": c\nevent: t\nid: i\nretry: 5\ndata: d\n\n");
}

TEST_CASE("data is split on LF, CR and CRLF into data lines") {
  CHECK(ssepp::encode(data_event("a\nb")) == "data: a\ndata: b\n\n");
  CHECK(ssepp::encode(data_event("a\rb")) == "data: a\ndata: b\n\n");
  CHECK(ssepp::encode(data_event("a\r\nb")) == "data: a\ndata: b\n\n");
  CHECK(ssepp::encode(data_event("a\n\rb")) == "data: a\ndata:\ndata: b\n\n");
  CHECK(ssepp::encode(data_event("a\r\rb")) == "data: a\ndata:\ndata: b\n\n");
  CHECK(ssepp::encode(data_event("\n")) == "data:\ndata:\n\n");
}

TEST_CASE("a CR in data cannot forge a field or end the event") {
  // The classic bug: splitting only on LF lets "\r" start a new line the client will parse.
  auto ev = data_event("hello\revent: admin\r\rdata: forged");
  std::string bytes = ssepp::encode(ev);
  CHECK(bytes == "data: hello\ndata: event: admin\ndata:\ndata: data: forged\n\n");
  auto parsed = reference::parse(bytes);
  REQUIRE(parsed.events.size() == 1);
  CHECK(parsed.events[0].type == "message");
  CHECK(parsed.events[0].data == "hello\nevent: admin\n\ndata: forged");
}

TEST_CASE("empty data gives one data line, which clients dispatch with empty data") {
  std::string bytes = ssepp::encode(data_event(""));
  CHECK(bytes == "data:\n\n");
  auto parsed = reference::parse(bytes);
  REQUIRE(parsed.events.size() == 1);
  CHECK(parsed.events[0].data.empty());
}

TEST_CASE("a trailing line break in data survives a round trip") {
  for (std::string d : {"x\n"s, "x\r"s, "x\r\n"s, "x\n\n"s}) {
    auto parsed = reference::parse(ssepp::encode(data_event(d)));
    REQUIRE(parsed.events.size() == 1);
    CHECK(parsed.events[0].data == normalised(d));
  }
}

TEST_CASE("a data line that starts with a space survives a round trip") {
  for (std::string d : {" lead\n  two"s, " "s, "x\n "s}) {
    auto parsed = reference::parse(ssepp::encode(data_event(d)));
    REQUIRE(parsed.events.size() == 1);
    CHECK(parsed.events[0].data == d);
  }
}

TEST_CASE("type with CR or LF is rejected, never sent altered") {
  for (std::string t : {"a\nb"s, "a\rb"s, "\n"s, "x\r\n"s}) {
    ssepp::Event ev = data_event("d");
    ev.type = t;
    CHECK(ssepp::validate(ev).error() == ssepp::errc::invalid_event_type);
    std::string buf = "keep";
    CHECK(ssepp::encode_to(buf, ev).error() == ssepp::errc::invalid_event_type);
    CHECK(buf == "keep");
    CHECK_THROWS_AS(ssepp::encode(ev), ssepp::Error);
    CHECK_THROWS_AS(ssepp::Frame::from_event(ev), ssepp::Error);
    auto encoded = ssepp::try_encode(ev);
    CHECK_FALSE(encoded);
    CHECK(encoded.error() == ssepp::errc::invalid_event_type);
    auto frame = ssepp::Frame::try_from_event(ev);
    CHECK_FALSE(frame);
    CHECK(frame.error() == ssepp::errc::invalid_event_type);
  }
}

TEST_CASE("id with CR, LF or NUL is rejected, never sent altered") {
  for (std::string id : {"1\n"s, "1\r2"s, std::string("1\0" "2", 3)}) {
    ssepp::Event ev = data_event("d");
    ev.id = id;
    CHECK(ssepp::validate(ev).error() == ssepp::errc::invalid_event_id);
    try {
      (void)ssepp::encode(ev);
      FAIL("encode accepted an invalid id");
    } catch (const ssepp::Error& e) {
      CHECK(e.code() == ssepp::errc::invalid_event_id);
      CHECK(std::string(e.what()).find("id") != std::string::npos);
    }
  }
}

// The scans read short text a word at a time; every byte value at every position of every
// word alignment (and past the 64 bytes where data scanning switches to memchr) must be judged
// exactly as a byte-by-byte check would.
TEST_CASE("one CR, LF or NUL anywhere in short text is found, and nothing else is") {
  std::vector<std::size_t> lengths;
  for (std::size_t n = 1; n <= 40; ++n) lengths.push_back(n);
  for (std::size_t n : {63u, 64u, 65u, 72u}) lengths.push_back(n);
  std::string buf;
  std::size_t mismatches = 0;
  for (char filler : {'a', '\xFF'})
    for (std::size_t n : lengths)
      for (std::size_t at = 0; at < n; ++at)
        for (int b = 0; b < 256; ++b) {
          const char c = static_cast<char>(b);
          std::string text(n, filler);
          text[at] = c;
          const bool line_break = c == '\n' || c == '\r';

          ssepp::Event ev = data_event(text);
          buf.clear();
          if (!ssepp::encode_to(buf, ev)) ++mismatches;
          auto line = [](const std::string& s) {
            return s.empty() ? "data:\n"s : "data: " + s + "\n";
          };
          const std::string want = line_break
              ? line(text.substr(0, at)) + line(text.substr(at + 1)) + "\n"
              : line(text) + "\n";
          if (buf != want) ++mismatches;

          ev.type = text;
          if (!ssepp::validate(ev) != line_break) ++mismatches;
          ev.type.clear();
          ev.id = text;
          if (!ssepp::validate(ev) != (line_break || c == '\0')) ++mismatches;
        }
  CHECK(mismatches == 0);
}

TEST_CASE("frames on both sides of the on-stack size append the same bytes to every buffer") {
  for (std::size_t n : {200u, 248u, 249u, 250u, 251u, 300u, 5000u}) {
    const std::string data(n, 'x');
    const std::string want = "data: " + data + "\n\n";
    std::string s = "p";
    REQUIRE(ssepp::encode_to(s, data_event(data)));
    CHECK(s == "p" + want);
    std::vector<char> v = {'p'};
    REQUIRE(ssepp::encode_to(v, data_event(data)));
    CHECK(std::string(v.data(), v.size()) == "p" + want);
    CHECK(ssepp::encode(data_event(data)) == want);
    CHECK(ssepp::Frame::from_event(data_event(data)).view() == want);
  }
}

// Data-only events of up to 64 bytes of one-line data take a short path into buffers with
// append(); every length around its bounds, with every byte distinct so that a misplaced copy
// shows, must give the bytes of the general path (std::vector<char> has no append()).
TEST_CASE("the short path for tiny data-only events writes what the general path writes") {
  for (std::size_t n = 0; n <= 70; ++n) {
    std::string data;
    for (std::size_t i = 0; i < n; ++i) data += static_cast<char>('!' + (i * 7) % 90);
    const std::string want = n == 0 ? "data:\n\n"s : "data: " + data + "\n\n";
    for (const ssepp::Event& ev : {data_event(data), data_event(data).with_type("t")}) {
      const std::string head = ev.type.empty() ? ""s : "event: t\n"s;
      std::string s = "p";
      REQUIRE(ssepp::encode_to(s, ev));
      CHECK(s == "p" + head + want);
      std::vector<char> v = {'p'};
      REQUIRE(ssepp::encode_to(v, ev));
      CHECK(std::string(v.data(), v.size()) == "p" + head + want);
    }
  }
}

TEST_CASE("negative retry is rejected") {
  ssepp::Event ev = data_event("d");
  ev.retry = -1ms;
  CHECK(ssepp::validate(ev).error() == ssepp::errc::invalid_retry);
  CHECK_THROWS_AS(ssepp::encode_retry(-5ms), ssepp::Error);
  CHECK_THROWS_AS(ssepp::Frame::retry(-5ms), ssepp::Error);
  // The non-throwing twins.
  CHECK(ssepp::try_encode_retry(-5ms).error() == ssepp::errc::invalid_retry);
  CHECK(ssepp::Frame::try_retry(-5ms).error() == ssepp::errc::invalid_retry);
  CHECK(ssepp::try_encode(ev).error() == ssepp::errc::invalid_retry);
  CHECK(ssepp::Frame::try_from_event(ev).error() == ssepp::errc::invalid_retry);
  std::string buf = "keep";
  CHECK(ssepp::encode_to(buf, ev).error() == ssepp::errc::invalid_retry);
  CHECK(buf == "keep");
}

TEST_CASE("the try_ twins succeed with what the throwing calls return") {
  auto ev = ssepp::Event{}.with_type("t").with_id("1").with_data("a\nb");
  auto encoded = ssepp::try_encode(ev);
  REQUIRE(encoded);
  CHECK(*encoded == ssepp::encode(ev));
  auto frame = ssepp::Frame::try_from_event(ev);
  REQUIRE(frame);
  CHECK(frame->view() == ssepp::encode(ev));
  auto retry = ssepp::try_encode_retry(250ms);
  REQUIRE(retry);
  CHECK(*retry == "retry: 250\n\n");
  auto retry_frame = ssepp::Frame::try_retry(250ms);
  REQUIRE(retry_frame);
  CHECK(retry_frame->view() == "retry: 250\n\n");
  // validate and encode_to test true on success: the opposite of a returned std::error_code.
  CHECK(ssepp::validate(ev));
  CHECK_FALSE(ssepp::validate(ev).error());
  std::string out;
  CHECK(ssepp::encode_to(out, ev));
  CHECK(out == ssepp::encode(ev));
}

TEST_CASE("an empty id is valid and written without trailing space") {
  ssepp::Event ev = data_event("d");
  ev.id = "";
  CHECK(ssepp::encode(ev) == "id:\ndata: d\n\n");
}

TEST_CASE("no frame has trailing whitespace and every frame ends with a blank line") {
  std::vector<ssepp::Event> events = {
      data_event(""), data_event("a\n\nb"),
      ssepp::Event{}.with_id("").with_type("t").with_comment("").with_data("x"),
      ssepp::Event{}.with_comment("one\ntwo\r\n").with_data("\r\n"),
  };
  for (const auto& ev : events) {
    std::string bytes = ssepp::encode(ev);
    REQUIRE(bytes.size() >= 2);
    CHECK(bytes.substr(bytes.size() - 2) == "\n\n");
    CHECK(bytes.find(" \n") == std::string::npos);
    CHECK(bytes.find('\r') == std::string::npos);
  }
}

TEST_CASE("comment frames: each line of text is its own comment line") {
  CHECK(ssepp::encode_comment("") == ":\n\n");
  CHECK(ssepp::encode_comment("ping") == ": ping\n\n");
  CHECK(ssepp::encode_comment("a\rb\r\nc") == ": a\n: b\n: c\n\n");
  auto parsed = reference::parse(ssepp::encode_comment("a\ndata: forged"));
  CHECK(parsed.events.empty());
  CHECK(parsed.comments == std::vector<std::string>{" a", " data: forged"});
  CHECK(ssepp::Frame::comment("x").view() == ": x\n\n");
  CHECK(ssepp::Frame::keepalive().view() == ":\n\n");
}

TEST_CASE("an event's comment is written as comment lines before its fields") {
  auto ev = ssepp::Event{}.with_comment("trace\nid: 9").with_data("d");
  CHECK(ssepp::encode(ev) == ": trace\n: id: 9\ndata: d\n\n");
  CHECK(reference::parse(ssepp::encode(ev)).events.at(0).last_event_id.empty());
}

TEST_CASE("retry-only frames set the reconnection time and dispatch nothing") {
  CHECK(ssepp::encode_retry(0ms) == "retry: 0\n\n");
  CHECK(ssepp::encode_retry(3000ms) == "retry: 3000\n\n");
  CHECK(ssepp::Frame::retry(12345ms).view() == "retry: 12345\n\n");
  auto parsed = reference::parse(ssepp::encode_retry(3000ms));
  CHECK(parsed.events.empty());
  CHECK(parsed.retry == 3000);
}

TEST_CASE("encode_to appends to std::string, std::vector<char> and fmt::memory_buffer") {
  auto ev = ssepp::Event{}.with_type("t").with_data("a\nb");
  const std::string expected = ssepp::encode(ev);

  std::string s = "prefix";
  CHECK(ssepp::encode_to(s, ev));
  CHECK(s == "prefix" + expected);

  std::vector<char> v = {'p'};
  CHECK(ssepp::encode_to(v, ev));
  CHECK(std::string(v.begin(), v.end()) == "p" + expected);

  fmt::memory_buffer mb;
  fmt::format_to(std::back_inserter(mb), "{}", "x");
  CHECK(ssepp::encode_to(mb, ev));
  ssepp::encode_comment_to(mb, "c");
  CHECK(fmt::to_string(mb) == "x" + expected + ": c\n\n");
}

TEST_CASE("Frame holds the event's bytes, shared by every copy") {
  auto ev = ssepp::Event{}.with_type("t").with_id("1").with_data("payload");
  ssepp::Frame f = ssepp::Frame::from_event(ev);
  CHECK(f.view() == ssepp::encode(ev));
  CHECK(std::string_view(f) == ssepp::encode(ev));
  CHECK(f.use_count() == 1);
  {
    ssepp::Frame a = f;
    ssepp::Frame b;
    b = a;
    CHECK(f.use_count() == 3);
    CHECK(a.data() == f.data());  // same memory, not a copy
    ssepp::Frame c = std::move(b);
    CHECK(b.empty());
    CHECK(f.use_count() == 3);
  }
  CHECK(f.use_count() == 1);
  CHECK(ssepp::Frame{}.empty());
  CHECK(ssepp::Frame{}.use_count() == 0);
  CHECK(ssepp::Frame("abc").view() == "abc");
  CHECK(ssepp::Frame("abc") == ssepp::Frame("abc"));
  CHECK(ssepp::Frame("abc") != ssepp::Frame("abd"));
  CHECK_THROWS_AS(ssepp::Frame::from_event(ssepp::Event{}.with_type("a\nb")), ssepp::Error);
}

TEST_CASE("Frame copies may be made and dropped from many threads") {
  ssepp::Frame f = ssepp::Frame::from_event(data_event("shared"));
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};  // Catch2's assertions are not for other threads: count, check after
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([f, &wrong] {
      for (int i = 0; i < 10000; ++i) {
        ssepp::Frame copy = f;
        if (copy.view() != "data: shared\n\n" || copy.use_count() < 2) ++wrong;
      }
    });
  for (auto& t : threads) t.join();
  CHECK(wrong.load() == 0);
  CHECK(f.use_count() == 1);
}

TEST_CASE("property: random valid events round-trip through the stream format") {
  std::mt19937_64 rng(GENERATE(1u, 2u, 3u, 4u));
  const std::string alphabet = std::string("ab :\r\n\t{}\"\x01\xC3\xA9", 13) + std::string(1, '\0');
  auto random_string = [&](std::size_t max_len, std::string_view banned) {
    std::string s;
    std::size_t n = rng() % (max_len + 1);
    while (s.size() < n) {
      char c = alphabet[rng() % alphabet.size()];
      if (banned.find(c) == std::string_view::npos) s += c;
    }
    return s;
  };
  for (int i = 0; i < 500; ++i) {
    ssepp::Event ev;
    ev.data = random_string(40, "");
    ev.type = random_string(8, std::string_view("\r\n", 2));
    if (rng() % 2) ev.id = random_string(8, std::string_view("\r\n\0", 3));
    if (rng() % 3 == 0) ev.retry = std::chrono::milliseconds(rng() % 100000);
    ev.comment = random_string(10, "");
    REQUIRE(ssepp::validate(ev));

    // Several events in one stream must come back one by one.
    std::string stream = ssepp::encode(ev) + ssepp::encode(data_event("next"));
    auto parsed = reference::parse(stream);
    REQUIRE(parsed.events.size() == 2);
    CHECK(parsed.events[0].data == normalised(ev.data));
    CHECK(parsed.events[0].type == (ev.type.empty() ? "message" : ev.type));
    CHECK(parsed.events[0].last_event_id == ev.id.value_or(""));
    CHECK(parsed.events[1].data == "next");
    CHECK(parsed.events[1].type == "message");
    if (ev.retry) CHECK(parsed.retry == ev.retry->count());
  }
}
