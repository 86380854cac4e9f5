// ssepp-bench parse FILE [--chunk N]: parser throughput on one file (median of 5 runs, the file
// read excluded), as one JSON line {"bytes","events","data_bytes","seconds","mb_per_s",
// "cpu_seconds"}: seconds and mb_per_s in wall time, like the Node peer's figures, and the
// thread's CPU time beside them.
//
// ssepp-bench parse-compare [--size MB] [--chunk N]: for each corpus shape (json, llm, multiline,
// crlf; generated in memory), ssepp::Parser beside a naive getline-style parser and a memchr line
// count over the same bytes in the same chunks (the physical floor: every parser must at least
// find each line end), interleaved in the same run. One JSON line per figure.
//
// parse-compare times the running thread's CPU time: on an idle machine the same as wall time,
// and on a shared one not inflated by the time other processes hold the core.
#include <ssepp/parser.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#  include <time.h>
#endif

#include "bench.hpp"
#include "corpus.hpp"

namespace {

/// Seconds of CPU time used by this thread (wall time where that clock is missing).
double thread_seconds() {
#if defined(CLOCK_THREAD_CPUTIME_ID)
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
#else
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
#endif
}

/// Each contender in turn, `trials` times over (A B C A B C ...): their median seconds.
std::vector<double> interleaved_medians(int trials, const std::vector<std::function<void()>>& fs) {
  std::vector<std::vector<double>> t(fs.size());
  for (int i = 0; i < trials; ++i)
    for (std::size_t k = 0; k < fs.size(); ++k) {
      double a = thread_seconds();
      fs[k]();
      t[k].push_back(thread_seconds() - a);
    }
  std::vector<double> out;
  for (auto& v : t) {
    std::sort(v.begin(), v.end());
    out.push_back(v[v.size() / 2]);
  }
  return out;
}

struct Totals {
  std::size_t events = 0;
  std::size_t data_bytes = 0;
};

/// ssepp: the push face, one Parser per stream, 16 KiB chunks by default.
Totals parse_ssepp(std::string_view input, std::size_t chunk) {
  ssepp::Parser parser;
  Totals t;
  auto count = [&t](const ssepp::EventView& e) {
    ++t.events;
    t.data_bytes += e.data.size();
    bench::do_not_optimize(e.data.data());
  };
  for (std::size_t at = 0; at < input.size(); at += chunk) {
    if (!parser.feed(input.substr(at, chunk), count)) {
      std::fprintf(stderr, "ssepp-bench: parse error: %s\n", parser.error_message().c_str());
      std::exit(1);
    }
  }
  (void)parser.finish();
  return t;
}

/// The parser many projects hand-roll: append the chunk to a string, cut lines at '\n' with
/// find/substr, strip a trailing '\r', split fields with find(':'), build the event from
/// std::strings. (LF and CRLF only; a bare CR is not a line end to it.)
class NaiveParser {
 public:
  struct Event {
    std::string type, data, id;
  };
  template <class F>
  void feed(std::string_view chunk, F&& on_event) {
    pending_.append(chunk);
    std::size_t start = 0;
    for (;;) {
      std::size_t nl = pending_.find('\n', start);
      if (nl == std::string::npos) break;
      std::string line = pending_.substr(start, nl - start);
      start = nl + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) {
        if (has_data_) on_event(Event{type_.empty() ? "message" : type_, data_, id_});
        data_.clear();
        type_.clear();
        has_data_ = false;
        continue;
      }
      if (line[0] == ':') continue;
      std::size_t colon = line.find(':');
      std::string field = line.substr(0, colon);
      std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.erase(0, 1);
      if (field == "data") {
        if (has_data_) data_ += '\n';
        data_ += value;
        has_data_ = true;
      } else if (field == "event") {
        type_ = value;
      } else if (field == "id") {
        if (value.find('\0') == std::string::npos) id_ = value;
      } else if (field == "retry") {
        retry_ = std::atol(value.c_str());
      }
    }
    pending_.erase(0, start);
  }

 private:
  std::string pending_, data_, type_, id_;
  long retry_ = 0;
  bool has_data_ = false;
};

