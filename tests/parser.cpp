// ssepp::Parser: API, zero-copy and allocation guarantees, limits, reset/finish, split
// invariance on random streams. Spec conformance case by case is in conformance/.
#include <ssepp/parser.hpp>

#include "conformance/event_log.hpp"
#include "support/catch.hpp"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

// Counting allocator for this test program only: the steady-state test asserts no allocation.
// `g_fail_allocations` > 0 makes that many next allocations throw std::bad_alloc.
#include "support/counting_new.hpp"

using namespace std::chrono_literals;
using sselog::ev;

namespace {

struct OnlyEvents {
  int n = 0;
  void on_event(const ssepp::EventView&) { ++n; }
};
struct NotAHandler {
  void on_comment(std::string_view) {}
};

static_assert(ssepp::is_parser_handler_v<OnlyEvents>);
static_assert(ssepp::is_parser_handler_v<OnlyEvents&>);
static_assert(ssepp::is_parser_handler_v<sselog::Recorder>);
static_assert(ssepp::is_parser_handler_v<void (*)(const ssepp::EventView&)>);
static_assert(!ssepp::is_parser_handler_v<NotAHandler>);
static_assert(!ssepp::is_parser_handler_v<int>);
#if SSEPP_HAS_CONCEPTS
static_assert(ssepp::ParserHandler<OnlyEvents>);
static_assert(!ssepp::ParserHandler<NotAHandler>);
#endif

bool inside(std::string_view part, std::string_view whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

}  // namespace

TEST_CASE("feed calls a plain callable for each event, in order") {
  ssepp::Parser parser;
  std::vector<std::string> got;
  auto fed = parser.feed("event: a\ndata: 1\n\ndata: 2\nid: x\n\n: c\nretry: 9\n",
                         [&](const ssepp::EventView& e) {
                           got.push_back(std::string(e.type) + "|" + std::string(e.data) + "|" +
                                         std::string(e.id));
                         });
  CHECK(fed);
  CHECK(got == std::vector<std::string>{"a|1|", "message|2|x"});
  CHECK(parser.last_event_id() == "x");
  CHECK(parser.retry() == std::optional<std::chrono::milliseconds>(9ms));  // read without on_retry
}

TEST_CASE("feed calls on_comment and on_retry only when the handler has them") {
  ssepp::Parser parser;
  OnlyEvents only;
  CHECK(parser.feed(": x\nretry: 5\ndata\n\n", only));
  CHECK(only.n == 1);

  ssepp::Parser second;
  sselog::Recorder rec;
  CHECK(second.feed(": x\nretry: 5\ndata\n\n", rec));
  CHECK(rec.log == std::vector<std::string>{sselog::comment("x"), sselog::retry(5), ev("message", "")});
}

TEST_CASE("pull face: input, then next until need_more") {
  ssepp::Parser parser;
  std::string chunk = "data: a\n\n: hi\nretry: 30\ndata: b";
  parser.input(chunk);
  REQUIRE(parser.next() == ssepp::Parsed::event);
  CHECK(parser.event().type == "message");
  CHECK(parser.event().data == "a");
  REQUIRE(parser.next() == ssepp::Parsed::comment);
  CHECK(parser.comment() == "hi");
  REQUIRE(parser.next() == ssepp::Parsed::retry);
  CHECK(parser.retry() == std::optional<std::chrono::milliseconds>(30ms));
  CHECK(parser.next() == ssepp::Parsed::need_more);
  CHECK(parser.next() == ssepp::Parsed::need_more);  // idempotent once drained
  chunk = "\n\n";                                    // the old chunk may now die
  parser.input(chunk);
  REQUIRE(parser.next() == ssepp::Parsed::event);
  CHECK(parser.event().data == "b");
  CHECK(parser.next() == ssepp::Parsed::need_more);
}

TEST_CASE("a single data line inside the chunk is delivered without copying") {
  ssepp::Parser parser;
  std::string chunk = "id: 1\ndata: hello\n\ndata: two\ndata: lines\n\ndata: cro";
  std::vector<bool> in_chunk;
  std::vector<std::string> data;
  auto record = [&](const ssepp::EventView& e) {
    in_chunk.push_back(inside(e.data, chunk));
    data.emplace_back(e.data);
  };
  CHECK(parser.feed(chunk, record));
  std::string rest = "ssed\n\n";
  CHECK(parser.feed(rest, record));
  CHECK(data == std::vector<std::string>{"hello", "two\nlines", "crossed"});
  // One line inside the chunk: a view into it. Two lines, or a line across chunks: the buffer.
  CHECK(in_chunk == std::vector<bool>{true, false, false});
}

TEST_CASE("a data line kept as a view survives the end of its chunk") {
  ssepp::Parser parser;
  std::vector<std::string> data;
  auto record = [&](const ssepp::EventView& e) { data.emplace_back(e.data); };
  {
    std::string chunk = "data: first line\n";
    CHECK(parser.feed(chunk, record));
    chunk.assign(chunk.size(), 'X');  // overwrite the chunk the parser viewed
  }
  CHECK(parser.feed("\n", record));
  CHECK(data == std::vector<std::string>{"first line"});
}

TEST_CASE("no allocation per event in steady state") {
  // A stream exercising every path: ids, types, comments, retry, multi-line data, CRLF and CR,
  // lines crossing chunk boundaries (odd chunk size), empty events.
  std::string unit =
      "id: 42\nevent: price\ndata: {\"s\":\"ACME\",\"p\":12.5}\n\n"
      ": keepalive\r\n"
      "data: line one\r\ndata: line two\r\ndata: line three\r\n\r\n"
      "retry: 1500\rdata\r\r"
      "event: long\ndata: " + std::string(300, 'x') + "\n\n";
  std::string stream;
  for (int i = 0; i < 20; ++i) stream += unit;
  for (std::size_t chunk_size : {std::size_t{7}, std::size_t{64}, std::size_t{1000}, stream.size()}) {
    INFO("chunk size " << chunk_size);
    ssepp::Parser parser;
    std::size_t events = 0, bytes = 0;
    auto count = [&](const ssepp::EventView& e) {
      ++events;
      bytes += e.data.size() + e.type.size() + e.id.size();
    };
    auto run = [&] {
      for (std::size_t at = 0; at < stream.size(); at += chunk_size) {
        if (!parser.feed(std::string_view(stream).substr(at, chunk_size), count)) return false;
      }
      return true;
    };
    REQUIRE(run());  // warm-up: the reused buffers reach their working size
    std::size_t before = g_allocations.load();
    bool ok = run() && run();
    std::size_t after = g_allocations.load();
    REQUIRE(ok);
    CHECK(events == 3 * 20 * 4);
    CHECK(after - before == 0);
    CHECK(bytes > 0);
  }
}

TEST_CASE("the counting allocator sees allocations (the steady-state test can fail)") {
  std::size_t before = g_allocations.load();
  ssepp::Parser parser;
  std::string big(100, 'y');
  CHECK(parser.feed("data: a\ndata: " + big + "\n\n", [](const ssepp::EventView&) {}));
  CHECK(g_allocations.load() > before);
}

TEST_CASE("limits: error state, sticky, with a message naming the place") {
  ssepp::ParserOptions o;
  o.limits.max_line = 16;
  o.limits.max_event = 64;
  ssepp::Parser parser(o);
  int events = 0;
  auto count = [&](const ssepp::EventView&) { ++events; };
  CHECK(parser.feed("data: ok\n\n", count));
  auto fed = parser.feed("data: 0123456789abcdef\n\n", count);
  CHECK_FALSE(fed);
  CHECK(fed.error() == ssepp::errc::line_too_long);
  CHECK(parser.error() == ssepp::errc::line_too_long);
  CHECK(parser.error_message().find("byte 10") != std::string::npos);
  CHECK(parser.error_message().find("16") != std::string::npos);
  CHECK(parser.feed("data: fine\n\n", count).error() == ssepp::errc::line_too_long);
  CHECK(parser.finish().error() == ssepp::errc::line_too_long);
  CHECK(events == 1);
  parser.reset();
  CHECK_FALSE(parser.error());
  CHECK(parser.error_message().empty());
  CHECK(parser.feed("data: fine\n\n", count));
  CHECK(events == 2);

  // event_too_large counts the joined data.
  std::string many;
  for (int i = 0; i < 10; ++i) many += "data: 0123456\n";  // 10 * 7 + 9 = 79 > 64
  CHECK(parser.feed(many, count).error() == ssepp::errc::event_too_large);
  CHECK(parser.error_message().find("max_event (64") != std::string::npos);
  CHECK(parser.error_message().find("byte 124") != std::string::npos);  // the 9th data line
}

TEST_CASE("the error message is the same however the stream is split") {
  ssepp::ParserOptions o;
  o.limits.max_line = 20;
  std::string s = "data: a\r\n\r\n: comment\ndata: this line is far too long\n";
  std::string whole;
  {
    ssepp::Parser p(o);
    CHECK(p.feed(s, [](const ssepp::EventView&) {}).error() == ssepp::errc::line_too_long);
    whole = p.error_message();
  }
  for (std::size_t cut = 0; cut <= s.size(); ++cut) {
    ssepp::Parser p(o);
    auto noop = [](const ssepp::EventView&) {};
    (void)p.feed(s.substr(0, cut), noop);
    (void)p.feed(s.substr(cut), noop);
    CHECK(p.error_message() == whole);
  }
  CHECK(whole.find("byte 21") != std::string::npos);
}

TEST_CASE("memory stays bounded by the limits") {
  ssepp::ParserOptions o;
  o.limits.max_line = 1000;
  o.limits.max_event = 5000;
  const std::size_t bound = o.limits.max_event + 4 * o.limits.max_line;
  {
    ssepp::Parser parser(o);
    std::string chunk(4096, 'z');
    CHECK(parser.feed("data: ", [](const ssepp::EventView&) {}));
    std::error_code ec;
    for (int i = 0; i < 100 && !ec; ++i)
      ec = parser.feed(chunk, [](const ssepp::EventView&) {}).error();
    CHECK(ec == ssepp::errc::line_too_long);
    CHECK(parser.buffer_capacity() <= bound);
  }
  {
    ssepp::Parser parser(o);
    std::string line = "data: " + std::string(900, 'q') + "\n";
    std::error_code ec;
    for (int i = 0; i < 100 && !ec; ++i)
      ec = parser.feed(line, [](const ssepp::EventView&) {}).error();
    CHECK(ec == ssepp::errc::event_too_large);
    CHECK(parser.buffer_capacity() <= bound);
    CHECK(parser.buffer_capacity() >= 4000);  // it did buffer the data it accepted
  }
}

TEST_CASE("reset: new connection keeps the last event ID and retry, restarts the BOM") {
  ssepp::Parser parser;
  sselog::Recorder rec;
  CHECK(parser.feed("\xEF\xBB\xBFretry: 250\nid: 5\ndata: a\n\nid: 6\nevent: t\ndata: b\n", rec));
  CHECK(parser.last_event_id() == "5");  // id 6's event never completed
  parser.reset();
  CHECK(parser.last_event_id() == "5");
  CHECK(parser.retry() == std::optional<std::chrono::milliseconds>(250ms));
  // The half event (type t, data b, id 6) is gone; a BOM at the new stream's start is skipped,
  // one later in the stream is not.
  CHECK(parser.feed("\xEF\xBB\xBF" "data: c\n\n", rec));
  CHECK(parser.feed("\xEF\xBB\xBF" "data: d\n\n", rec));
  CHECK(rec.log == std::vector<std::string>{sselog::retry(250), ev("message", "a", "5"),
                                            ev("message", "c", "5")});
}

TEST_CASE("reset in the middle of a CRLF and of a BOM") {
  ssepp::Parser parser;
  sselog::Recorder rec;
  CHECK(parser.feed("data: a\r", rec));
  parser.reset();
  CHECK(parser.feed("\ndata: b\n\n", rec));  // this LF is a blank line of the new stream
  parser.reset();
  CHECK(parser.feed("\xEF\xBB", rec));  // two thirds of a BOM at a stream start
  parser.reset();
  CHECK(parser.feed("\xBF" "data: c\n\n", rec));  // so this is no BOM: unknown field
  CHECK(rec.log == std::vector<std::string>{ev("message", "b")});
}

TEST_CASE("finish drops the unfinished event and readies the next stream") {
  ssepp::Parser parser;
  sselog::Recorder rec;
  CHECK(parser.feed("id: 1\ndata: a\n\nid: 2\ndata: b\n", rec));
  CHECK(parser.finish());
  CHECK(parser.last_event_id() == "1");
  // A new stream: its BOM is skipped, and its first blank line does not dispatch b.
  CHECK(parser.feed("\xEF\xBB\xBF\ndata: c\n\n", rec));
  CHECK(rec.log == std::vector<std::string>{ev("message", "a", "1"), ev("message", "c", "1")});
}

TEST_CASE("set_last_event_id seeds the id for a resumed session") {
  ssepp::Parser parser;
  parser.set_last_event_id("99");
  CHECK(parser.last_event_id() == "99");
  sselog::Recorder rec;
  CHECK(parser.feed("data: a\n\nid: 100\ndata: b\n", rec));
  parser.reset();
  CHECK(parser.last_event_id() == "99");
  CHECK(rec.log == std::vector<std::string>{ev("message", "a", "99")});
}

TEST_CASE("a handler that throws abandons the rest of its chunk, the parser stays usable") {
  ssepp::Parser parser;
  std::vector<std::string> got;
  auto thrower = [&](const ssepp::EventView& e) {
    got.emplace_back(e.data);
    if (e.data == "boom") throw std::runtime_error("handler");
  };
  std::string chunk = "data: boom\n\ndata: lost\n\ndata: pending";
  CHECK_THROWS_AS(parser.feed(chunk, thrower), std::runtime_error);
  chunk.assign(chunk.size(), '#');
  CHECK(parser.feed("data: next\n\n", thrower));
  CHECK(got == std::vector<std::string>{"boom", "next"});
}

TEST_CASE("a handler may reset the parser from inside the callback") {
  ssepp::Parser parser;
  std::vector<std::string> got;
  auto h = [&](const ssepp::EventView& e) {
    got.emplace_back(e.data);
    parser.reset();
  };
  CHECK(parser.feed("data: a\n\ndata: b\n\n", h));
  CHECK(got == std::vector<std::string>{"a"});
}

TEST_CASE("a parser can be moved between chunks") {
  ssepp::Parser a;
  sselog::Recorder rec;
  CHECK(a.feed("id: 3\nevent: t\ndata: x", rec));
  ssepp::Parser b(std::move(a));
  CHECK(b.feed("y\ndata: z\n\n", rec));
  CHECK(rec.log == std::vector<std::string>{ev("t", "xy\nz", "3")});
}

TEST_CASE("large events across many chunks") {
  std::mt19937 rng(7);
  std::string stream, expected_all;
  std::vector<std::string> expected;
  for (int i = 0; i < 50; ++i) {
    std::string data;
    int lines = 1 + static_cast<int>(rng() % 5);
    for (int l = 0; l < lines; ++l) {
      std::string line(rng() % 5000, static_cast<char>('a' + l));
      stream += "data: " + line + (i % 2 ? "\r\n" : "\n");
      data += (l ? "\n" : "") + line;
    }
    stream += "\n";
    expected.push_back(ev("message", data));
  }
  for (std::size_t size : {std::size_t{1}, std::size_t{100}, std::size_t{4096}, std::size_t{16384}}) {
    std::vector<std::size_t> cuts;
    for (std::size_t at = size; at < stream.size(); at += size) cuts.push_back(at);
    CHECK(sselog::parse_cuts(stream, cuts).log == expected);
  }
}

namespace {

// Streams built from SSE-shaped pieces and hostile bytes, to hit every state at every boundary.
std::string random_stream(std::mt19937& rng) {
  static const char* pieces[] = {
      "data", "data:", "data: ", "event", "event: ", "id", "id: ", "retry", "retry: ", ":", " ",
      "\n",   "\n",    "\r",     "\r\n",  "\r\n",    "x",  "yz",   "12",    "0",       "\0",
      "\xEF\xBB\xBF", "\xEF", "\xBB", "\xC3", "\xA9", "\xFF", "\xF0\x9F\x98\x80", "message",
      "Data", "ID",   "::",    "\n\n",  "\r\r",    "data: hello world", "retry: 1000",
  };
  const std::size_t n_pieces = sizeof pieces / sizeof pieces[0];
  std::string s;
  std::size_t n = rng() % 60;
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t k = rng() % n_pieces;
    if (k == 20)
      s.push_back('\0');
    else
      s += pieces[k];
  }
  return s;
}

}  // namespace

