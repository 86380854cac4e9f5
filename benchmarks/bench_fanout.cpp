// ssepp-bench fanout [--quick]: one event fanned out to 1k / 10k / 100k in-memory clients by
// Broadcaster, with no-op sinks and with Mailbox sinks, beside the classic naive design (a
// std::map of clients under one mutex, the event encoded again for every client), the two
// measured in turns in the same run. Mailbox writers drain as an event loop does: woken through
// on_wake, they take all queued frames after each burst of sends. Also: heap allocations and bytes
// per recipient, and heap bytes per idle client.
//
// Allocations are counted by the global operator new below (relaxed atomic counters, always on;
// other subcommands only pay the increments).
#include <ssepp/broadcaster.hpp>
#include <ssepp/mailbox.hpp>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#if __has_include(<malloc.h>)
#  include <malloc.h>
#  define SSEPP_BENCH_USABLE_SIZE 1
#else
#  define SSEPP_BENCH_USABLE_SIZE 0
#endif

#include "bench.hpp"

// ---- allocation counting ----------------------------------------------------------------------

namespace {
std::atomic<std::uint64_t> g_allocations{0};
std::atomic<std::uint64_t> g_requested_bytes{0};
std::atomic<std::int64_t> g_live_bytes{0};  // malloc usable size of live blocks

inline std::size_t usable(void* p) noexcept {
#if SSEPP_BENCH_USABLE_SIZE
  return malloc_usable_size(p);
#else
  (void)p;
  return 0;
#endif
}

inline void* counted_alloc(std::size_t n, std::size_t align = 0) noexcept {
  if (n == 0) n = 1;
  void* p = align == 0 ? std::malloc(n) : std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    g_requested_bytes.fetch_add(n, std::memory_order_relaxed);
    g_live_bytes.fetch_add(static_cast<std::int64_t>(usable(p)), std::memory_order_relaxed);
  }
  return p;
}

inline void counted_free(void* p) noexcept {
  if (!p) return;
  g_live_bytes.fetch_sub(static_cast<std::int64_t>(usable(p)), std::memory_order_relaxed);
  std::free(p);
}

struct HeapCount {
  std::uint64_t allocations = 0;
  std::uint64_t bytes = 0;
  static HeapCount now() {
    return {g_allocations.load(std::memory_order_relaxed),
            g_requested_bytes.load(std::memory_order_relaxed)};
  }
  HeapCount operator-(const HeapCount& o) const { return {allocations - o.allocations, bytes - o.bytes}; }
};
}  // namespace