Totals parse_naive(std::string_view input, std::size_t chunk) {
  NaiveParser parser;
  Totals t;
  auto count = [&t](const NaiveParser::Event& e) {
    ++t.events;
    t.data_bytes += e.data.size();
    bench::do_not_optimize(e.data.data());
  };
  for (std::size_t at = 0; at < input.size(); at += chunk) parser.feed(input.substr(at, chunk), count);
  return t;
}

/// The floor: find every '\n' with memchr, chunk by chunk, and do nothing else.
std::size_t count_lines(std::string_view input, std::size_t chunk) {
  std::size_t lines = 0;
  for (std::size_t at = 0; at < input.size(); at += chunk) {
    std::string_view c = input.substr(at, chunk);
    const char* p = c.data();
    const char* end = p + c.size();
    while (const void* nl = std::memchr(p, '\n', static_cast<std::size_t>(end - p))) {
      ++lines;
      p = static_cast<const char*>(nl) + 1;
    }
  }
  return lines;
}

std::size_t chunk_option(const bench::Args& args) {
  long n = std::atol(bench::option(args, "--chunk", "16384").c_str());
  if (n <= 0) {
    std::fprintf(stderr, "ssepp-bench: --chunk must be a positive number of bytes\n");
    std::exit(2);
  }
  return static_cast<std::size_t>(n);
}

int run_parse(const bench::Args& args) {
  if (args.empty() || args[0].rfind("--", 0) == 0) {
    std::fprintf(stderr, "usage: ssepp-bench parse FILE [--chunk N]\n");
    return 2;
  }
  const std::size_t chunk = chunk_option(args);
  std::FILE* f = std::fopen(args[0].c_str(), "rb");
  if (f == nullptr) {
    std::fprintf(stderr, "ssepp-bench parse: cannot open %s\n", args[0].c_str());
    return 1;
  }
  std::string input;
  char buf[1 << 16];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) != 0;) input.append(buf, n);
  std::fclose(f);

  Totals totals;
  std::vector<double> wall, cpu;
  for (int run = 0; run < 5; ++run) {
    auto w = std::chrono::steady_clock::now();
    double c = thread_seconds();
    totals = parse_ssepp(input, chunk);
    cpu.push_back(thread_seconds() - c);
    wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - w).count());
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  const double seconds = wall[2];
  std::printf("{\"bytes\":%zu,\"events\":%zu,\"data_bytes\":%zu,\"seconds\":%.6g,\"mb_per_s\":%.6g,"
              "\"cpu_seconds\":%.6g}\n",
              input.size(), totals.events, totals.data_bytes, seconds,
              static_cast<double>(input.size()) / seconds / 1e6, cpu[2]);
  return 0;
}

int run_compare(const bench::Args& args) {
  const double mb = std::atof(bench::option(args, "--size", "32").c_str());
  if (!(mb > 0)) {
    std::fprintf(stderr, "ssepp-bench parse-compare: --size must be a positive number of MB\n");
    return 2;
  }
  const std::size_t chunk = chunk_option(args);
  for (const corpus::Kind& kind : corpus::kinds()) {
    const std::string input = kind.make(static_cast<std::size_t>(mb * 1e6));
    Totals ours, naive;
    std::size_t lines = 0;
    auto t = interleaved_medians(
        9, {[&] { ours = parse_ssepp(input, chunk); }, [&] { naive = parse_naive(input, chunk); },
            [&] { lines = count_lines(input, chunk); }});
    if (ours.events != naive.events || ours.data_bytes != naive.data_bytes || lines == 0) {
      std::fprintf(stderr, "ssepp-bench parse-compare: %s: parsers disagree (%zu/%zu events)\n",
                   kind.name, ours.events, naive.events);
      return 1;
    }
    const double size = static_cast<double>(input.size());
    const double mbps[3] = {size / t[0] / 1e6, size / t[1] / 1e6, size / t[2] / 1e6};
    const std::string name = std::string("parse/") + kind.name + "/ssepp";
    bench::print_figure(name, mbps[0], "MB/s", "naive getline parser", mbps[1]);
    bench::print_figure(name, mbps[0], "MB/s", "memchr line count (floor)", mbps[2]);
  }
  return 0;
}

bench::Register reg_parse("parse", "parse FILE [--chunk N]   parser MB/s on a file (median of 5)",
                          run_parse);
bench::Register reg_compare("parse-compare",
                            "parse-compare [--size MB] [--chunk N]   parser vs naive vs memchr floor",
                            run_compare);

}  // namespace