TEST_CASE("property: parsed whole equals parsed in random chunks, in every mode") {
  std::mt19937 rng(20240531);
  int with_events = 0, with_errors = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s = random_stream(rng);
    ssepp::ParserOptions o;
    if (rng() % 2) o.utf8 = ssepp::Utf8::replace;
    if (rng() % 3 == 0) {
      o.limits.max_line = rng() % 24;
      o.limits.max_event = rng() % 40;
    }
    sselog::Outcome whole = sselog::parse_whole(s, o);
    std::vector<std::size_t> cuts;
    for (std::size_t at = 0; at <= s.size(); at += rng() % 5) {
      cuts.push_back(at);
      if (rng() % 4 == 0) cuts.push_back(at);  // empty chunks too
    }
    INFO("input: " << sselog::quote(s));
    CHECK(whole.consistent);
    CHECK(sselog::parse_cuts(s, cuts, o) == whole);
    CHECK(sselog::parse_bytewise(s, o) == whole);
    CHECK(sselog::parse_pull(s, cuts, o) == whole);
    for (const auto& e : whole.log) {
      if (e.rfind("event", 0) == 0) ++with_events;
      if (e.rfind("error", 0) == 0) ++with_errors;
    }
  }
  CHECK(with_events > 500);   // the generator does produce events ...
  CHECK(with_errors > 100);   // ... and limit errors
}

