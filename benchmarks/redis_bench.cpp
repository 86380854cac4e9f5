// ssepp-bench redis [--quick] [--port P]: two nodes (each a Broadcaster and a RedisStreamBus) on
// one real redis-server: end-to-end latency from a send on node A to the event reaching a client
// on node B (p50/p99), and events/s through one Redis. Starts its own redis-server on a free
// loopback port unless --port names a running one.
#include <ssepp/redis.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
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
  return arrivals.count >= n ? 0 : 1;
}

bench::Register reg("redis", "redis [--quick] [--port P]   2 nodes on one Redis: latency A->B, events/s",
                    run);

}  // namespace
