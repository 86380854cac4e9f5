// ssepp-bench redis [--quick] [--port P]: two nodes (each a Broadcaster and a RedisStreamBus) on
// one real redis-server: end-to-end latency from a send on node A to the event reaching a client
// on node B (p50/p99), and events/s through one Redis: from one thread, and from 1, 4 and 8
// sending threads with pipelined sends against one send per round trip (`send_batch = 1`, the
// bus before pipelining) in the same run. Starts its own redis-server on a free loopback port
// unless --port names a running one.
#include <ssepp/redis.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../tests/support/redis_server.hpp"
#include "bench.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// Records when each event arrives (the data is the event's sequence number).
struct Arrivals {
  std::mutex m;
  std::condition_variable cv;
  std::vector<Clock::time_point> at;
  std::size_t count = 0;
};

struct ArrivalSink {
  Arrivals* a;
  bool send(const ssepp::Frame& f) {
    auto now = Clock::now();
    auto v = f.view();
    auto p = v.find("data: ");
    if (p == std::string_view::npos) return true;  // the retry hint, heartbeats
    std::size_t n = 0;
    for (p += 6; p < v.size() && v[p] >= '0' && v[p] <= '9'; ++p) n = n * 10 + static_cast<std::size_t>(v[p] - '0');
    std::lock_guard<std::mutex> lock(a->m);
    if (n < a->at.size()) a->at[n] = now;
    ++a->count;
    a->cv.notify_all();
    return true;
  }
};

using Hub = ssepp::Broadcaster<ArrivalSink>;
using Bus = ssepp::RedisStreamBus<ArrivalSink>;

ssepp::BroadcasterOptions node_options() {
  ssepp::BroadcasterOptions o;
  o.id_order = ssepp::stream_id_order;
  o.heartbeat = std::chrono::milliseconds(0);
  o.first_client_id = ssepp::cluster_client_id_base();
  return o;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

// Counts the events that reach it (data events only).
struct Counter {
  std::mutex m;
  std::condition_variable cv;
  std::size_t count = 0;
};

struct CountSink {
  Counter* c;
  bool send(const ssepp::Frame& f) {
    if (f.view().find("data: ") == std::string_view::npos) return true;
    std::lock_guard<std::mutex> lock(c->m);
    ++c->count;
    c->cv.notify_all();
    return true;
  }
};

// Events/s from `threads` threads sending `n` events in all through `sender`, until all reached
// node B's client (`on_b`); 0 when a send failed or not everything arrived.
double threaded_rate(ssepp::RedisStreamBus<CountSink>& sender, Counter& on_b, int threads,
                     std::size_t n) {
  {
    std::lock_guard<std::mutex> lock(on_b.m);
    on_b.count = 0;
  }
  std::atomic<bool> failed{false};
  std::vector<std::thread> pool;
  const std::size_t each = n / static_cast<std::size_t>(threads);
  auto t0 = Clock::now();
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (std::size_t i = 0; i < each; ++i)
        if (!sender.broadcast(ssepp::Event{}.with_data("x")).has_value()) failed = true;
    });
  for (auto& t : pool) t.join();
  if (std::getenv("SSEPP_BENCH_DEBUG"))
    std::fprintf(stderr, "sent in %.3f s, %llu round trips so far\n",
                 std::chrono::duration<double>(Clock::now() - t0).count(),
                 static_cast<unsigned long long>(sender.stats().send_round_trips));
  const std::size_t want = each * static_cast<std::size_t>(threads);
  std::unique_lock<std::mutex> lock(on_b.m);
  bool all = on_b.cv.wait_for(lock, std::chrono::seconds(60), [&] { return on_b.count >= want; });
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (failed || !all) return 0;
  return static_cast<double>(want) / secs;
}

