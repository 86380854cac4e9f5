// ssepp-bench redis [--quick] [--port P]: two nodes (each a Broadcaster and a RedisStreamBus) on
// one real redis-server: end-to-end latency from a send on node A to the event reaching a client
// on node B (p50/p99), and events/s through one Redis: from one thread, and from 1, 4 and 8
// sending threads with pipelined sends against one send per round trip (`send_batch = 1`, the
// bus before pipelining) in the same run. Then the /publish path (a JSON body read and one send
// per request, from many handler threads) against one send per round trip, and the scale rows:
// 1, 2 and 4 shards (redis-servers of its own) and 1-4 nodes whose clients want part of the
// channels: the aggregate send rate, and each node's read load against its clients' interest.
// Starts its own redis-server(s) on free loopback ports unless --port names a running one (the
// scale rows always start theirs).
#include <ssepp/redis.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
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
int threaded_rows(const ssepp::RedisOptions& ro, bool quick, double& one_per_round_trip) {
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
    if (threads == 1) one_per_round_trip = b;
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

// ---- scale: 1, 2 and 4 shards, 1-4 nodes, each node's clients interested in part of the traffic
//
// 16 channels; node i's one client joins channels [0, 16 >> i) (all, half, a quarter, an
// eighth). 8 sending threads spread over the nodes publish round-robin over the 16 channels.
// Figures: the aggregate send rate (every send acknowledged by Redis), against one node on one
// shard in the same run; and, for the most nodes, each node's entries read as a share of all
// entries sent, against its clients' share of the traffic (ratio 1: a node reads what its
// clients need, not the total).
struct ScaleNode {
  Counter inbox;
  ssepp::Broadcaster<CountSink> hub;
  ssepp::RedisStreamBus<CountSink> bus;
  static ssepp::BroadcasterOptions options() {
    ssepp::BroadcasterOptions o = node_options();
    o.id_order = ssepp::shard_position_order;
    return o;
  }
  explicit ScaleNode(const ssepp::RedisOptions& ro) : hub(options()), bus(hub, ro) { bus.start(); }
  bool ready() {
    for (int i = 0; i < 500 && bus.last_id().empty(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return !bus.last_id().empty();
  }
};

constexpr std::size_t scale_channels = 16;

std::string scale_channel(std::size_t j) { return "scale:c" + std::to_string(j); }

// One configuration; false when a send failed or a node did not get its events.
bool scale_run(const std::vector<int>& ports, std::size_t nodes_n, std::size_t events,
               const std::string& stream, double& rate, std::vector<double>& read_share) {
  ssepp::RedisOptions ro;
  ro.stream = stream;
  ro.port = ports.front();
  for (int p : ports) ro.shards.push_back(ssepp::RedisEndpoint{"127.0.0.1", p});
  std::vector<std::unique_ptr<ScaleNode>> nodes;
  for (std::size_t i = 0; i < nodes_n; ++i) nodes.push_back(std::make_unique<ScaleNode>(ro));
  for (std::size_t i = 0; i < nodes_n; ++i) {
    if (!nodes[i]->ready()) return false;
    ssepp::ConnectOptions who;
    for (std::size_t j = 0; j < (scale_channels >> i); ++j) who.channels.push_back(scale_channel(j));
    if (!nodes[i]->bus.connect(CountSink{&nodes[i]->inbox}, std::move(who))) return false;
  }
  std::vector<std::string> names;
  for (std::size_t j = 0; j < scale_channels; ++j) names.push_back(scale_channel(j));
  const std::size_t threads = 8;
  std::atomic<bool> failed{false};
  std::vector<std::thread> pool;
  auto t0 = Clock::now();
  for (std::size_t t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      auto& via = nodes[t % nodes_n]->bus;
      for (std::size_t k = t; k < events; k += threads)
        if (!via.publish(names[k % scale_channels], ssepp::Event{}.with_data("x")))
          failed = true;
    });
  for (auto& t : pool) t.join();
  rate = static_cast<double>(events) / std::chrono::duration<double>(Clock::now() - t0).count();
  if (failed) return false;
  read_share.clear();
  for (std::size_t i = 0; i < nodes_n; ++i) {
    const std::size_t want = events / scale_channels * (scale_channels >> i);
    Counter& in = nodes[i]->inbox;
    std::unique_lock<std::mutex> lock(in.m);
    if (!in.cv.wait_for(lock, std::chrono::seconds(60), [&] { return in.count >= want; }))
      return false;
    lock.unlock();
    read_share.push_back(static_cast<double>(nodes[i]->bus.stats().received) /
                         static_cast<double>(events));
  }
  return true;
}

int scale_rows(bool quick, double one_per_round_trip) {
  const std::size_t events = quick ? 4000 : 32000;  // a multiple of 16
  const std::vector<std::size_t> node_counts =
      quick ? std::vector<std::size_t>{1, 2, 4} : std::vector<std::size_t>{1, 2, 3, 4};
  std::vector<std::unique_ptr<testing_redis::RedisServer>> servers;
  for (int i = 0; i < 4; ++i)
    servers.push_back(std::make_unique<testing_redis::RedisServer>(/*durable=*/false));
  double base = 0;
  int round = 0;
  for (std::size_t shards : {std::size_t{1}, std::size_t{2}, std::size_t{4}}) {
    std::vector<int> ports;
    for (std::size_t i = 0; i < shards; ++i) ports.push_back(servers[i]->port());
    for (std::size_t n : node_counts) {
      double rate = 0;
      std::vector<double> share;
      // A stream prefix of its own per configuration: no node reads an earlier one's entries.
      if (!scale_run(ports, n, events, "ssepp:scale" + std::to_string(round++), rate, share)) {
        std::fprintf(stderr, "ssepp-bench redis: scale run %zu shard(s), %zu node(s) failed\n",
                     shards, n);
        return 1;
      }
      const std::string row = "redis_scale/send_" + std::to_string(shards) + "_shards_" +
                              std::to_string(n) + "_nodes";
      if (base == 0) {
        base = rate;
        bench::print_figure(row, rate, "events/s", "redis/send_1_threads_one_per_round_trip",
                            one_per_round_trip);
      } else {
        bench::print_figure(row, rate, "events/s", "redis_scale/send_1_shards_1_nodes", base);
      }
      if (n != node_counts.back()) continue;
      for (std::size_t i = 0; i < n; ++i)
        bench::print_figure("redis_scale/read_share_" + std::to_string(shards) + "_shards_node_" +
                                std::to_string(i) + "_of_" + std::to_string(n),
                            share[i], "of entries",
                            "redis_scale/interest_share_node_" + std::to_string(i),
                            static_cast<double>(scale_channels >> i) /
                                static_cast<double>(scale_channels));
    }
  }
  return 0;
}

// ---- the /publish path: what the demo's POST /publish handler does per request -----------------
//
// Per request: read a JSON body into a target and an event (parse_pubsub_message, the Pub/Sub
// bridge's reader, standing in for the handler's JSON parse) and one blocking `send` through the
// bus; `handlers` threads do it at once (the demo's io threads, each blocked on its send: with
// --threads N at most N sends share a round trip). Against one thread sending one per round
// trip (send_batch 1), in the same run. Sends acknowledged by Redis per second.
double publish_path_rate(const ssepp::RedisOptions& ro, std::size_t handlers, std::size_t n) {
  ssepp::Broadcaster<CountSink> hub(node_options());
  ssepp::RedisStreamBus<CountSink> bus(hub, ro);
  std::atomic<bool> failed{false};
  std::vector<std::thread> pool;
  auto t0 = Clock::now();
  for (std::size_t t = 0; t < handlers; ++t)
    pool.emplace_back([&, t] {
      std::string body;
      for (std::size_t k = t; k < n; k += handlers) {
        body = R"({"target":{"channel":"news)" + std::to_string(k % 8) +
               R"("},"event":"quote","data":{"seq":)" + std::to_string(k) + "}}";
        auto m = ssepp::parse_pubsub_message(body);
        if (!m || !bus.send(m->target, std::move(m->event))) failed = true;
      }
    });
  for (auto& t : pool) t.join();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  return failed ? 0 : static_cast<double>(n) / secs;
}

