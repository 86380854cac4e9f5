// libFuzzer target for ssepp::Parser. Input: one options byte, one chunking byte, then the stream.
// Checks: no crash or sanitizer report; every event within the limits; buffer memory within the
// documented bound; the same output whole, in seeded random chunks, byte by byte (a second parser
// instance) and through the pull face.
#include <ssepp/parser.hpp>

#include "../conformance/event_log.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "fuzz_parser: invariant violated: %s\n", what);
  std::abort();
}

ssepp::ParserOptions options_from(std::uint8_t b) {
  ssepp::ParserOptions o;
  if (b & 1) o.utf8 = ssepp::Utf8::replace;
  if (b & 2) {  // small limits, so that the error paths are reached
    o.limits.max_line = (b >> 2) & 0x1F;
    o.limits.max_event = static_cast<std::size_t>((b >> 4) & 0xF) * 4;
  }
  return o;
}

/// Records like sselog::Recorder and checks each event against the limits.
struct Checker {
  ssepp::ParserOptions o;
  std::vector<std::string> log;
  void on_event(const ssepp::EventView& e) {
    std::size_t widen = o.utf8 == ssepp::Utf8::replace ? 3 : 1;
    if (e.data.size() > o.limits.max_event) violated("event data beyond max_event");
    // The default type "message" is the parser's, not a line of the stream: no limit applies.
    if (e.type != "message" && e.type.size() > widen * o.limits.max_line)
      violated("event type beyond max_line");
    if (e.id.size() > widen * o.limits.max_line) violated("event id beyond max_line");
    if (e.type.empty()) violated("empty event type (must be \"message\")");
    if (e.id.find('\0') != std::string_view::npos) violated("id with NUL");
    log.push_back(sselog::ev(e.type, e.data, e.id));
  }
  void on_comment(std::string_view c) {
    std::size_t widen = o.utf8 == ssepp::Utf8::replace ? 3 : 1;
    if (c.size() > widen * o.limits.max_line) violated("comment beyond max_line");
    if (c.find_first_of("\r\n") != std::string_view::npos) violated("line break in a comment");
    log.push_back(sselog::comment(c));
  }
  void on_retry(std::chrono::milliseconds ms) {
    if (ms.count() < 0) violated("negative retry");
    log.push_back(sselog::retry(ms.count()));
  }
};

sselog::Outcome run(std::string_view stream, const std::vector<std::size_t>& cuts,
                    const ssepp::ParserOptions& o) {
  ssepp::Parser parser(o);
  Checker check{o, {}};
  const std::size_t widen = o.utf8 == ssepp::Utf8::replace ? 13 : 4;
  const std::size_t bound = o.limits.max_event + widen * o.limits.max_line + 6 * 64;
  std::error_code first;
  std::size_t from = 0;
  auto feed = [&](std::size_t to) {
    std::string chunk(stream.substr(from, to - from));  // own copy: dies after the feed
    from = to;
    std::error_code ec = parser.feed(chunk, check).error();
    if (first && ec != first) violated("error not sticky");
    if (ec && !first) {
      first = ec;
      check.log.push_back(sselog::error(static_cast<ssepp::errc>(ec.value())));
    }
    if (parser.buffer_capacity() > bound) violated("buffer memory beyond the bound");
  };
  for (std::size_t cut : cuts) feed(cut);
  feed(stream.size());
  if (parser.finish().error() != first) violated("finish does not report the sticky error");
  sselog::Outcome out;
  out.log = std::move(check.log);
  out.last_event_id = std::string(parser.last_event_id());
  out.retry = parser.retry() ? static_cast<long long>(parser.retry()->count()) : -1;
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const ssepp::ParserOptions o = options_from(data[0]);
  std::uint32_t seed = data[1];
  std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);

  sselog::Outcome whole = run(stream, {}, o);

  std::vector<std::size_t> random_cuts;
  for (std::size_t at = 0; at < stream.size();) {
    seed = seed * 1103515245u + 12345u;
    at += (seed >> 16) % 9;  // 0 gives an empty chunk
    if (at <= stream.size()) random_cuts.push_back(at);
  }
  if (!(run(stream, random_cuts, o) == whole)) violated("random chunks differ from whole");

  std::vector<std::size_t> bytewise;
  for (std::size_t i = 1; i < stream.size(); ++i) bytewise.push_back(i);
  if (!(run(stream, bytewise, o) == whole)) violated("byte by byte differs from whole");

  if (!(sselog::parse_pull(stream, random_cuts, o) == whole)) violated("pull face differs");
  return 0;
}
