// ssepp-bench compress [--mb N] [--sweep]: what per-stream compression (compress.hpp) buys and
// costs: bytes on the wire per event, plain vs gzip, at one event per flush and at ten; CPU ns per
// event compressing (thread CPU time, best of three); bytes zlib holds per active and per idle
// stream (counted through zlib's allocator hooks). --sweep adds every window / memory level pair, to show what the defaults give
// up against zlib's own (15, 8). Four streams:
//   json    corpus.hpp's json shape: its "note" is random letters, near incompressible
//   llm     corpus.hpp's llm shape: a minimal chunk, random-letter tokens
//   ticks   the demo's price feed as sent: event: price, an id, {"change","price","symbol"}
//   tokens  OpenAI chat.completion.chunk events as sent, English-word tokens
#include <ssepp/compress.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <time.h>

#include "bench.hpp"
#include "corpus.hpp"

namespace {

/// The corpus cut into events (each ending with its blank line).
std::vector<std::string_view> split_events(const std::string& stream) {
  std::vector<std::string_view> out;
  std::size_t from = 0;
  for (;;) {
    std::size_t end = stream.find("\n\n", from);
    if (end == std::string::npos) break;
    out.emplace_back(stream.data() + from, end + 2 - from);
    from = end + 2;
  }
  return out;
}

/// The demo's price ticks: eight symbols, a random walk, the demo's JSON (keys sorted).
std::string ticks_stream(std::size_t bytes) {
  static const char* const symbols[] = {"AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA", "META", "NFLX"};
  double prices[8] = {187.45, 402.1, 141.8, 178.25, 121.4, 248.5, 492.3, 612.7};
  corpus::Rng rng(0x5EED0010);
  std::string out;
  char buf[160];
  for (std::uint64_t seq = 1; out.size() < bytes; ++seq) {
    const std::size_t k = static_cast<std::size_t>(rng.next() % 8);
    const double before = prices[k];
    const double step = (static_cast<double>(rng.next() % 2001) - 1000.0) / 1000.0 * 0.004;
    prices[k] = static_cast<double>(static_cast<long long>(before * (1.0 + step) * 100.0 + 0.5)) / 100.0;
    const int n = std::snprintf(buf, sizeof buf,
                                "event: price\nid: %llu\ndata: {\"change\":%.2f,\"price\":%.2f,"
                                "\"symbol\":\"%s\"}\n\n",
                                static_cast<unsigned long long>(seq), prices[k] - before, prices[k],
                                symbols[k]);
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

/// OpenAI-style chat completion chunks, one token (an English word, with its space) per event.
std::string tokens_stream(std::size_t bytes) {
  static const char* const words[] = {
      "the", "of", "and", "to", "a", "in", "is", "it", "you", "that", "he", "was", "for", "on",
      "are", "with", "as", "I", "his", "they", "be", "at", "one", "have", "this", "from", "or",
      "had", "by", "word", "but", "what", "some", "we", "can", "out", "other", "were", "all",
      "there", "when", "up", "use", "your", "how", "said", "an", "each", "she", "which", "do",
      "their", "time", "if", "will", "way", "about", "many", "then", "them", "write", "would",
      "like", "so", "these", "her", "long", "make", "thing", "see", "him", "two", "has", "look",
      "more", "day", "could", "go", "come", "did", "number", "sound", "no", "most", "people",
      "my", "over", "know", "water", "than", "call", "first", "who", "may", "down", "side",
      "been", "now", "find", "stream", "server", "event", "client", "token", ".", ",", "\\n"};
  constexpr std::size_t nwords = sizeof words / sizeof words[0];
  corpus::Rng rng(0x5EED0011);
  std::string out;
  while (out.size() < bytes) {
    std::string tok = words[rng.next() % nwords];
    if (tok != "." && tok != "," && rng.next() % 8 != 0) tok = " " + tok;
    out += "data: {\"id\":\"chatcmpl-9fX2kQbZ7nLrT4wVcH1sYdE6uJ0aM\",\"object\":"
           "\"chat.completion.chunk\",\"created\":1733140123,\"model\":\"gpt-4o-mini-2024-07-18\","
           "\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":"
           "{\"content\":\"" + tok + "\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";
  }
  return out + "data: [DONE]\n\n";
}

/// This thread's CPU seconds: on a shared machine, wall time would count other processes' turns.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Run {
  double bytes_per_event = 0;  // compressed, header and trailer included
  double ns_per_event = 0;
  std::size_t active_bytes = 0;  // zlib's bytes while active
};

Run run(const std::vector<std::string_view>& events, std::size_t per_flush,
        ssepp::CompressorOptions opts, int repeats = 3) {
  Run r;
  std::string out;
  std::vector<std::string_view> batch;
  double best = 1e300;
  for (int rep = 0; rep < repeats; ++rep) {
    ssepp::Compressor c(ssepp::Encoding::gzip, opts);
    std::size_t wire = 0;
    const double a = cpu_seconds();
    for (std::size_t i = 0; i < events.size(); i += per_flush) {
      batch.assign(events.begin() + static_cast<std::ptrdiff_t>(i),
                   events.begin() + static_cast<std::ptrdiff_t>(std::min(events.size(), i + per_flush)));
      out.clear();
      auto n = c.compress_to(out, batch);
      if (!n) std::abort();
      wire += *n;
      if (c.memory() > r.active_bytes) r.active_bytes = c.memory();
    }
    out.clear();
    wire += c.end_to(out).value();
    best = std::min(best, cpu_seconds() - a);
    r.bytes_per_event = static_cast<double>(wire) / static_cast<double>(events.size());
  }
  r.ns_per_event = best * 1e9 / static_cast<double>(events.size());
  return r;
}

int cmd(const bench::Args& args) {
  const double mb = std::atof(bench::option(args, "--mb", "4").c_str());
  const auto bytes = static_cast<std::size_t>((mb > 0 ? mb : 4) * 1e6);
  const bool sweep = bench::has_flag(args, "--sweep");
  const ssepp::CompressorOptions defaults;
  ssepp::CompressorOptions zlib_defaults;
  zlib_defaults.window_bits = 15;
  zlib_defaults.mem_level = 8;

  for (const std::string name : {"json", "llm", "ticks", "tokens"}) {
    const std::string stream = name == "json"    ? corpus::json_stream(bytes)
                               : name == "llm"   ? corpus::llm_stream(bytes)
                               : name == "ticks" ? ticks_stream(bytes)
                                                 : tokens_stream(bytes);
    const auto events = split_events(stream);
    const double plain = static_cast<double>(stream.size()) / static_cast<double>(events.size());
    const std::string base = "compress/" + name;
    for (std::size_t per : {std::size_t{1}, std::size_t{10}}) {
      const std::string at = "/" + std::to_string(per) + " per flush";
      Run d = run(events, per, defaults);
      bench::print_figure(base + at + "/bytes per event", d.bytes_per_event, "B", "plain", plain);
      bench::print_figure(base + at + "/x smaller", plain / d.bytes_per_event, "x");
      bench::print_figure(base + at + "/cpu", d.ns_per_event, "ns/event");
      Run z = run(events, per, zlib_defaults);
      bench::print_figure(base + at + "/x smaller (zlib defaults w15 m8)", plain / z.bytes_per_event,
                          "x");
      bench::print_figure(base + at + "/cpu (zlib defaults w15 m8)", z.ns_per_event, "ns/event");
      ssepp::CompressorOptions fast = defaults;
      fast.level = 1;
      Run f = run(events, per, fast);
      bench::print_figure(base + at + "/x smaller (level 1)", plain / f.bytes_per_event, "x");
      bench::print_figure(base + at + "/cpu (level 1)", f.ns_per_event, "ns/event");
      ssepp::CompressorOptions stateless = defaults;
      stateless.release_after_batch = true;
      Run s = run(events, per, stateless);
      bench::print_figure(base + at + "/x smaller (release after every batch)",
                          plain / s.bytes_per_event, "x");
      bench::print_figure(base + at + "/cpu (release after every batch)", s.ns_per_event,
                          "ns/event");
      if (per == 1) {
        bench::print_figure(base + "/active stream memory", static_cast<double>(d.active_bytes) +
                                                                sizeof(ssepp::Compressor),
                            "B", "zlib defaults w15 m8",
                            static_cast<double>(z.active_bytes) + sizeof(ssepp::Compressor));
      }
    }
    // An idle stream: after some batches (history longer than what is kept), the deflater
    // given back. Beside the object itself, the stream holds only the kept history.
    {
      ssepp::Compressor c(ssepp::Encoding::gzip, defaults);
      std::string out;
      for (std::size_t i = 0; i < 50 && i < events.size(); ++i)
        (void)c.compress_to(out, events[i]).value();
      c.release();
      bench::print_figure(base + "/idle stream memory",
                          static_cast<double>(c.memory() + sizeof(ssepp::Compressor)), "B");
    }
    if (sweep) {
      for (int w = 9; w <= 15; ++w)
        for (int m = 1; m <= 9; ++m) {
          ssepp::CompressorOptions o;
          o.window_bits = w;
          o.mem_level = m;
          Run r1 = run(events, 1, o, 1);
          std::printf("{\"sweep\":\"%s\",\"window_bits\":%d,\"mem_level\":%d,\"x1\":%.3f,"
                      "\"active_bytes\":%zu,\"ns\":%.0f}\n",
                      name.c_str(), w, m, plain / r1.bytes_per_event, r1.active_bytes, r1.ns_per_event);
        }
    }
  }
  return 0;
}

bench::Register reg("compress",
                    "compress [--mb N] [--sweep]   gzip per stream: bytes/event, CPU, memory",
                    cmd);

}  // namespace