int publish_path_rows(ssepp::RedisOptions ro, bool quick) {
  ro.stream = "ssepp:bench-publish";
  const std::size_t n = quick ? 6000 : 40000;
  const int trials = quick ? 3 : 5;  // interleaved: the machine's noise hits both sides
  ssepp::RedisOptions one = ro;
  one.send_batch = 1;
  std::vector<double> base;
  std::vector<std::vector<double>> fast(3);
  const std::size_t handler_counts[] = {8, 32, 64};
  for (int trial = 0; trial < trials; ++trial) {
    base.push_back(publish_path_rate(one, 1, n / 3));
    for (std::size_t h = 0; h < 3; ++h) fast[h].push_back(publish_path_rate(ro, handler_counts[h], n));
  }
  const double b = percentile(base, 0.5);
  if (b == 0) return 1;
  bench::print_figure("redis_scale/publish_path_1_handler_one_per_round_trip", b, "events/s");
  for (std::size_t h = 0; h < 3; ++h) {
    const double f = percentile(fast[h], 0.5);
    if (f == 0) return 1;
    bench::print_figure("redis_scale/publish_path_" + std::to_string(handler_counts[h]) +
                            "_handlers_pipelined",
                        f, "events/s", "redis_scale/publish_path_1_handler_one_per_round_trip", b);
  }
  return 0;
}

// ---- the /publish path over HTTP: ssepp-demo --redis, keep-alive connections posting ---------
//
// Starts the demo (`--demo PATH`) with --redis on the bench's Redis and --threads T; C client
// threads each keep one connection and POST /publish one request after another (each waits for
// its 202, as a browser or a service would). Publishes answered 202 per second.

