// sse-encode: JSON Lines events on stdin -> text/event-stream on stdout.
//
//   {"event":"price","data":"{\"x\":1}","id":"7","retry":3000,"comment":"tick"}
//
// Every key is optional. "data" may be any JSON value (non-strings are written as compact JSON).
// A line with none of event/data/id is a control frame: its comment and/or retry, or a keep-alive
// (":") when it has neither. Blank input lines are skipped. The first invalid line (bad JSON, a
// newline in an event name, ...) stops the run: everything before it has been written, the message
// names the line on stderr, and the exit status is 1.
#include <ssepp/encoder.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <string>

namespace {

using nlohmann::json;

// A JSON string as is; any other JSON value as its compact text.
std::string as_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// Appends the frames for one input object to out, or returns why it cannot.
std::string encode_line(const json& obj, std::string& out) {
  if (!obj.is_object()) return "not a JSON object";
  for (auto& [key, value] : obj.items()) {
    (void)value;
    if (key != "event" && key != "data" && key != "id" && key != "retry" && key != "comment")
      return "unknown key \"" + key + "\"";
  }
  ssepp::Event ev;
  if (obj.contains("event")) {
    if (!obj["event"].is_string()) return "\"event\" must be a string";
    ev.type = obj["event"].get<std::string>();
  }
  if (obj.contains("data")) ev.data = as_text(obj["data"]);
  if (obj.contains("id")) ev.id = as_text(obj["id"]);
  if (obj.contains("comment")) {
    if (!obj["comment"].is_string()) return "\"comment\" must be a string";
    ev.comment = obj["comment"].get<std::string>();
  }
  if (obj.contains("retry")) {
    const json& r = obj["retry"];
    if (!r.is_number_integer() || r.get<long long>() < 0)
      return "\"retry\" must be a non-negative integer (milliseconds)";
    ev.retry = std::chrono::milliseconds(r.get<long long>());
  }

  if (obj.contains("event") || obj.contains("data") || obj.contains("id")) {
    if (auto done = ssepp::encode_to(out, ev); !done) return done.error().message();
  } else if (!obj.contains("comment") && !obj.contains("retry")) {
    ssepp::encode_comment_to(out, "");
  } else {
    if (obj.contains("comment")) ssepp::encode_comment_to(out, ev.comment);
    if (ev.retry) out += ssepp::encode_retry(*ev.retry);
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) {
    std::fprintf(stderr, "usage: %s < events.jsonl > stream.txt\n", argv[0]);
    return argc == 2 && (std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help") ? 0 : 2;
  }
  std::ios::sync_with_stdio(false);
  std::string line, out;
  for (long number = 1; std::getline(std::cin, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string error;
    json obj = json::parse(line, nullptr, false);
    if (obj.is_discarded())
      error = "invalid JSON";
    else
      error = encode_line(obj, out);
    if (!error.empty()) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      std::fflush(stdout);
      std::fprintf(stderr, "sse-encode: line %ld: %s\n", number, error.c_str());
      return 1;
    }
    if (out.size() >= 64 * 1024) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}
