// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// A strict reader for one JSON object's top-level members, for the Redis Pub/Sub interop messages
// (the library depends on fmt only, so it cannot take a JSON library). String values are decoded
// (escapes, \uXXXX with surrogate pairs, to UTF-8); any other value is kept as its raw JSON text.
// Input is untrusted: nesting is bounded and every error is reported, never thrown.
#pragma once

#include <ssepp/config.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

SSEPP_BEGIN_NAMESPACE
namespace detail {

struct JsonMember {
  std::string key;
  std::string value;  ///< decoded string, or the raw JSON text of a non-string value
  bool is_string = false;
  bool is_null = false;
};

class JsonReader {
 public:
  explicit JsonReader(std::string_view text) noexcept : s_(text) {}

  /// Reads `{ "k": v, ... }` (and nothing after it but whitespace) into out.
  bool object(std::vector<JsonMember>& out, std::string& error) {
    out.clear();
    skip_ws();
    if (!eat('{')) return fail(error, "expected a JSON object");
    skip_ws();
    if (eat('}')) return end(error);
    for (;;) {
      JsonMember m;
      skip_ws();
      if (peek() != '"' || !string(m.key)) return fail(error, "expected a string key");
      skip_ws();
      if (!eat(':')) return fail(error, "expected ':' after a key");
      skip_ws();
      if (peek() == '"') {
        if (!string(m.value)) return fail(error, "invalid string");
        m.is_string = true;
      } else {
        std::size_t start = i_;
        if (!value(0)) return fail(error, "invalid value");
        m.value.assign(s_.substr(start, i_ - start));
        m.is_null = m.value == "null";
      }
      out.push_back(std::move(m));
      skip_ws();
      if (eat(',')) continue;
      if (eat('}')) return end(error);
      return fail(error, "expected ',' or '}'");
    }
  }

 private:
  static constexpr int max_depth = 32;

  char peek() const noexcept { return i_ < s_.size() ? s_[i_] : '\0'; }
  bool eat(char c) noexcept {
    if (peek() != c || i_ >= s_.size()) return false;
    ++i_;
    return true;
  }
  void skip_ws() noexcept {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  bool fail(std::string& error, const char* what) {
    error = std::string(what) + " at offset " + std::to_string(i_);
    return false;
  }
  bool end(std::string& error) {
    skip_ws();
    if (i_ != s_.size()) return fail(error, "unexpected text after the object");
    return true;
  }

  static int hex(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool hex4(std::uint32_t& v) noexcept {
    if (s_.size() - i_ < 4) return false;
    v = 0;
    for (int k = 0; k < 4; ++k) {
      int h = hex(s_[i_++]);
      if (h < 0) return false;
      v = v * 16 + static_cast<std::uint32_t>(h);
    }
    return true;
  }
  static void put_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // A string at i_ (which is '"'), decoded into out.
  bool string(std::string& out) {
    ++i_;
    out.clear();
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) return false;
      char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t lo = 0;
            if (s_.size() - i_ < 6 || s_[i_] != '\\' || s_[i_ + 1] != 'u') return false;
            i_ += 2;
            if (!hex4(lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return false;
          }
          put_utf8(out, cp);
          break;
        }
        default: return false;
      }
    }
    return false;
  }

  bool literal(std::string_view word) noexcept {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  bool number() noexcept {
    std::size_t start = i_;
    eat('-');
    if (eat('0')) {
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') ++i_;
    } else {
      return false;
    }
    if (eat('.')) {
      if (!(peek() >= '0' && peek() <= '9')) return false;
      while (peek() >= '0' && peek() <= '9') ++i_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (!(peek() >= '0' && peek() <= '9')) return false;
      while (peek() >= '0' && peek() <= '9') ++i_;
    }
    return i_ > start;
  }

  // Any JSON value at i_ (validated, skipped).
  bool value(int depth) {
    if (depth > max_depth) return false;
    skip_ws();
    char c = peek();
    if (c == '"') {
      std::string ignored;
      return string(ignored);
    }
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++i_;
      skip_ws();
      if (eat(close)) return true;
      for (;;) {
        skip_ws();
        if (c == '{') {
          std::string key;
          if (peek() != '"' || !string(key)) return false;
          skip_ws();
          if (!eat(':')) return false;
        }
        if (!value(depth + 1)) return false;
        skip_ws();
        if (eat(',')) continue;
        return eat(close);
      }
    }
    if (c == 't') return literal("true");
    if (c == 'f') return literal("false");
    if (c == 'n') return literal("null");
    return number();
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

/// The member named key, or nullptr.
inline const JsonMember* json_find(const std::vector<JsonMember>& members, std::string_view key) {
  for (const auto& m : members)
    if (m.key == key) return &m;
  return nullptr;
}

}  // namespace detail
SSEPP_END_NAMESPACE
