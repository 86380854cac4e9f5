// ssepp-bench compress [--mb N] [--sweep]: what per-stream compression (compress.hpp) buys and
// costs on the json ticker and LLM token corpora: bytes on the wire per event, plain vs gzip, at
// one event per flush and at ten; CPU ns per event compressing; bytes zlib holds per active and
// per idle stream (counted through zlib's allocator hooks). --sweep adds every window / memory
// level pair, to show what the defaults give up against zlib's own (15, 8).
#include <ssepp/compress.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

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
    auto a = std::chrono::steady_clock::now();
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
    auto b = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(b - a).count());
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

  for (const char* name : {"json", "llm"}) {
    const std::string stream = std::string(name) == "json" ? corpus::json_stream(bytes)
                                                           : corpus::llm_stream(bytes);
    const auto events = split_events(stream);
    const double plain = static_cast<double>(stream.size()) / static_cast<double>(events.size());
    const std::string base = std::string("compress ") + name;
    for (std::size_t per : {std::size_t{1}, std::size_t{10}}) {
      const std::string at = " " + std::to_string(per) + "/flush";
      Run d = run(events, per, defaults);
      bench::print_figure(base + at + " bytes/event", d.bytes_per_event, "B", "plain", plain);
      bench::print_figure(base + at + " x smaller", plain / d.bytes_per_event, "x");
      bench::print_figure(base + at + " cpu", d.ns_per_event, "ns/event");
      Run z = run(events, per, zlib_defaults);
      bench::print_figure(base + at + " x smaller (zlib defaults 15/8)", plain / z.bytes_per_event,
                          "x");
      bench::print_figure(base + at + " cpu (zlib defaults 15/8)", z.ns_per_event, "ns/event");
      ssepp::CompressorOptions stateless = defaults;
      stateless.release_after_batch = true;
      Run s = run(events, per, stateless);
      bench::print_figure(base + at + " x smaller (release after every batch)",
                          plain / s.bytes_per_event, "x");
      bench::print_figure(base + at + " cpu (release after every batch)", s.ns_per_event,
                          "ns/event");
      if (per == 1) {
        bench::print_figure(base + " active stream memory", static_cast<double>(d.active_bytes) +
                                                                sizeof(ssepp::Compressor),
                            "B", "zlib defaults 15/8",
                            static_cast<double>(z.active_bytes) + sizeof(ssepp::Compressor));
      }
    }
    // An idle stream: after a batch, the deflater given back.
    {
      ssepp::Compressor c(ssepp::Encoding::gzip, defaults);
      std::string out;
      (void)c.compress_to(out, events[0]).value();
      c.release();
      bench::print_figure(base + " idle stream memory",
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
                      name, w, m, plain / r1.bytes_per_event, r1.active_bytes, r1.ns_per_event);
        }
    }
  }
  return 0;
}

bench::Register reg("compress",
                    "compress [--mb N] [--sweep]   gzip per stream: bytes/event, CPU, memory",
                    cmd);

}  // namespace