void* operator new(std::size_t n) {
  if (void* p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n); }
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { counted_free(p); }
// Over-aligned types (e.g. cache-line aligned state) come through these: count them too.
void* operator new(std::size_t n, std::align_val_t a) {
  if (void* p = counted_alloc(n, static_cast<std::size_t>(a))) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { counted_free(p); }

// ---- the contenders ---------------------------------------------------------------------------

namespace {

using Clock = std::chrono::steady_clock;

/// A sink that does nothing but look at the frame: what the broadcaster itself costs.
struct NoopSink {
  void* connection = nullptr;
  bool send(const ssepp::Frame& f) {
    bench::do_not_optimize(connection);
    bench::do_not_optimize(f.data());
    return true;
  }
};

/// The naive no-op connection: takes the bytes of one client's copy of the event.
struct NaiveNoop {
  void* connection = nullptr;
  bool write(const std::string& bytes) {
    bench::do_not_optimize(connection);
    bench::do_not_optimize(bytes.data());
    return true;
  }
};

/// The naive queued connection: a locked queue of strings per client (the classic blog's
/// "one queue per response" writer).
struct NaiveQueue {
  struct State {
    std::mutex mutex;
    std::deque<std::string> queue;
  };
  std::shared_ptr<State> state = std::make_shared<State>();
  bool write(std::string bytes) {
    std::lock_guard<std::mutex> lock(state->mutex);
    state->queue.push_back(std::move(bytes));
    return true;
  }
  std::size_t drain() {
    std::lock_guard<std::mutex> lock(state->mutex);
    std::size_t n = state->queue.size();
    state->queue.clear();
    return n;
  }
};

/// The classic design: a map of clients under one mutex; each broadcast numbers the event and
/// encodes it again for every client.
template <class Conn>
class NaiveHub {
 public:
  std::uint64_t connect(Conn c) {
    std::lock_guard<std::mutex> lock(mutex_);
    clients_.emplace(next_client_, std::move(c));
    return next_client_++;
  }
  std::size_t broadcast(ssepp::Event ev) {
    std::lock_guard<std::mutex> lock(mutex_);
    ev.id = std::to_string(next_event_++);
    std::size_t n = 0;
    for (auto it = clients_.begin(); it != clients_.end();) {
      if (it->second.write(ssepp::encode(ev))) {
        ++n;
        ++it;
      } else {
        it = clients_.erase(it);
      }
    }
    return n;
  }
  std::map<std::uint64_t, Conn>& clients() { return clients_; }

 private:
  std::mutex mutex_;
  std::map<std::uint64_t, Conn> clients_;
  std::uint64_t next_client_ = 1;
  std::uint64_t next_event_ = 1;
};

ssepp::Event price_event() {
  return ssepp::Event{}.with_type("price").with_data(
      R"({"symbol":"ACME","price":123.45,"change":-0.37,"volume":120034,"ts":1700000000123})");
}

std::string label(std::size_t n) { return n >= 1000 ? std::to_string(n / 1000) + "k" : std::to_string(n); }

struct Plan {
  int runs;
  std::size_t ours_deliveries;   // per run
  std::size_t naive_deliveries;  // per run (the naive design is much slower)
};

std::size_t sends_for(std::size_t deliveries, std::size_t clients) {
  return std::max<std::size_t>(3, deliveries / clients);
}

// ---- no-op sinks ------------------------------------------------------------------------------

/// Deliveries per second to n no-op sinks: {ssepp, naive}, measured in turns (ssepp, naive,
/// ssepp, ...) so that a busy machine's slow moments fall on both sides.
std::pair<double, double> noop_rates(std::size_t n, const Plan& plan) {
  ssepp::Broadcaster<NoopSink> hub({}, Clock::now());
  const ssepp::Event ev = price_event();
  for (int i = 0; i < 1100; ++i) (void)hub.broadcast(ev);  // history ring at its steady size
  for (std::size_t i = 0; i < n; ++i) (void)hub.connect(NoopSink{&hub}, {}, Clock::now());
  (void)hub.broadcast(ev);
  NaiveHub<NaiveNoop> naive;
  for (std::size_t i = 0; i < n; ++i) naive.connect(NaiveNoop{&naive});
  const std::size_t sends = sends_for(plan.ours_deliveries, n);
  const std::size_t naive_sends = sends_for(plan.naive_deliveries, n);
  const std::vector<double> s = bench::interleaved_medians(
      plan.runs,
      {[&] {
         for (std::size_t i = 0; i < sends; ++i) bench::do_not_optimize(hub.broadcast(ev)->delivered);
       },
       [&] {
         for (std::size_t i = 0; i < naive_sends; ++i) bench::do_not_optimize(naive.broadcast(ev));
       }});
  return {static_cast<double>(sends * n) / s[0], static_cast<double>(naive_sends * n) / s[1]};
}

/// Heap allocations and bytes of one send to n no-op sinks, averaged over `sends`.
template <class Send>
std::pair<double, double> per_send_heap(std::size_t sends, Send&& send) {
  HeapCount before = HeapCount::now();
  for (std::size_t i = 0; i < sends; ++i) send();
  HeapCount d = HeapCount::now() - before;
  return {static_cast<double>(d.allocations) / static_cast<double>(sends),
          static_cast<double>(d.bytes) / static_cast<double>(sends)};
}

std::pair<double, double> ours_noop_heap(std::size_t n) {
  ssepp::Broadcaster<NoopSink> hub({}, Clock::now());
  const ssepp::Event ev = price_event();
  for (int i = 0; i < 1100; ++i) (void)hub.broadcast(ev);
  for (std::size_t i = 0; i < n; ++i) (void)hub.connect(NoopSink{&hub}, {}, Clock::now());
  (void)hub.broadcast(ev);
  return per_send_heap(20, [&] { (void)hub.broadcast(ev); });
}

std::pair<double, double> naive_noop_heap(std::size_t n) {
  NaiveHub<NaiveNoop> hub;
  const ssepp::Event ev = price_event();
  for (std::size_t i = 0; i < n; ++i) hub.connect(NaiveNoop{&hub});
  (void)hub.broadcast(ev);
  return per_send_heap(5, [&] { (void)hub.broadcast(ev); });
}

// ---- Mailbox sinks ----------------------------------------------------------------------------

/// n connections whose writers run as in an event-loop server: each Mailbox's wake-up hook marks
/// its connection ready (the stand-in for posting to the loop), and `drain` has every ready writer
/// take all its queued frames.
struct MailboxFarm {
  std::vector<unsigned char> ready;  // first: outlives the hub, whose destructor wakes every box
  ssepp::Broadcaster<ssepp::Mailbox> hub{{}, Clock::now()};
  std::vector<ssepp::Mailbox> boxes;
  std::vector<ssepp::Frame> out;
  explicit MailboxFarm(std::size_t n) : ready(n, 0) {
    const ssepp::Event ev = price_event();
    for (int i = 0; i < 1100; ++i) (void)hub.broadcast(ev);
    boxes.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      boxes.emplace_back();
      boxes.back().on_wake([flag = &ready[i]] { *flag = 1; });
      (void)hub.connect(boxes.back(), {}, Clock::now());
    }
    for (int i = 0; i < 3; ++i) (void)hub.broadcast(ev);  // every ring allocated
    drain();
  }
  void drain() {
    for (std::size_t i = 0; i < boxes.size(); ++i) {
      if (!ready[i]) continue;
      ready[i] = 0;
      out.clear();
      boxes[i].take_all(out);
    }
    out.clear();
  }
};

/// Seconds spent in `sends` calls of send(), with drain() (not timed) after every `burst`: the
/// writers catch up between bursts.
template <class Send, class Drain>
double timed_bursts(std::size_t sends, std::size_t burst, Send&& send, Drain&& drain) {
  double t = 0;
  for (std::size_t done = 0; done < sends;) {
    const std::size_t batch = std::min(burst, sends - done);
    auto a = Clock::now();
    for (std::size_t i = 0; i < batch; ++i) send();
    t += std::chrono::duration<double>(Clock::now() - a).count();
    drain();
    done += batch;
  }
  return t;
}

/// The naive side's deliveries per run without --quick (see Plan in run()).
constexpr std::size_t full_naive_deliveries = 2'000'000;

/// Deliveries per second into n Mailboxes and into the naive design's n locked queues:
/// {ssepp, naive}, measured in turns. Sends are timed; the writers' draining is not. Both drain
/// after the same number of sends (at most 500, at most what the naive side sends in a full run),
/// so both queue equally deep: a deeper queue is a larger working set.
std::pair<double, double> mailbox_rates(std::size_t n, const Plan& plan) {
  MailboxFarm farm(n);
  NaiveHub<NaiveQueue> naive;
  for (std::size_t i = 0; i < n; ++i) naive.connect(NaiveQueue{});
  const ssepp::Event ev = price_event();
  const std::size_t sends = sends_for(plan.ours_deliveries, n);
  // The same depth with --quick as without: it changes what a send costs on both sides.
  const std::size_t burst = std::min<std::size_t>(500, sends_for(full_naive_deliveries, n));
  const std::size_t naive_sends = std::max(burst, sends_for(plan.naive_deliveries, n));
  std::vector<double> ours_t, naive_t;
  for (int r = 0; r < plan.runs; ++r) {
    ours_t.push_back(timed_bursts(
        sends, burst, [&] { bench::do_not_optimize(farm.hub.broadcast(ev)->delivered); }, [&] { farm.drain(); }));
    naive_t.push_back(timed_bursts(
        naive_sends, burst, [&] { bench::do_not_optimize(naive.broadcast(ev)); },
        [&] {
          for (auto& kv : naive.clients()) kv.second.drain();
        }));
  }
  std::sort(ours_t.begin(), ours_t.end());
  std::sort(naive_t.begin(), naive_t.end());
  return {static_cast<double>(sends * n) / ours_t[ours_t.size() / 2],
          static_cast<double>(naive_sends * n) / naive_t[naive_t.size() / 2]};
}

/// Heap cost of one send into n Mailboxes that their writers keep draining (steady state); the
/// draining is not counted.
std::pair<double, double> ours_mailbox_heap(std::size_t n) {
  MailboxFarm farm(n);
  const ssepp::Event ev = price_event();
  HeapCount total;
  constexpr std::size_t sends = 10;
  for (std::size_t i = 0; i < sends; ++i) {
    HeapCount before = HeapCount::now();
    (void)farm.hub.broadcast(ev);
    HeapCount d = HeapCount::now() - before;
    total.allocations += d.allocations;
    total.bytes += d.bytes;
    farm.drain();
  }
  return {static_cast<double>(total.allocations) / sends, static_cast<double>(total.bytes) / sends};
}

// ---- memory per idle client -------------------------------------------------------------------

std::int64_t live_bytes() { return g_live_bytes.load(std::memory_order_relaxed); }

/// Live heap bytes the broadcaster holds per idle client (no-op sinks: the sink's own state is
/// not the broadcaster's). `detailed`: a user of its own, two shared pools and one channel.
double idle_bytes_per_client(std::size_t n, bool detailed) {
  auto hub = std::make_unique<ssepp::Broadcaster<NoopSink>>(ssepp::BroadcasterOptions{}, Clock::now());
  const std::int64_t before = live_bytes();
  for (std::size_t i = 0; i < n; ++i) {
    ssepp::ConnectOptions o;
    if (detailed) {
      o.user = "u" + std::to_string(1000000 + i);
      o.pools = {"tenant:" + std::to_string(i % 100), "role:member"};
      o.channels = {"room:" + std::to_string(i % 1000)};
    } else {
      o.pools = {"tenant:acme"};
    }
    (void)hub->connect(NoopSink{nullptr}, std::move(o), Clock::now());
  }
  (void)hub->broadcast(price_event());  // the reused recipient snapshot is part of the cost
  const std::int64_t after = live_bytes();
  return static_cast<double>(after - before) / static_cast<double>(n);
}

double naive_idle_bytes_per_client(std::size_t n) {
  NaiveHub<NaiveNoop> hub;
  const std::int64_t before = live_bytes();
  for (std::size_t i = 0; i < n; ++i) hub.connect(NaiveNoop{&hub});
  return static_cast<double>(live_bytes() - before) / static_cast<double>(n);
}

double mailbox_idle_bytes(std::size_t n) {
  std::vector<ssepp::Mailbox> boxes;
  boxes.reserve(n);
  const std::int64_t before = live_bytes();
  for (std::size_t i = 0; i < n; ++i) boxes.emplace_back();
  return static_cast<double>(live_bytes() - before) / static_cast<double>(n);
}

int run(const bench::Args& args) {
  const bool quick = bench::has_flag(args, "--quick");
  const Plan plan = quick ? Plan{3, 2'000'000, 400'000} : Plan{5, 10'000'000, full_naive_deliveries};
  const std::vector<std::size_t> sizes = {1000, 10000, 100000};
  const std::string naive = "naive: std::map of clients, encode per client";
  const std::string naive_q = "naive: std::map of clients, encode per client, locked std::deque<std::string>";

  // Marginal heap cost of one more recipient: (per-send at n - per-send at 1) / (n - 1).
  const auto ours_one = ours_noop_heap(1);
  const auto naive_one = naive_noop_heap(1);
  const auto box_one = ours_mailbox_heap(1);
  std::fprintf(stderr, "fanout: per send to one client: ssepp %.2f allocations / %.0f bytes, naive %.2f / %.0f\n",
               ours_one.first, ours_one.second, naive_one.first, naive_one.second);

  for (std::size_t n : sizes) {
    const std::string l = label(n);
    const auto noop = noop_rates(n, plan);
    bench::print_figure("fanout/noop/" + l, noop.first, "deliveries/s", naive, noop.second);
    const auto ours = ours_noop_heap(n);
    const auto nv = naive_noop_heap(n);
    const double dn = static_cast<double>(n - 1);
    bench::print_figure("fanout/noop/" + l + "/allocs-per-recipient", (ours.first - ours_one.first) / dn,
                        "allocations");
    bench::print_figure("fanout/noop/" + l + "/alloc-bytes-per-recipient",
                        (ours.second - ours_one.second) / dn, "bytes");
    std::fprintf(stderr, "fanout: %s no-op: naive design allocates %.2f times, %.0f bytes per recipient\n",
                 l.c_str(), (nv.first - naive_one.first) / dn, (nv.second - naive_one.second) / dn);

    const auto box_rates = mailbox_rates(n, plan);
    bench::print_figure("fanout/mailbox/" + l, box_rates.first, "deliveries/s", naive_q, box_rates.second);
    const auto box = ours_mailbox_heap(n);
    bench::print_figure("fanout/mailbox/" + l + "/allocs-per-recipient", (box.first - box_one.first) / dn,
                        "allocations");
  }

  const std::size_t idle_n = quick ? 20000 : 100000;
  bench::print_figure("fanout/idle-client-bytes/anonymous", idle_bytes_per_client(idle_n, false), "bytes");
  bench::print_figure("fanout/idle-client-bytes/user-2-pools-1-channel", idle_bytes_per_client(idle_n, true),
                      "bytes");
  bench::print_figure("fanout/idle-mailbox-bytes", mailbox_idle_bytes(idle_n), "bytes");
  std::fprintf(stderr, "fanout: naive design, bytes per idle client: %.0f\n", naive_idle_bytes_per_client(idle_n));
  return 0;
}

bench::Register reg("fanout", "fanout [--quick]   Broadcaster fan-out to 1k/10k/100k no-op and Mailbox sinks vs a naive hub",
                    run);

}  // namespace
