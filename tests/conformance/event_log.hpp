// Parser output as a log of strings (one entry per event, comment, retry or error), so that a
// parse can be compared with an expected log, or with another parse of the same bytes split
// differently. Shared by the conformance suite, the unit tests and the fuzz target.
#pragma once

#include <ssepp/parser.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sselog {

/// C-style quoted form of bytes: printable ASCII as is, the rest escaped.
inline std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      default:
        if (u < 0x20 || u >= 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02X", u);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

inline std::string ev(std::string_view type, std::string_view data, std::string_view id = "") {
  return "event type=" + quote(type) + " data=" + quote(data) + " id=" + quote(id);
}
inline std::string retry(long long ms) { return "retry " + std::to_string(ms); }
inline std::string comment(std::string_view text) { return "comment " + quote(text); }
inline std::string error(ssepp::errc code) {
  switch (code) {
    case ssepp::errc::line_too_long: return "error line_too_long";
    case ssepp::errc::event_too_large: return "error event_too_large";
    default: return "error " + std::to_string(static_cast<int>(code));
  }
}

/// A handler that records everything.
struct Recorder {
  std::vector<std::string> log;
  void on_event(const ssepp::EventView& e) { log.push_back(ev(e.type, e.data, e.id)); }
  void on_comment(std::string_view c) { log.push_back(comment(c)); }
  void on_retry(std::chrono::milliseconds ms) { log.push_back(retry(ms.count())); }
};

/// Everything observable about one parse.
struct Outcome {
  std::vector<std::string> log;
  std::string last_event_id;
  long long retry = -1;
  bool consistent = true;  // every feed after an error returned that same error, finish too
  bool operator==(const Outcome& o) const {
    return log == o.log && last_event_id == o.last_event_id && retry == o.retry &&
           consistent == o.consistent;
  }
};

/// Parses input cut at the given offsets (ascending, each in [0, size]). Every chunk is a fresh
/// heap copy freed right after its feed, so a view kept past its chunk trips AddressSanitizer.
inline Outcome parse_cuts(std::string_view input, const std::vector<std::size_t>& cuts,
                          ssepp::ParserOptions options = {}) {
  ssepp::Parser parser(options);
  Recorder rec;
  Outcome out;
  std::error_code first;
  std::size_t from = 0;
  auto feed = [&](std::size_t to) {
    std::size_t n = to - from;
    std::unique_ptr<char[]> chunk(new char[n == 0 ? 1 : n]);
    if (n != 0) std::memcpy(chunk.get(), input.data() + from, n);
    std::error_code ec = parser.feed(std::string_view(chunk.get(), n), rec).error();
    if (first && ec != first) out.consistent = false;
    if (ec && !first) {
      first = ec;
      rec.log.push_back(error(static_cast<ssepp::errc>(ec.value())));
      if (parser.error() != ec || parser.error_message().empty()) out.consistent = false;
    }
    from = to;
  };
  for (std::size_t cut : cuts) feed(cut);
  feed(input.size());
  std::error_code fin = parser.finish().error();
  if (fin != first) out.consistent = false;
  out.log = std::move(rec.log);
  out.last_event_id = std::string(parser.last_event_id());
  out.retry = parser.retry() ? static_cast<long long>(parser.retry()->count()) : -1;
  return out;
}

inline Outcome parse_whole(std::string_view input, ssepp::ParserOptions options = {}) {
  return parse_cuts(input, {}, options);
}

inline Outcome parse_bytewise(std::string_view input, ssepp::ParserOptions options = {}) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < input.size(); ++i) cuts.push_back(i);
  return parse_cuts(input, cuts, options);
}

/// Parses with the pull face (input / next), chunked at the cuts; same log format.
inline Outcome parse_pull(std::string_view input, const std::vector<std::size_t>& cuts,
                          ssepp::ParserOptions options = {}) {
  ssepp::Parser parser(options);
  Outcome out;
  bool failed = false;
  std::size_t from = 0;
  auto feed = [&](std::size_t to) {
    std::string chunk(input.substr(from, to - from));
    from = to;
    parser.input(chunk);
    for (;;) {
      ssepp::Parsed what = parser.next();
      if (what == ssepp::Parsed::need_more) return;
      switch (what) {
        case ssepp::Parsed::event: {
          const ssepp::EventView& e = parser.event();
          out.log.push_back(ev(e.type, e.data, e.id));
          break;
        }
        case ssepp::Parsed::comment: out.log.push_back(comment(parser.comment())); break;
        case ssepp::Parsed::retry: out.log.push_back(retry(parser.retry()->count())); break;
        case ssepp::Parsed::error:
          if (!failed) out.log.push_back(error(static_cast<ssepp::errc>(parser.error().value())));
          failed = true;
          return;
        case ssepp::Parsed::need_more: return;
      }
    }
  };
  for (std::size_t cut : cuts) feed(cut);
  feed(input.size());
  if (!parser.finish() != failed) out.consistent = false;  // finish fails after an error
  out.last_event_id = std::string(parser.last_event_id());
  out.retry = parser.retry() ? static_cast<long long>(parser.retry()->count()) : -1;
  return out;
}

}  // namespace sselog
