// A deliberately simple, whole-stream reader of text/event-stream, written straight from the
// WHATWG "interpret an event stream" steps with no concern for speed. Tests use it as an
// independent oracle beside ssepp::Parser.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace reference {

struct Dispatched {
  std::string type;  // "message" when no event field
  std::string data;
  std::string last_event_id;
  bool operator==(const Dispatched& o) const {
    return type == o.type && data == o.data && last_event_id == o.last_event_id;
  }
};

struct Result {
  std::vector<Dispatched> events;
  std::vector<std::string> comments;
  std::optional<long long> retry;  // last valid retry value
};

inline Result parse(std::string s) {
  Result r;
  if (s.rfind("\xEF\xBB\xBF", 0) == 0) s.erase(0, 3);
  // Split into lines on CRLF, CR or LF; a final line with no terminator is not a line.
  std::vector<std::string> lines;
  std::string cur;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\r' || c == '\n') {
      lines.push_back(cur);
      cur.clear();
      if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else {
      cur += c;
    }
  }
  std::string data, type, last_id;
  for (const std::string& line : lines) {
    if (line.empty()) {
      if (!data.empty()) {
        data.pop_back();
        r.events.push_back({type.empty() ? "message" : type, data, last_id});
      }
      data.clear();
      type.clear();
      continue;
    }
    if (line[0] == ':') {
      r.comments.push_back(line.substr(1));
      continue;
    }
    std::string field = line, value;
    auto colon = line.find(':');
    if (colon != std::string::npos) {
      field = line.substr(0, colon);
      value = line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    }
    if (field == "event") {
      type = value;
    } else if (field == "data") {
      data += value;
      data += '\n';
    } else if (field == "id") {
      if (value.find('\0') == std::string::npos) last_id = value;
    } else if (field == "retry") {
      bool digits = !value.empty();
      for (char d : value) digits = digits && d >= '0' && d <= '9';
      if (digits) r.retry = std::stoll(value);
    }
  }
  return r;
}

}  // namespace reference