// A demo process, stopped (SIGTERM, then waited for) when this goes.
struct DemoProcess {
  pid_t pid = -1;
  int port = 0;
  DemoProcess(const std::string& bin, std::vector<std::string> args) {
    int out[2];
    if (::pipe(out) != 0) return;
    args.insert(args.begin(), {bin, "--host", "127.0.0.1", "--port", "0", "--ticker", "0"});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    ::posix_spawn_file_actions_addclose(&actions, out[0]);
    ::posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    if (::posix_spawn(&pid, bin.c_str(), &actions, nullptr, argv.data(), environ) != 0) pid = -1;
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    // First line: "ssepp-demo listening on http://127.0.0.1:PORT/" (bounded: the read ends
    // when the process exits).
    std::string line;
    char c;
    while (pid > 0 && line.size() < 256 && ::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(out[0]);
    auto colon = line.rfind(':');
    if (colon != std::string::npos) port = std::atoi(line.c_str() + colon + 1);
  }
  DemoProcess(const DemoProcess&) = delete;
  DemoProcess& operator=(const DemoProcess&) = delete;
  ~DemoProcess() {
    if (pid <= 0) return;
    ::kill(pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 1000 && ::waitpid(pid, &status, WNOHANG) == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (::waitpid(pid, &status, WNOHANG) == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
  }
};

// One keep-alive connection posting until `stop`; counts the 202s, false on anything else.
bool post_loop(int port, const std::atomic<bool>& stop, std::uint64_t& accepted) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return false;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string buf;
  char in[4096];
  bool ok = true;
  for (std::uint64_t k = 0; ok && !stop.load(std::memory_order_relaxed); ++k) {
    const std::string body = R"({"channel":"news","event":"quote","data":")" + std::to_string(k) + "\"}";
    const std::string req = "POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                            "application/json\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body;
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      ok = false;
      break;
    }
    // One response: headers, then Content-Length bytes of body.
    for (;;) {
      auto end = buf.find("\r\n\r\n");
      if (end != std::string::npos) {
        auto cl = buf.find("Content-Length: ");
        if (cl == std::string::npos || cl > end) cl = buf.find("content-length: ");
        std::size_t len = cl != std::string::npos && cl < end
                              ? static_cast<std::size_t>(std::atoll(buf.c_str() + cl + 16))
                              : 0;
        if (buf.size() >= end + 4 + len) {
          ok = buf.compare(0, 12, "HTTP/1.1 202") == 0;
          buf.erase(0, end + 4 + len);
          break;
        }
      }
      ssize_t n = ::recv(fd, in, sizeof in, 0);
      if (n <= 0) {
        ok = false;
        break;
      }
      buf.append(in, static_cast<std::size_t>(n));
    }
    if (ok) ++accepted;
  }
  ::close(fd);
  return ok;
}

// Publishes/s through `connections` connections to a demo with `threads` io threads.
double http_publish_rate(const std::string& demo, int redis_port, int threads, int connections,
                         double seconds) {
  DemoProcess p(demo, {"--threads", std::to_string(threads), "--redis",
                       "127.0.0.1:" + std::to_string(redis_port)});
  if (p.port == 0) return 0;
  std::atomic<bool> stop{false}, failed{false};
  std::vector<std::uint64_t> counts(static_cast<std::size_t>(connections), 0);
  std::vector<std::thread> pool;
  auto t0 = Clock::now();
  for (int c = 0; c < connections; ++c)
    pool.emplace_back([&, c] {
      if (!post_loop(p.port, stop, counts[static_cast<std::size_t>(c)])) failed = true;
    });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : pool) t.join();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::uint64_t total = 0;
  for (auto n : counts) total += n;
  return failed ? 0 : static_cast<double>(total) / secs;
}

int http_publish_rows(const std::string& demo, int redis_port, bool quick,
                      double one_per_round_trip) {
  const double seconds = quick ? 1.5 : 4;
  struct Setup {
    int threads, connections;
  };
  for (Setup s : {Setup{1, 1}, Setup{1, 16}, Setup{8, 16}, Setup{16, 64}}) {
    const double r = http_publish_rate(demo, redis_port, s.threads, s.connections, seconds);
    if (r == 0) {
      std::fprintf(stderr, "ssepp-bench redis: POST /publish to %s failed\n", demo.c_str());
      return 1;
    }
    bench::print_figure("redis_scale/http_publish_" + std::to_string(s.threads) + "_threads_" +
                            std::to_string(s.connections) + "_connections",
                        r, "events/s", "redis/send_1_threads_one_per_round_trip",
                        one_per_round_trip);
  }
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
  double one_per_round_trip = 0;
  if (int rc = threaded_rows(ro, quick, one_per_round_trip)) return rc;
  if (int rc = publish_path_rows(ro, quick)) return rc;
  const std::string demo = bench::option(args, "--demo", "");
  if (!demo.empty()) {
    if (int rc = http_publish_rows(demo, ro.port, quick, one_per_round_trip)) return rc;
  }
  return scale_rows(quick, one_per_round_trip);
}

bench::Register reg("redis",
                    "redis [--quick] [--port P] [--demo PATH]   nodes on Redis: latency, events/s, "
                    "shards x nodes",
                    run);

}  // namespace