namespace {
// The Encoding Standard's UTF-8 decoder, written as literally as the spec states it.
std::string reference_decode(const std::string& in) {
  std::string out;
  unsigned needed = 0, seen = 0, lower = 0x80, upper = 0xBF;
  std::uint32_t cp = 0;
  auto emit = [&](std::uint32_t c) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  };
  std::size_t i = 0;
  while (i < in.size()) {
    unsigned b = static_cast<unsigned char>(in[i]);
    if (needed == 0) {
      ++i;
      if (b <= 0x7F) {
        emit(b);
      } else if (b >= 0xC2 && b <= 0xDF) {
        needed = 1;
        cp = b & 0x1F;
      } else if (b >= 0xE0 && b <= 0xEF) {
        if (b == 0xE0) lower = 0xA0;
        if (b == 0xED) upper = 0x9F;
        needed = 2;
        cp = b & 0xF;
      } else if (b >= 0xF0 && b <= 0xF4) {
        if (b == 0xF0) lower = 0x90;
        if (b == 0xF4) upper = 0x8F;
        needed = 3;
        cp = b & 0x7;
      } else {
        emit(0xFFFD);
      }
      continue;
    }
    if (b < lower || b > upper) {
      cp = needed = seen = 0;
      lower = 0x80;
      upper = 0xBF;
      emit(0xFFFD);  // the byte is not consumed: it is processed again
      continue;
    }
    ++i;
    lower = 0x80;
    upper = 0xBF;
    cp = (cp << 6) | (b & 0x3F);
    if (++seen == needed) {
      emit(cp);
      cp = needed = seen = 0;
    }
  }
  if (needed != 0) emit(0xFFFD);
  return out;
}
}  // namespace