// Sends from 1, 4 and 8 threads: pipelined against one round trip per send, interleaved trials.
int threaded_rows(const ssepp::RedisOptions& ro, bool quick) {
  using CountHub = ssepp::Broadcaster<CountSink>;
  using CountBus = ssepp::RedisStreamBus<CountSink>;
  ssepp::RedisOptions one = ro, piped = ro;
  one.stream = piped.stream = "ssepp:bench-threads";
  one.send_batch = 1;
  CountHub one_hub(node_options()), piped_hub(node_options()), b_hub(node_options());
  CountBus one_bus(one_hub, one), piped_bus(piped_hub, piped), b_bus(b_hub, piped);
  b_bus.start();
  for (int i = 0; i < 500 && b_bus.last_id().empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  Counter on_b;
  if (b_bus.last_id().empty() || !b_bus.connect(CountSink{&on_b}, {})) return 1;
  const std::size_t n = quick ? 4000 : 40000;
  const int trials = quick ? 1 : 3;
  for (int threads : {1, 4, 8}) {
    std::vector<double> base, fast;
    for (int trial = 0; trial < trials; ++trial) {
      base.push_back(threaded_rate(one_bus, on_b, threads, n));
      fast.push_back(threaded_rate(piped_bus, on_b, threads, n));
    }
    double b = percentile(base, 0.5), f = percentile(fast, 0.5);
    if (b == 0 || f == 0) return 1;
    std::string row = "redis/send_" + std::to_string(threads) + "_threads";
    bench::print_figure(row + "_one_per_round_trip", b, "events/s");
    bench::print_figure(row + "_pipelined", f, "events/s", row + "_one_per_round_trip", b);
  }
  // One thread, send_many in bursts of 256, against the same thread's one-at-a-time sends.
  for (int trial = 0; trial < 1; ++trial) {
    std::vector<double> base, fast;
    for (int t = 0; t < trials; ++t) {
      base.push_back(threaded_rate(one_bus, on_b, 1, n));
      {
        std::lock_guard<std::mutex> lock(on_b.m);
        on_b.count = 0;
      }
      auto t0 = Clock::now();
      bool ok = true;
      for (std::size_t sent = 0; sent < n; sent += 256) {
        std::vector<std::pair<ssepp::Target, ssepp::Event>> burst(
            256, {ssepp::Target::all(), ssepp::Event{}.with_data("x")});
        for (auto& r : piped_bus.send_many(std::move(burst))) ok = ok && r.has_value();
      }
      const std::size_t want = (n + 255) / 256 * 256;
      std::unique_lock<std::mutex> lock(on_b.m);
      ok = on_b.cv.wait_for(lock, std::chrono::seconds(60), [&] { return on_b.count >= want; }) && ok;
      double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      fast.push_back(ok ? static_cast<double>(want) / secs : 0);
    }
    double b = percentile(base, 0.5), f = percentile(fast, 0.5);
    if (b == 0 || f == 0) return 1;
    bench::print_figure("redis/send_many_1_thread_bursts_of_256", f, "events/s",
                        "redis/send_1_threads_one_per_round_trip", b);
  }
  b_bus.stop();
  return 0;
}


int run(const bench::Args& args) {
  const bool quick = bench::has_flag(args, "--quick");
  const int given_port = std::stoi(bench::option(args, "--port", "0"));
  std::unique_ptr<testing_redis::RedisServer> own;
  if (given_port == 0) own = std::make_unique<testing_redis::RedisServer>(/*durable=*/false);
  ssepp::RedisOptions ro;
  ro.port = given_port ? given_port : own->port();
  ro.stream = "ssepp:bench";

  Hub a_hub(node_options()), b_hub(node_options());
  Bus a(a_hub, ro), b(b_hub, ro);
  a.start();
  b.start();
  for (int i = 0; i < 500 && (b.last_id().empty() || a.last_id().empty()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (b.last_id().empty()) {
    std::fprintf(stderr, "ssepp-bench redis: the nodes could not reach Redis\n");
    return 1;
  }

  const std::size_t n = quick ? 2000 : 20000;
  Arrivals arrivals;
  arrivals.at.assign(n, Clock::time_point{});
  if (!b.connect(ArrivalSink{&arrivals}, {})) return 1;

  // Latency: one event at a time, paced, so each measures an idle path.
  const std::size_t paced = quick ? 500 : 2000;
  std::vector<Clock::time_point> sent(n);
  for (std::size_t i = 0; i < paced; ++i) {
    sent[i] = Clock::now();
    if (!a.broadcast(ssepp::Event{}.with_data(std::to_string(i)))) return 1;
    std::unique_lock<std::mutex> lock(arrivals.m);
    arrivals.cv.wait_for(lock, std::chrono::seconds(2), [&] { return arrivals.count > i; });
  }
  std::vector<double> lat;
  for (std::size_t i = 0; i < paced; ++i)
    if (arrivals.at[i] != Clock::time_point{})
      lat.push_back(std::chrono::duration<double, std::milli>(arrivals.at[i] - sent[i]).count());

  // Throughput: send as fast as one thread can, until every event has reached node B.
  auto t0 = Clock::now();
  for (std::size_t i = paced; i < n; ++i)
    if (!a.broadcast(ssepp::Event{}.with_data(std::to_string(i)))) return 1;
  {
    std::unique_lock<std::mutex> lock(arrivals.m);
    arrivals.cv.wait_for(lock, std::chrono::seconds(60), [&] { return arrivals.count >= n; });
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  double rate = static_cast<double>(n - paced) / secs;

  bench::print_figure("redis/latency_p50", percentile(lat, 0.50), "ms");
  bench::print_figure("redis/latency_p99", percentile(lat, 0.99), "ms");
  bench::print_figure("redis/throughput_2_nodes", rate, "events/s");
  bench::print_figure("redis/delivered", static_cast<double>(arrivals.count), "events");
  a.stop();
  b.stop();
  if (arrivals.count < n) return 1;
  return threaded_rows(ro, quick);
}

bench::Register reg("redis", "redis [--quick] [--port P]   2 nodes on one Redis: latency A->B, events/s",
                    run);

}  // namespace
