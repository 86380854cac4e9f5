// Deterministic SSE corpora for the parser benchmarks: the same bytes on every machine and run
// (own PRNG, no std distributions). Four shapes:
//   json       id + data (a 150–250-byte JSON object); every fourth event also has a type
//   llm        LLM token stream, OpenAI style: one `data:` line per token, 60–90-byte events,
//              ending with `data: [DONE]`
//   multiline  2–8 data lines of 20–100 bytes per event, typed, some ids, keep-alive comments
//   crlf       the json shape with CRLF line ends
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace corpus {

/// splitmix64: tiny, fast, and specified, so corpora are byte-identical everywhere.
struct Rng {
  std::uint64_t s;
  explicit Rng(std::uint64_t seed) : s(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform-enough integer in [lo, hi].
  std::size_t between(std::size_t lo, std::size_t hi) {
    return lo + static_cast<std::size_t>(next() % (hi - lo + 1));
  }
};

inline void append_word(std::string& s, Rng& rng, std::size_t max) {
  static const char letters[] = "abcdefghijklmnopqrstuvwxyz";
  std::size_t n = rng.between(1, max);
  for (std::size_t i = 0; i < n; ++i) s += letters[rng.next() % 26];
}

/// A JSON object of exactly `size` bytes (size >= 40).
inline std::string json_object(Rng& rng, std::size_t size, std::uint64_t seq) {
  std::string s = "{\"seq\":" + std::to_string(seq) + ",\"symbol\":\"";
  append_word(s, rng, 4);
  s += "\",\"price\":" + std::to_string(rng.between(100, 99999)) + "." +
       std::to_string(rng.between(10, 99)) + ",\"note\":\"";
  while (s.size() + 2 < size) {
    append_word(s, rng, 9);
    if (s.size() + 2 < size) s += ' ';
  }
  s.resize(size - 2);
  if (s.back() == ' ' || s.back() == '\\') s.back() = 'x';
  return s + "\"}";
}

inline std::string json_stream(std::size_t bytes, const char* eol = "\n") {
  Rng rng(0x5EED0001);
  std::string out;
  out.reserve(bytes + 512);
  for (std::uint64_t seq = 1; out.size() < bytes; ++seq) {
    if (seq % 4 == 0) out += std::string("event: update") + eol;
    out += "id: " + std::to_string(seq) + eol;
    out += "data: " + json_object(rng, rng.between(150, 250), seq) + eol + eol;
  }
  return out;
}

inline std::string llm_stream(std::size_t bytes) {
  Rng rng(0x5EED0002);
  std::string out;
  out.reserve(bytes + 512);
  // "data: " + {"choices":[{"index":0,"delta":{"content":"…"}}]} + "\n\n" = 56 + content bytes.
  while (out.size() < bytes) {
    std::size_t event = rng.between(60, 90);
    std::string content;
    while (content.size() < event - 56) {
      if (!content.empty()) content += ' ';
      append_word(content, rng, 7);
    }
    content.resize(event - 56);
    out += "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" + content + "\"}}]}\n\n";
  }
  out += "data: [DONE]\n\n";
  return out;
}

inline std::string multiline_stream(std::size_t bytes) {
  Rng rng(0x5EED0003);
  std::string out;
  out.reserve(bytes + 1024);
  for (std::uint64_t seq = 1; out.size() < bytes; ++seq) {
    if (seq % 16 == 0) out += ": keepalive\n";
    out += "event: log\n";
    if (seq % 3 == 0) out += "id: " + std::to_string(seq) + "\n";
    std::size_t lines = rng.between(2, 8);
    for (std::size_t l = 0; l < lines; ++l) {
      std::string line = "data: ";
      std::size_t len = rng.between(20, 100);
      while (line.size() < 6 + len) {
        append_word(line, rng, 8);
        line += ' ';
      }
      line.resize(6 + len);
      out += line + "\n";
    }
    out += "\n";
  }
  return out;
}

inline std::string crlf_stream(std::size_t bytes) { return json_stream(bytes, "\r\n"); }

struct Kind {
  const char* name;
  std::string (*make)(std::size_t bytes);
};

/// Every corpus shape, in a fixed order.
inline const std::vector<Kind>& kinds() {
  static const std::vector<Kind> k = {
      {"json", [](std::size_t n) { return json_stream(n); }},
      {"llm", llm_stream},
      {"multiline", multiline_stream},
      {"crlf", crlf_stream},
  };
  return k;
}

}  // namespace corpus