TEST_CASE("UTF-8 replacement matches the Encoding Standard's decoder on random bytes") {
  std::mt19937 rng(99);
  static const unsigned char interesting[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0,
                                              0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xED,
                                              0xEE, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF};
  int invalid = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string in(rng() % 12, '\0');
    for (char& c : in) c = static_cast<char>(interesting[rng() % sizeof interesting]);
    std::string out(3 * in.size(), '\0');
    out.resize(ssepp::detail::utf8_replace(in.data(), in.size(), out.data()));
    std::string expected = reference_decode(in);
    INFO(sselog::quote(in));
    REQUIRE(out == expected);
    bool valid = ssepp::detail::utf8_valid(in.data(), in.size());
    CHECK(valid == (expected == in));
    if (!valid) ++invalid;
  }
  CHECK(invalid > 1000);
}

TEST_CASE("line-end scanning: SIMD and portable masks agree with a byte loop") {
  std::mt19937 rng(5);
  static const char bytes[] = {'\n', '\r', 'a', ' ', '\0', '\x0B', '\x0C', '\x8A', '\x8D', ':'};
  for (int iter = 0; iter < 5000; ++iter) {
    char block[64];
    for (char& c : block) c = bytes[rng() % sizeof bytes];
    std::uint64_t expected = 0;
    for (unsigned i = 0; i < 64; ++i)
      if (block[i] == '\n' || block[i] == '\r') expected |= std::uint64_t{1} << i;
    REQUIRE(ssepp::detail::line_end_mask_swar(block) == expected);
#if SSEPP_PARSER_SSE2
    REQUIRE(ssepp::detail::line_end_mask_sse2(block) == expected);
#endif
    // Fewer than 64 bytes: nothing at or past the end is reported.
    std::size_t n = rng() % 65;
    std::uint64_t low = n == 64 ? expected : expected & ((std::uint64_t{1} << n) - 1);
    REQUIRE(ssepp::detail::line_end_mask(block, block + n) == low);
  }
}

