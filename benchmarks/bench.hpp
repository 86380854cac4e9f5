// Shared by the benchmark subcommands: registration, timing, JSON output.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace bench {

using Args = std::vector<std::string>;
using Command = std::function<int(const Args&)>;

/// Subcommands by name; each bench_<part>.cpp adds its own with a static Register.
inline std::map<std::string, std::pair<Command, std::string>>& commands() {
  static std::map<std::string, std::pair<Command, std::string>> c;
  return c;
}
struct Register {
  Register(const std::string& name, const std::string& usage, Command cmd) {
    commands()[name] = {std::move(cmd), usage};
  }
};

/// Median wall-clock seconds of `runs` calls of f.
template <class F>
double median_seconds(int runs, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    auto a = std::chrono::steady_clock::now();
    f();
    auto b = std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double>(b - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

/// Runs every contender in turn, `trials` times over (A B C A B C ...), and returns each one's
/// median seconds. Interleaving keeps a noisy machine's slow moments from landing on one side.
inline std::vector<double> interleaved_medians(int trials, const std::vector<std::function<void()>>& fs) {
  std::vector<std::vector<double>> t(fs.size());
  for (int i = 0; i < trials; ++i)
    for (std::size_t k = 0; k < fs.size(); ++k) {
      auto a = std::chrono::steady_clock::now();
      fs[k]();
      auto b = std::chrono::steady_clock::now();
      t[k].push_back(std::chrono::duration<double>(b - a).count());
    }
  std::vector<double> out;
  for (auto& v : t) {
    std::sort(v.begin(), v.end());
    out.push_back(v[v.size() / 2]);
  }
  return out;
}

/// Keeps the optimiser from deleting work whose result is otherwise unused.
template <class T>
inline void do_not_optimize(T const& value) {
  asm volatile("" : : "r,m"(value) : "memory");
}

/// Value of `--name V` in args, or fallback.
inline std::string option(const Args& args, const std::string& name, const std::string& fallback) {
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == name) return args[i + 1];
  return fallback;
}

/// Prints one figure as a JSON line (the format scripts/bench collects into results.jsonl):
/// {"name":…,"value":…,"unit":…,"baseline":…,"baseline_value":…,"ratio":…}. With no baseline,
/// the last three are null.
inline void print_figure(const std::string& name, double value, const std::string& unit,
                         const std::string& baseline = {}, double baseline_value = 0) {
  if (baseline.empty()) {
    std::printf("{\"name\":\"%s\",\"value\":%.6g,\"unit\":\"%s\",\"baseline\":null,"
                "\"baseline_value\":null,\"ratio\":null}\n",
                name.c_str(), value, unit.c_str());
  } else {
    std::printf("{\"name\":\"%s\",\"value\":%.6g,\"unit\":\"%s\",\"baseline\":\"%s\","
                "\"baseline_value\":%.6g,\"ratio\":%.4g}\n",
                name.c_str(), value, unit.c_str(), baseline.c_str(), baseline_value,
                baseline_value != 0 ? value / baseline_value : 0.0);
  }
  std::fflush(stdout);
}

/// True when args contain flag.
inline bool has_flag(const Args& args, const std::string& flag) {
  return std::find(args.begin(), args.end(), flag) != args.end();
}

}  // namespace bench
