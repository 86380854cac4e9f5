// ssepp-bench encode [--quick]: encoder throughput (MB/s of output) for three event shapes, beside
// a naive std::ostringstream encoder and a plain append of the fields with no validation and no
// line splitting (the floor), all in the same run on the same events; then the `format` rows.
// ssepp-bench format [--quick]: just the format rows, frames/s of format_frame (data formatted
// into the frame's one allocation) beside fmt::format + Frame::from_event on the same JSON ticks.
#include <ssepp/encoder.hpp>
#include <ssepp/format.hpp>

#include <fmt/compile.h>
#include <fmt/format.h>

#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench.hpp"

namespace {

// The classic hand-rolled encoder: a stream per event, data split on '\n' only.
std::string naive_encode(const ssepp::Event& ev) {
  std::ostringstream os;
  if (!ev.type.empty()) os << "event: " << ev.type << "\n";
  if (ev.id) os << "id: " << *ev.id << "\n";
  std::istringstream lines(ev.data);
  std::string line;
  while (std::getline(lines, line)) os << "data: " << line << "\n";
  os << "\n";
  return os.str();
}

// The floor: the fields appended as they are (unsafe: no validation, no splitting).
void floor_encode(std::string& out, const ssepp::Event& ev) {
  if (!ev.type.empty()) {
    out.append("event: ", 7);
    out.append(ev.type);
    out.push_back('\n');
  }
  if (ev.id) {
    out.append("id: ", 4);
    out.append(*ev.id);
    out.push_back('\n');
  }
  out.append("data: ", 6);
  out.append(ev.data);
  out.append("\n\n", 2);
}

std::string random_json(std::mt19937& rng, std::size_t size) {
  static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s = "{\"symbol\":\"";
  while (s.size() + 2 < size) {
    s += chars[rng() % (sizeof(chars) - 1)];
    if (s.size() % 23 == 0) s += "\",\"k\":\"";
  }
  return s + "\"}";
}

struct Shape {
  const char* name;
  std::vector<ssepp::Event> events;
};

std::vector<Shape> shapes() {
  std::mt19937 rng(7);
  std::vector<Shape> out;
  Shape json{"json150", {}}, multi{"multiline2k", {}}, tiny{"tiny20", {}};
  for (int i = 0; i < 512; ++i) {
    json.events.push_back(ssepp::Event{}.with_type("price").with_id(std::to_string(100000 + i))
                              .with_data(random_json(rng, 150)));
    std::string m;
    while (m.size() < 2048) m += random_json(rng, 60 + rng() % 40) + "\n";
    multi.events.push_back(ssepp::Event{}.with_type("log").with_id(std::to_string(i)).with_data(m));
    tiny.events.push_back(ssepp::Event{}.with_data(random_json(rng, 20)));
  }
  out.push_back(std::move(json));
  out.push_back(std::move(multi));
  out.push_back(std::move(tiny));
  return out;
}

/// A price tick, formatted as JSON into the event's data.
struct Tick {
  std::string sym;
  double px;
  int qty;
  long long ts;
  std::string id;
};

std::vector<Tick> ticks() {
  static const char* const syms[] = {"ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI", "STARK"};
  std::mt19937 rng(3);
  std::vector<Tick> out;
  for (int i = 0; i < 512; ++i)
    out.push_back({syms[rng() % 6], static_cast<double>(rng() % 1000000) / 100.0,
                   static_cast<int>(rng() % 5000), 1764700000000LL + i,
                   std::to_string(100000 + i)});
  return out;
}

// format_frame against the usual two steps, fmt::format then encode, on the same ticks.
int run_format(const bench::Args& args) {
  const bool quick = bench::has_flag(args, "--quick");
  const std::vector<Tick> ts = ticks();
  auto formatted = [&ts] {
    std::size_t n = 0;
    for (const Tick& t : ts) {
      ssepp::Frame f = ssepp::format_frame({"price", t.id},
                                           "{{\"sym\":\"{}\",\"px\":{},\"qty\":{},\"ts\":{}}}",
                                           t.sym, t.px, t.qty, t.ts);
      bench::do_not_optimize(f.data());
      n += f.size();
    }
    return n;
  };
  auto two_steps = [&ts] {
    std::size_t n = 0;
    for (const Tick& t : ts) {
      ssepp::Frame f = ssepp::Frame::from_event(
          ssepp::Event{}.with_type("price").with_id(t.id).with_data(
              fmt::format("{{\"sym\":\"{}\",\"px\":{},\"qty\":{},\"ts\":{}}}", t.sym, t.px,
                          t.qty, t.ts)));
      bench::do_not_optimize(f.data());
      n += f.size();
    }
    return n;
  };
  // The same two with a format string compiled by FMT_COMPILE (no run-time parsing).
  auto formatted_compiled = [&ts] {
    std::size_t n = 0;
    for (const Tick& t : ts) {
      ssepp::Frame f = ssepp::format_frame(
          {"price", t.id}, FMT_COMPILE("{{\"sym\":\"{}\",\"px\":{},\"qty\":{},\"ts\":{}}}"), t.sym,
          t.px, t.qty, t.ts);
      bench::do_not_optimize(f.data());
      n += f.size();
    }
    return n;
  };
  auto two_steps_compiled = [&ts] {
    std::size_t n = 0;
    for (const Tick& t : ts) {
      ssepp::Frame f = ssepp::Frame::from_event(
          ssepp::Event{}.with_type("price").with_id(t.id).with_data(
              fmt::format(FMT_COMPILE("{{\"sym\":\"{}\",\"px\":{},\"qty\":{},\"ts\":{}}}"), t.sym,
                          t.px, t.qty, t.ts)));
      bench::do_not_optimize(f.data());
      n += f.size();
    }
    return n;
  };
  // The floor: the same formatting into a stack buffer, no frame at all.
  auto format_only = [&ts] {
    std::size_t n = 0;
    for (const Tick& t : ts) {
      fmt::memory_buffer b;
      fmt::format_to(fmt::appender(b), "{{\"sym\":\"{}\",\"px\":{},\"qty\":{},\"ts\":{}}}", t.sym,
                     t.px, t.qty, t.ts);
      bench::do_not_optimize(b.data());
      n += b.size();
    }
    return n;
  };
  if (formatted() != two_steps() || formatted_compiled() != two_steps_compiled() ||
      formatted() != formatted_compiled()) {
    std::fprintf(stderr, "format: the two contenders disagree\n");
    return 1;
  }
  const int rounds = quick ? 40 : 400;
  auto trial = [rounds](auto& f) {
    return [&f, rounds] {
      for (int i = 0; i < rounds; ++i) bench::do_not_optimize(f());
    };
  };
  auto t = bench::interleaved_medians(quick ? 7 : 21,
                                      {trial(formatted), trial(two_steps), trial(format_only),
                                       trial(formatted_compiled), trial(two_steps_compiled)});
  const double frames = static_cast<double>(rounds) * static_cast<double>(ts.size());
  bench::print_figure("encode/json_tick/format_frame", frames / t[0], "frames/s",
                      "fmt::format + encode", frames / t[1]);
  bench::print_figure("encode/json_tick/format_frame", frames / t[0], "frames/s",
                      "fmt::format_to a stack buffer, no frame (floor)", frames / t[2]);
  bench::print_figure("encode/json_tick/format_frame_compiled", frames / t[3], "frames/s",
                      "fmt::format + encode, both FMT_COMPILE", frames / t[4]);
  return 0;
}

int run(const bench::Args& args) {
  const bool quick = bench::has_flag(args, "--quick");
  std::string buf;
  buf.reserve(1 << 20);
  // Each contender encodes every event once per call and returns the bytes it produced.
  auto into_buffer = [&](auto encode_one) {
    return [&buf, encode_one](const std::vector<ssepp::Event>& evs) {
      std::size_t n = 0;
      for (const auto& ev : evs) {
        if (buf.size() > (1 << 19)) {
          n += buf.size();
          buf.clear();
        }
        encode_one(buf, ev);
      }
      n += buf.size();
      buf.clear();
      return n;
    };
  };
  auto ours = into_buffer([](std::string& b, const ssepp::Event& ev) { (void)ssepp::encode_to(b, ev); });
  auto floor = into_buffer([](std::string& b, const ssepp::Event& ev) { floor_encode(b, ev); });
  auto frames = [](const std::vector<ssepp::Event>& evs) {
    std::size_t n = 0;
    for (const auto& ev : evs) {
      ssepp::Frame f = ssepp::Frame::from_event(ev);
      bench::do_not_optimize(f.data());
      n += f.size();
    }
    return n;
  };
  auto naive = [](const std::vector<ssepp::Event>& evs) {
    std::size_t n = 0;
    for (const auto& ev : evs) {
      std::string s = naive_encode(ev);
      bench::do_not_optimize(s.data());
      n += s.size();
    }
    return n;
  };

  for (const Shape& shape : shapes()) {
    std::size_t per_round = 0;
    for (const auto& ev : shape.events) per_round += ssepp::encode(ev).size();
    const int rounds = static_cast<int>((quick ? 4e6 : 40e6) / static_cast<double>(per_round)) + 1;
    std::size_t bytes[4] = {};
    auto trial = [&](std::size_t k, auto& f, int r) {
      return [&, k, r] {
        bytes[k] = 0;
        for (int i = 0; i < r; ++i) bytes[k] += f(shape.events);
      };
    };
    auto t = bench::interleaved_medians(
        quick ? 7 : 15, {trial(0, ours, rounds), trial(1, frames, rounds),
                         trial(2, naive, std::max(1, rounds / 8)), trial(3, floor, rounds)});
    double mbps[4];
    for (std::size_t k = 0; k < 4; ++k) mbps[k] = static_cast<double>(bytes[k]) / t[k] / 1e6;
    std::string base = std::string("encode/") + shape.name;
    bench::print_figure(base + "/encode_to", mbps[0], "MB/s", "naive ostringstream", mbps[2]);
    bench::print_figure(base + "/encode_to", mbps[0], "MB/s", "plain append (floor)", mbps[3]);
    bench::print_figure(base + "/frame", mbps[1], "MB/s", "naive ostringstream", mbps[2]);
  }
  return run_format(args);
}

bench::Register reg("encode", "encode [--quick]   encoder MB/s vs naive ostringstream and plain append",
                    run);
bench::Register reg_format("format",
                           "format [--quick]   format_frame vs fmt::format + encode, frames/s",
                           run_format);

}  // namespace