TEST_CASE("line-end scanning: the scanner visits every CR and LF in order") {
  std::mt19937 rng(6);
  for (int iter = 0; iter < 300; ++iter) {
    std::string s(rng() % 700, 'x');
    for (char& c : s) {
      auto r = static_cast<unsigned>(rng() % 100);
      c = r < 3 ? '\n' : r < 5 ? '\r' : static_cast<char>('a' + r % 26);
    }
    std::vector<std::size_t> expected, got;
    for (std::size_t i = 0; i < s.size(); ++i)
      if (s[i] == '\n' || s[i] == '\r') expected.push_back(i);
    ssepp::detail::LineEndScanner scan;
    const char* end = s.data() + s.size();
    scan.start(s.data(), end);
    for (const char* p = s.data();;) {
      const char* hit = scan.first(p);
      if (hit == end) break;
      got.push_back(static_cast<std::size_t>(hit - s.data()));
      p = hit + 1;
      // Sometimes also step over a following plain byte, as a parser does after a CR's LF.
      if (p != end && *p != '\n' && *p != '\r' && rng() % 2) ++p;
    }
    CHECK(got == expected);
  }
}

TEST_CASE("running out of memory is an exception the caller can catch, not a termination") {
  // The parser's buffers grow (within the limits): a failed allocation leaves through feed as
  // std::bad_alloc. Marking next() noexcept turned it into std::terminate.
  STATIC_REQUIRE_FALSE(noexcept(std::declval<ssepp::Parser&>().next()));
  STATIC_REQUIRE_FALSE(noexcept(std::declval<ssepp::Parser&>().input(std::string_view())));
  ssepp::Parser parser;
  std::vector<std::string> got;
  auto record = [&](const ssepp::EventView& e) { got.emplace_back(e.data); };
  const std::string line = "data: " + std::string(200, 'x');  // no line end: kept for later
  g_fail_allocations = 1;
  CHECK_THROWS_AS(parser.feed(line, record), std::bad_alloc);
  g_fail_allocations = 0;
  // A handler throws while the event it was given still views the chunk: unwinding, the feed
  // loop copies that data out of the chunk. If the copy fails for want of memory too, the parser
  // must drop it, not terminate (the copy runs in a destructor), and stay usable.
  {
    ssepp::Parser p2;
    auto thrower = [&](const ssepp::EventView&) {
      std::runtime_error boom("boom");  // allocated before the failure is armed
      g_fail_allocations = 1;
      throw boom;
    };
    CHECK_THROWS_AS(p2.feed("data: a\n\ndata: abandoned with the chunk\n", thrower),
                    std::runtime_error);
    g_fail_allocations = 0;
    std::vector<std::string> rest;
    CHECK(p2.feed("\ndata: next\n\n",
                  [&](const ssepp::EventView& e) { rest.emplace_back(e.data); }));
    CHECK(rest == std::vector<std::string>{"next"});
  }
  parser.reset();
  CHECK(parser.feed("data: after\n\n", record));
  CHECK(got == std::vector<std::string>{"after"});
}

