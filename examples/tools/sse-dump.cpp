// sse-dump: reads an SSE stream (stdin or a file) and prints one JSON object per line, in stream
// order: {"event":"<type>","data":"<data>","id":"<last event id>"} for each dispatched event and
// {"retry":<ms>} for each valid retry field.
//
//   curl -N https://example.com/stream | sse-dump
//   sse-dump --chunk 1 capture.sse          # same output however the input is split
//
// Exit status: 0 at end of input, 1 on a parser limit or an I/O error (message on stderr),
// 2 on bad usage.
#include <ssepp/parser.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace {

const char* const usage =
    "usage: sse-dump [OPTIONS] [FILE]\n"
    "Reads an SSE stream from FILE (or stdin when FILE is absent or -) and prints one JSON\n"
    "object per line: {\"event\":…,\"data\":…,\"id\":…} per event, {\"retry\":ms} per retry field.\n"
    "  --chunk N               feed the parser N-byte pieces (default: whatever read() returns)\n"
    "  --replace-invalid-utf8  decode as a browser does: ill-formed UTF-8 becomes U+FFFD\n"
    "  --comments              also print {\"comment\":…} for comment lines\n"
    "  --max-line N            longest line accepted, bytes (default 1 MiB)\n"
    "  --max-event N           largest event data accepted, bytes (default 16 MiB)\n";

bool parse_size(const char* s, std::size_t& out) {
  if (*s == '\0') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || s[0] == '-') return false;
  out = static_cast<std::size_t>(v);
  return true;
}

// Output goes through one buffer, written after each chunk so a live stream shows up at once.
struct Printer {
  std::string out;
  bool comments = false;

  void line(const nlohmann::ordered_json& j) {
    // JSON is UTF-8: bytes that are not (possible in pass-through mode) print as U+FFFD.
    out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out += '\n';
  }
  void on_event(const ssepp::EventView& e) {
    nlohmann::ordered_json j;
    j["event"] = std::string(e.type);
    j["data"] = std::string(e.data);
    j["id"] = std::string(e.id);
    line(j);
  }
  void on_retry(std::chrono::milliseconds ms) {
    nlohmann::ordered_json j;
    j["retry"] = ms.count();
    line(j);
  }
  void on_comment(std::string_view text) {
    if (!comments) return;
    nlohmann::ordered_json j;
    j["comment"] = std::string(text);
    line(j);
  }
  bool flush() {
    bool ok = out.empty() || std::fwrite(out.data(), 1, out.size(), stdout) == out.size();
    out.clear();
    return std::fflush(stdout) == 0 && ok;
  }
};

}  // namespace

int main(int argc, char** argv) {
  ssepp::ParserOptions options;
  std::size_t chunk = 0;
  const char* path = nullptr;
  Printer printer;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::size_t& out) {
      if (i + 1 >= argc || !parse_size(argv[i + 1], out)) {
        std::fprintf(stderr, "sse-dump: %s needs a number\n%s", argv[i], usage);
        std::exit(2);
      }
      ++i;
    };
    if (a == "--chunk") {
      value(chunk);
      if (chunk == 0) {
        std::fprintf(stderr, "sse-dump: --chunk must be at least 1\n");
        return 2;
      }
    } else if (a == "--replace-invalid-utf8") {
      options.utf8 = ssepp::Utf8::replace;
    } else if (a == "--comments") {
      printer.comments = true;
    } else if (a == "--max-line") {
      value(options.limits.max_line);
    } else if (a == "--max-event") {
      value(options.limits.max_event);
    } else if (a == "-h" || a == "--help") {
      std::fputs(usage, stdout);
      return 0;
    } else if (a.size() > 1 && a[0] == '-' && a != "-") {
      std::fprintf(stderr, "sse-dump: unknown option %s\n%s", argv[i], usage);
      return 2;
    } else if (path != nullptr) {
      std::fprintf(stderr, "sse-dump: one input at most\n%s", usage);
      return 2;
    } else {
      path = argv[i];
    }
  }

  int fd = 0;
  if (path != nullptr && std::string_view(path) != "-") {
    fd = ::open(path, O_RDONLY);
    if (fd < 0) {
      std::fprintf(stderr, "sse-dump: cannot open %s: %s\n", path, std::strerror(errno));
      return 1;
    }
  }

  ssepp::Parser parser(options);
  std::vector<char> buf(chunk != 0 ? std::max<std::size_t>(chunk, 65536) : 65536);
  std::size_t held = 0;  // with --chunk: bytes read but not yet fed (less than one piece)
  auto fail = [&](std::error_code) {
    printer.flush();
    std::fprintf(stderr, "sse-dump: %s\n", parser.error_message().c_str());
    return 1;
  };
  for (;;) {
    ssize_t n = ::read(fd, buf.data() + held, buf.size() - held);
    if (n < 0) {
      if (errno == EINTR) continue;
      printer.flush();
      std::fprintf(stderr, "sse-dump: read error: %s\n", std::strerror(errno));
      return 1;
    }
    std::size_t avail = held + static_cast<std::size_t>(n);
    std::size_t piece = chunk != 0 ? chunk : avail;
    std::size_t at = 0;
    // Whole pieces now; the last partial piece waits for more input, or for the end.
    while (avail - at >= piece && piece != 0) {
      if (auto fed = parser.feed(std::string_view(buf.data() + at, piece), printer); !fed)
        return fail(fed.error());
      at += piece;
    }
    if (n == 0) {
      if (at < avail) {
        if (auto fed = parser.feed(std::string_view(buf.data() + at, avail - at), printer); !fed)
          return fail(fed.error());
      }
      if (auto done = parser.finish(); !done) return fail(done.error());
      if (!printer.flush()) {
        std::fprintf(stderr, "sse-dump: write error\n");
        return 1;
      }
      return 0;
    }
    held = avail - at;
    if (held != 0) std::memmove(buf.data(), buf.data() + at, held);
    if (!printer.flush()) {
      std::fprintf(stderr, "sse-dump: write error\n");
      return 1;
    }
  }
}