TEST_CASE("to_string names the parser's enumerators") {
  STATIC_REQUIRE(ssepp::to_string(ssepp::Parsed::need_more) == "need_more");
  CHECK(ssepp::to_string(ssepp::Parsed::event) == "event");
  CHECK(ssepp::to_string(ssepp::Parsed::comment) == "comment");
  CHECK(ssepp::to_string(ssepp::Parsed::retry) == "retry");
  CHECK(ssepp::to_string(ssepp::Parsed::error) == "error");
  CHECK(ssepp::to_string(static_cast<ssepp::Parsed>(99)).empty());
  STATIC_REQUIRE(ssepp::to_string(ssepp::Utf8::pass_through) == "pass_through");
  CHECK(ssepp::to_string(ssepp::Utf8::replace) == "replace");
  CHECK(ssepp::to_string(static_cast<ssepp::Utf8>(99)).empty());
}

TEST_CASE("EventView::id_field tells an event's own id from an inherited one") {
  ssepp::Parser parser;
  std::vector<std::string> got;
  auto record = [&](const ssepp::EventView& e) {
    got.push_back(std::string(e.data) + "|" + std::string(e.id) + "|" + (e.id_field ? "own" : "-"));
  };
  CHECK(parser.feed("data: a\n\nid: 1\ndata: b\n\ndata: c\n\ndata: d\nid:\n\n"
                    "id: 2\n\ndata: e\n\ndata: f\nid: 3\n\n",
                    record));
  CHECK(got == std::vector<std::string>{"a||-", "b|1|own", "c|1|-", "d||own", "e|2|-", "f|3|own"});
  // Split anywhere, the same.
  const std::string stream = "id: 7\ndata: x\n\ndata: y\n\n";
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    ssepp::Parser p;
    got.clear();
    CHECK(p.feed(std::string_view(stream).substr(0, cut), record));
    CHECK(p.feed(std::string_view(stream).substr(cut), record));
    CHECK(got == std::vector<std::string>{"x|7|own", "y|7|-"});
  }
}

TEST_CASE("finish takes no handler: nothing is dispatched at end of stream") {
  // An unfinished event, even one whose data line is complete, is dropped (WHATWG: "once the end
  // of the file is reached, any pending data must be discarded").
  ssepp::Parser parser;
  int events = 0;
  CHECK(parser.feed("data: complete line\n", [&](const ssepp::EventView&) { ++events; }));
  CHECK(parser.finish());
  CHECK(events == 0);
  // A blank line of the next stream dispatches nothing either.
  CHECK(parser.feed("\n", [&](const ssepp::EventView&) { ++events; }));
  CHECK(events == 0);
}
