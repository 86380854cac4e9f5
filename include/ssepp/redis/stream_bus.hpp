// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// RedisStreamBus: several nodes, streams per target spread over Redis shards, each node reading
// only the streams its clients need.
#pragma once

#include <ssepp/broadcaster.hpp>
#include <ssepp/config.hpp>
#include <ssepp/error.hpp>
#include <ssepp/event.hpp>
#include <ssepp/redis/codec.hpp>
#include <ssepp/redis/connection.hpp>
#include <ssepp/redis/options.hpp>
#include <ssepp/redis/reader.hpp>
#include <ssepp/redis/send_pipe.hpp>
#include <ssepp/result.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE

namespace detail {

/// A mutex that knows whether the calling thread holds it, so that a call re-entering from a
/// hook on the holding thread neither locks it twice nor waits for itself.
class OwnedMutex {
 public:
  void lock() {
    m_.lock();
    owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  }
  bool try_lock() {
    if (!m_.try_lock()) return false;
    owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    return true;
  }
  void unlock() {
    owner_.store(std::thread::id(), std::memory_order_relaxed);
    m_.unlock();
  }
  /// True when the calling thread holds it. (Only the holder stores its own id, so another
  /// thread never sees its own.)
  bool held_here() const noexcept {
    return owner_.load(std::memory_order_relaxed) == std::this_thread::get_id();
  }

 private:
  std::mutex m_;
  std::atomic<std::thread::id> owner_{};
};

}  // namespace detail

/// A random base for client ids that are unique across the nodes of a cluster (the high 32 bits
/// random, so two nodes' sequences do not meet): pass as `BroadcasterOptions::first_client_id`.
inline std::uint64_t cluster_client_id_base() {
  std::random_device rd;
  std::uint64_t hi = (static_cast<std::uint64_t>(rd()) & 0x7FFFFFFFu) | 1u;
  return hi << 32;
}

/// Several nodes, one cluster: each node's `Broadcaster` behaves as part of it.
///
/// - **Streams per target.** `send` appends the event and its whole target to one Redis stream
///   per target part: `<stream>:c:<channel>`, `<stream>:p:<pool>`, `<stream>:u:<user>`,
///   `<stream>:all`, and for a client id `<stream>:k:<node>` (the high 32 bits of the id: the
///   node that made it, see `cluster_client_id_base`). It does not deliver: every node, this one
///   included, delivers what it reads. While a shard is unreachable a send to its streams fails
///   with `errc::bus_unavailable`: nothing is silently dropped.
/// - **Shards.** A stream lives on the shard (`RedisOptions::shards`) a jump consistent hash of
///   its key picks. Each shard keeps a counter: a Lua script increments it and appends the entry
///   under the id `<counter>-0` to every stream of the target on that shard, atomically, so the
///   entries of one shard are ordered across its streams. A target spanning shards is one
///   append per shard; a client matching parts on several shards receives the copy of the
///   lowest of them only.
/// - **Interest-based reading.** One reader thread per shard XREADs only the streams this
///   node's clients need: the node's own stream, `all` while it has clients, and the user,
///   pool and channel streams of its clients. A stream is read from the shard's current counter
///   (the node's position moves there, the streams it reads drained up to it) as soon as a
///   client connecting or joining through the bus needs it (`connect` and `join` wait, up to
///   `RedisOptions::timeout`, until the reader has taken it); it is dropped within about a
///   second (or one XREAD block) after the last such client left.
/// - **Event ids** are the delivering node's read position on every shard ("p0.p1.p2", one
///   shard: a plain decimal), the same for every recipient on that node. A client reconnecting
///   to any node with its Last-Event-ID gets, from Redis, exactly the entries of its streams
///   after those positions up to where that node is (in order per shard, none twice), then live
///   events. Each shard's history has an epoch (the counter's start, in microseconds): an id
///   from a history that is gone is `unknown`; a stream trimmed past the id (`max_len`), or more
///   than `replay_limit` entries missed on one stream, is `too_old`. A send to a client id is not
///   replayed.
///
/// The local broadcaster's `first_client_id` should come from `cluster_client_id_base()`; its
/// own history is not used for resuming (every resume reads Redis), and sends must go through
/// the bus (a local `send` reaches only this node). Join channels through `join` (a
/// `Broadcaster::join` made directly is not seen, and the node may not read that channel).
///
/// Threads: `send`, `connect`, `join`, `leave`, `last_id` and `stats` may be called from any
/// thread, and from the local broadcaster's sinks and hooks, on any thread (the readers'
/// included), without deadlock: the bus never holds a Redis connection's lock while delivering
/// or calling out, and never waits for its delivery lock from inside a delivery. Called from
/// inside a delivery, `connect` and `join` do not wait for the readers, and a `connect` on
/// another thread than a reader, at the moment a reader is about to deliver an entry, cannot
/// replay from Redis: its replay is then left `unknown`. Sends from many threads share round
/// trips per shard (`RedisOptions::send_batch`). `start` and `stop` must not be called from a
/// sink or hook.
template <class S>
class RedisStreamBus {
 public:
  RedisStreamBus(Broadcaster<S>& local, RedisOptions options)
      : local_(local), options_(std::move(options)) {
    std::vector<RedisEndpoint> endpoints = options_.shards;
    if (endpoints.empty()) endpoints.push_back(RedisEndpoint{options_.host, options_.port});
    for (const RedisEndpoint& e : endpoints) {
      RedisOptions o = options_;
      o.host = e.host;
      o.port = e.port;
      o.shards.clear();
      shards_.push_back(std::make_unique<Shard>(std::move(o)));
    }
    positions_.assign(shards_.size(), 0);
    counter_key_ = options_.stream + ":counter";
    epoch_key_ = options_.stream + ":epoch";
    idle_key_ = options_.stream + ":idle";
    Want self = want(Target::Selector{Target::Kind::client, local_.options().first_client_id, {}});
    Interest in;
    in.selector = self.selector;
    in.shard = shard_of(self.key);
    in.permanent = true;
    interest_.emplace(self.key, std::move(in));
  }
  RedisStreamBus(const RedisStreamBus&) = delete;
  RedisStreamBus& operator=(const RedisStreamBus&) = delete;
  ~RedisStreamBus() { stop(); }

  /// Starts a reader per shard. A node reads from each shard's counter as it finds it the first
  /// time: a node that is (re)started does not replay old entries to its (new) clients.
  void start() {
    for (std::size_t i = 0; i < shards_.size(); ++i) {
      detail::RedisReader::Steps steps;
      steps.setup = [this, i](detail::RedisConnection& c, std::string& error) {
        return setup(i, c, error);
      };
      steps.read = [this, i](detail::RedisConnection& c, std::string& error) {
        return read(i, c, error);
      };
      const std::string where = "redis shard " + std::to_string(i) + " (" +
                                shards_[i]->options.host + ":" +
                                std::to_string(shards_[i]->options.port) + ")";
      steps.setup_failed = where + ": cannot read the counter: ";
      steps.connected = where + ": reader connected";
      steps.lost = where + ": reader lost the connection: ";
      steps.read_failed = where + ": XREAD failed: ";
      shards_[i]->reader.start(std::move(steps));
    }
  }

  /// Stops the readers and waits for them.
  void stop() {
    for (auto& s : shards_) s->reader.stop();
  }

  /// Appends an event for `target` to its streams (one Lua script call per shard). Returns an id
  /// made of the counters it got ("0" on shards it did not write; one shard: the counter), or
  /// an error: the event's own (`validate`), `errc::invalid_name`, or `errc::bus_unavailable`
  /// when a shard it needs is unreachable (the copies on the other shards are delivered). An
  /// event id given by the caller is ignored. `delivered` is 0: delivery happens on every node
  /// when the entry is read.
  SendResult send(const Target& target, Event ev) {
    std::vector<std::pair<Target, Event>> one;
    one.emplace_back(target, std::move(ev));
    return std::move(send_many(std::move(one)).front());
  }

  /// Sends several events at once: per shard they are queued together and share round trips
  /// (up to `RedisOptions::send_batch` per trip). Appended in the given order on each shard;
  /// each result is what `send` would have returned for it.
  std::vector<SendResult> send_many(std::vector<std::pair<Target, Event>> items) {
    const std::size_t n = shards_.size();
    std::vector<SendResult> results(items.size());
    std::vector<std::vector<std::uint64_t>> got(items.size());
    std::vector<char> failed(items.size(), 0);
    std::vector<char> ok_item(items.size(), 0);
    std::deque<std::vector<std::string>> strings;  // what the argument views point into
    std::deque<detail::EntryFields> fields;
    std::vector<std::deque<std::vector<std::string_view>>> args(n);
    std::vector<std::vector<std::size_t>> slot(n);  // args[s][k] is items[slot[s][k]]
    const std::string maxlen = std::to_string(options_.max_len);
    for (std::size_t i = 0; i < items.size(); ++i) {
      const Target& target = items[i].first;
      Event& ev = items[i].second;
      ev.id.reset();
      if (auto valid = validate(ev); !valid) {
        results[i] = valid.error();
        continue;
      }
      if (!target.valid()) {
        results[i] = errc::invalid_name;
        continue;
      }
      ok_item[i] = 1;
      got[i].assign(n, 0);
      std::vector<std::vector<std::string>> keys = plan(target);
      fields.emplace_back(target, ev);
      for (std::size_t s = 0; s < n; ++s) {
        if (keys[s].empty()) continue;
        strings.push_back(std::move(keys[s]));
        strings.back().push_back(std::to_string(strings.back().size() + 2));
        const auto& k = strings.back();
        std::vector<std::string_view> a = {"EVAL", append_script(), k.back(), counter_key_,
                                           epoch_key_};
        for (std::size_t j = 0; j + 1 < k.size(); ++j) a.push_back(k[j]);
        a.push_back(maxlen);
        fields.back().append_to(a, ev);
        args[s].push_back(std::move(a));
        slot[s].push_back(i);
      }
    }
    for (std::size_t s = 0; s < n; ++s) {
      if (args[s].empty()) continue;
      std::vector<const std::vector<std::string_view>*> commands;
      for (const auto& a : args[s]) commands.push_back(&a);
      auto outcomes = shards_[s]->pipe.send_all(commands);
      for (std::size_t k = 0; k < outcomes.size(); ++k) {
        if (!outcomes[k].why.empty()) log(outcomes[k].why);
        auto counter = outcomes[k].ok ? detail::parse_u64(outcomes[k].text) : std::nullopt;
        if (counter) {
          got[slot[s][k]][s] = *counter;
          ++shards_[s]->appended;
        } else {
          failed[slot[s][k]] = 1;
          ++shards_[s]->append_errors;
        }
      }
    }
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (!ok_item[i]) continue;
      if (failed[i]) {
        ++publish_errors_;
        results[i] = errc::bus_unavailable;
      } else {
        ++published_;
        results[i] = Sent{detail::format_positions(got[i]), 0};
      }
    }
    return results;
  }

  SendResult broadcast(Event ev) { return send(Target::all(), std::move(ev)); }
  SendResult send_to_user(std::string_view user, Event ev) {
    return send(Target::user(user), std::move(ev));
  }
  SendResult publish(std::string_view channel, Event ev) {
    return send(Target::channel(std::string(channel)), std::move(ev));
  }
  SendResult send_to(ClientId id, Event ev) { return send(Target::client(id), std::move(ev)); }

  /// Connects a client to the local broadcaster, once the readers read its streams; with a
  /// Last-Event-ID (an id of this bus, from any node), replays from Redis what it missed on
  /// each of its streams before anything newer. `replay` is then `found`, `too_old` or
  /// `unknown` (an id of another scheme, of a history that is gone, or Redis unreachable).
  ConnectResult connect(S sink, ConnectOptions options) {
    const bool in_delivery = local_.delivering();
    const bool nested = deliver_mutex_.held_here();
    std::optional<std::string> last = std::move(options.last_event_id);
    options.last_event_id.reset();
    if (last && last->empty()) last.reset();
    std::vector<Want> wants = wants_of(options.user, options.pools, options.channels);
    Pins pins(*this, wants);
    std::optional<std::vector<std::uint64_t>> from;
    if (last) from = detail::parse_positions(*last, shards_.size());
    if (!in_delivery && !nested) {
      await_readers(pins.need);
      if (from) await_catch_up(*from, wants);
    }
    // deliver_mutex_ keeps the readers from delivering between this client's registration and
    // the end of its replay. This thread may hold it already (a hook of a reader's delivery, or
    // of a connect in progress). Inside a delivery of the local broadcaster it is only tried: a
    // reader may hold it, waiting for that delivery.
    std::unique_lock<detail::OwnedMutex> hold(deliver_mutex_, std::defer_lock);
    if (!nested) {
      if (in_delivery) (void)hold.try_lock();
      else hold.lock();
    }
    std::string user = options.user;
    std::vector<std::string> pools = options.pools;
    std::vector<std::string> channels = options.channels;
    ConnectResult r = local_.connect(std::move(sink), std::move(options));
    if (!r || !last) return r;
    r->replay = Replay::unknown;
    if (!from) return r;  // not an id of this bus
    if (!nested && !hold.owns_lock()) {
      log("redis: no replay from Redis for a client connected from inside a delivery while a "
          "reader was delivering: replay left unknown");
      return r;
    }
    for (const auto& refused : r->refused_channels)
      channels.erase(std::remove(channels.begin(), channels.end(), refused), channels.end());
    replay_from_redis(*r, *from, user, pools, channels, in_delivery);
    return r;
  }

  /// Joins a client to a channel (`Broadcaster::join`), once the readers read its stream.
  Result<void> join(ClientId id, std::string_view channel) {
    if (!valid_group_name(channel)) return errc::invalid_name;
    std::vector<Want> wants{want(Target::Selector{Target::Kind::channel, 0, std::string(channel)})};
    Pins pins(*this, wants);
    if (!local_.delivering() && !deliver_mutex_.held_here()) await_readers(pins.need);
    return local_.join(id, channel);
  }

  /// Takes a client out of a channel (`Broadcaster::leave`); the stream is dropped later when no
  /// client here needs it.
  Result<void> leave(ClientId id, std::string_view channel) { return local_.leave(id, channel); }

  /// This node's read position on every shard (the id of the next event it delivers is at or
  /// after it); "" until every shard's reader found where to start.
  std::string last_id() const {
    std::lock_guard<std::mutex> lock(state_mutex_);
    for (const auto& s : shards_)
      if (!s->started) return {};
    return detail::format_positions(positions_);
  }

  RedisStats stats() const {
    RedisStats s;
    s.shards = shards_.size();
    std::uint64_t trips = 0, reconnects = 0, received = 0;
    for (const auto& sh : shards_) {
      RedisShardStats one;
      one.endpoint = RedisEndpoint{sh->options.host, sh->options.port};
      one.connected = sh->reader.connected();
      one.appended = sh->appended.load();
      one.append_errors = sh->append_errors.load();
      one.received = sh->received.load();
      one.reconnects = sh->reader.reconnects();
      if (one.connected) ++s.shards_connected;
      trips += sh->pipe.round_trips();
      reconnects += one.reconnects;
      received += one.received;
      s.per_shard.push_back(std::move(one));
    }
    s.connected = s.shards_connected == s.shards;
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      for (std::size_t i = 0; i < shards_.size(); ++i) {
        s.per_shard[i].streams = shards_[i]->streams;
        s.streams += shards_[i]->streams;
      }
    }
    s.published = published_.load();
    s.publish_errors = publish_errors_.load();
    s.send_round_trips = trips;
    s.received = received;
    s.malformed = malformed_.load();
    s.reconnects = reconnects;
    s.redis_replays = redis_replays_.load();
    return s;
  }

 private:
  struct Shard {
    explicit Shard(RedisOptions o) : options(std::move(o)) {}
    RedisOptions options;
    detail::RedisReader reader{options};
    detail::SendPipe pipe{options};
    std::atomic<long long> reader_client{-1};  // the reader's CLIENT ID, for CLIENT UNBLOCK
    std::atomic<std::uint64_t> received{0};
    std::atomic<std::uint64_t> appended{0}, append_errors{0};
    // Guarded by state_mutex_:
    bool started = false;     // knows where to start reading
    std::uint64_t epoch = 0;  // the counter's start (0: not known yet)
    std::uint64_t acked = 0;  // the interest generation the reader has taken
    std::size_t streams = 0;  // streams it reads
    // The reader's alone (and read under state_mutex_ by the reader only):
    std::map<std::string, std::string> cursors;  // stream key -> last entry id read
    std::chrono::steady_clock::time_point pruned{};
    bool delivered_any = false;
  };

  // A stream some local client needs (or will need once its connect or join is done).
  struct Interest {
    Target::Selector selector;
    bool all = false;
    bool permanent = false;  // the node's own stream
    std::size_t shard = 0;
    std::size_t pins = 0;        // connects and joins in progress that need it
    std::uint64_t added = 0;     // the generation it was added at
    std::uint64_t touched = 0;   // bumped on each pin (a prune check in between is stale)
  };

  struct Want {
    std::string key;
    Target::Selector selector;
    bool all = false;
  };

  // The interests of a connect or join in progress: added (if new) and pinned, unpinned at the
  // end (the local broadcaster then has the member that keeps them).
  struct Pins {
    Pins(RedisStreamBus& b, const std::vector<Want>& w) : bus(b), wants(w) {
      need = bus.pin(wants);
    }
    Pins(const Pins&) = delete;
    Pins& operator=(const Pins&) = delete;
    ~Pins() { bus.unpin(wants); }
    RedisStreamBus& bus;
    const std::vector<Want>& wants;
    std::vector<std::uint64_t> need;  // per shard, the generation its reader must have taken
  };

  static const char* append_script() noexcept {
    // KEYS: counter, epoch, streams...; ARGV: maxlen, field, value, ... A missing counter starts
    // a new history at the current time in microseconds (its epoch), above any counter an
    // earlier history of this shard reached.
    return "local c = redis.call('INCR', KEYS[1])\n"
           "if c == 1 then\n"
           "  local t = redis.call('TIME')\n"
           "  local e = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
           "  redis.call('SET', KEYS[2], string.format('%d', e))\n"
           "  c = e + 1\n"
           "  redis.call('SET', KEYS[1], string.format('%d', c))\n"
           "end\n"
           "local id = string.format('%d', c) .. '-0'\n"
           "for i = 3, #KEYS do\n"
           "  redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[1], id, unpack(ARGV, 2))\n"
           "end\n"
           "return string.format('%d', c)\n";
  }

  void log(const std::string& line) const {
    if (options_.on_log) options_.on_log(line);
  }

  std::size_t shard_of(std::string_view key) const noexcept {
    return redis_shard_of(key, shards_.size());
  }

  Want want(const Target::Selector& s) const {
    Want w;
    w.key = detail::stream_key(options_.stream, s);
    w.selector = s;
    return w;
  }

  // The streams a client with these names reads: all, its user, pools and channels.
  std::vector<Want> wants_of(const std::string& user, const std::vector<std::string>& pools,
                             const std::vector<std::string>& channels) const {
    std::vector<Want> out;
    Want all;
    all.key = detail::all_stream_key(options_.stream);
    all.all = true;
    out.push_back(std::move(all));
    if (valid_group_name(user)) out.push_back(want(Target::Selector{Target::Kind::user, 0, user}));
    for (const auto& p : pools)
      if (valid_group_name(p)) out.push_back(want(Target::Selector{Target::Kind::pool, 0, p}));
    for (const auto& c : channels)
      if (valid_group_name(c)) out.push_back(want(Target::Selector{Target::Kind::channel, 0, c}));
    return out;
  }

  // Per shard, the stream keys a send to `target` appends to (each once).
  std::vector<std::vector<std::string>> plan(const Target& target) const {
    std::vector<std::vector<std::string>> keys(shards_.size());
    auto add = [&](std::string key) {
      auto& k = keys[shard_of(key)];
      if (std::find(k.begin(), k.end(), key) == k.end()) k.push_back(std::move(key));
    };
    if (target.is_all()) {
      add(detail::all_stream_key(options_.stream));
      return keys;
    }
    for (const auto& s : target.selectors()) add(detail::stream_key(options_.stream, s));
    return keys;
  }

  // The part of `target` carried by shard `i`'s copy, and the clients that copy leaves out (they
  // match a part on a lower shard, whose copy reaches them).
  void split(const Target& target, std::size_t i, Target& part, Target& except) const {
    if (target.is_all()) {
      part = Target::all();
      return;
    }
    for (const auto& s : target.selectors()) {
      const std::size_t at = shard_of(detail::stream_key(options_.stream, s));
      Target one;
      switch (s.kind) {
        case Target::Kind::client: one = Target::client(s.client); break;
        case Target::Kind::user: one = Target::user(s.name); break;
        case Target::Kind::pool: one = Target::pool(s.name); break;
        case Target::Kind::channel: one = Target::channel(s.name); break;
      }
      if (at == i) part |= one;
      else if (at < i) except |= one;
    }
  }

  std::vector<std::uint64_t> pin(const std::vector<Want>& wants) {
    std::vector<std::uint64_t> need(shards_.size(), 0);
    std::lock_guard<std::mutex> lock(state_mutex_);
    for (const Want& w : wants) {
      auto it = interest_.find(w.key);
      if (it == interest_.end()) {
        Interest in;
        in.selector = w.selector;
        in.all = w.all;
        in.shard = shard_of(w.key);
        in.added = ++generation_;
        it = interest_.emplace(w.key, std::move(in)).first;
      }
      ++it->second.pins;
      ++it->second.touched;
      need[it->second.shard] = std::max(need[it->second.shard], it->second.added);
    }
    return need;
  }

  void unpin(const std::vector<Want>& wants) {
    std::lock_guard<std::mutex> lock(state_mutex_);
    for (const Want& w : wants) {
      auto it = interest_.find(w.key);
      if (it != interest_.end() && it->second.pins > 0) --it->second.pins;
    }
  }

  // Waits (up to `timeout`) until each connected reader has taken the interests it must read,
  // waking it from its blocking XREAD (CLIENT UNBLOCK) until it has.
  void await_readers(const std::vector<std::uint64_t>& need) {
    const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
    auto pending = [&](std::size_t s) {
      return need[s] != 0 && shards_[s]->acked < need[s] && shards_[s]->reader.connected();
    };
    while (true) {
      std::vector<std::size_t> wake;
      {
        std::lock_guard<std::mutex> lock(state_mutex_);
        for (std::size_t s = 0; s < shards_.size(); ++s)
          if (pending(s)) wake.push_back(s);
      }
      if (wake.empty() || std::chrono::steady_clock::now() >= deadline) return;
      for (std::size_t s : wake) unblock(s);
      std::unique_lock<std::mutex> lock(state_mutex_);
      progress_cv_.wait_for(lock, std::chrono::milliseconds(20), [&] {
        for (std::size_t s : wake)
          if (pending(s)) return false;
        return true;
      });
    }
  }

  void unblock(std::size_t s) {
    const long long id = shards_[s]->reader_client.load();
    if (id < 0) return;
    const std::string text = std::to_string(id);
    std::string error;
    (void)shards_[s]->pipe.exclusive(
        [&](detail::RedisConnection& c, std::string& err) {
          return c.command({"CLIENT", "UNBLOCK", text}, err) != nullptr;
        },
        error);
  }

  // The keys of `wants` on shard `s` (the node's own streams excepted).
  std::vector<std::string> keys_on(const std::vector<Want>& wants, std::size_t s) const {
    std::vector<std::string> keys;
    for (const Want& w : wants)
      if (shard_of(w.key) == s) keys.push_back(w.key);
    return keys;
  }

  // A client resuming from positions ahead of this node's: waits (up to `timeout`) until this
  // node has delivered the entries of the client's streams up to them, so that it does not
  // deliver the client what it already has.
  void await_catch_up(const std::vector<std::uint64_t>& from, const std::vector<Want>& wants) {
    for (std::size_t s = 0; s < shards_.size(); ++s) {
      std::uint64_t at;
      {
        std::lock_guard<std::mutex> lock(state_mutex_);
        at = positions_[s];
      }
      if (from[s] <= at) continue;
      std::vector<std::string> keys = keys_on(wants, s);
      std::uint64_t newest = 0;
      std::string error;
      const std::string hi = std::to_string(from[s]) + "-0";
      const std::string lo = "(" + std::to_string(at) + "-0";
      (void)shards_[s]->pipe.exclusive(
          [&](detail::RedisConnection& c, std::string& err) {
            for (const auto& k : keys) {
              auto r = c.command({"XREVRANGE", k, hi, lo, "COUNT", "1"}, err);
              if (!r) return false;
              if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->elements > 0)
                if (auto n = detail::entry_counter(detail::reply_text(r->element[0]->element[0])))
                  newest = std::max(newest, *n);
            }
            return true;
          },
          error);
      if (newest <= at) continue;
      std::unique_lock<std::mutex> lock(state_mutex_);
      progress_cv_.wait_for(lock, options_.timeout, [&] { return positions_[s] >= newest; });
    }
  }

  // Replays from Redis what client `r.id` missed after `from`, up to where this node is. Called
  // holding deliver_mutex_ (directly or through a reader); `queued` when called from inside a
  // local delivery, which runs the replay right after itself, before anything newer.
  void replay_from_redis(Connected& r, const std::vector<std::uint64_t>& from,
                         const std::string& user, const std::vector<std::string>& pools,
                         const std::vector<std::string>& channels, bool queued) {
    std::vector<std::uint64_t> upto;
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      upto = positions_;
    }
    auto in = [](const std::vector<std::string>& v) {
      return [&v](std::string_view name) { return std::find(v.begin(), v.end(), name) != v.end(); };
    };
    auto in_pool = in(pools);
    auto in_channel = in(channels);
    const std::vector<Want> wants = wants_of(user, pools, channels);
    std::vector<std::uint64_t> at = from;  // the id of what the client has so far
    std::vector<Frame> frames;
    for (std::size_t s = 0; s < shards_.size(); ++s) {
      std::vector<std::string> keys = keys_on(wants, s);
      if (keys.empty()) {  // nothing of this client's on that shard
        at[s] = std::max(from[s], upto[s]);
        continue;
      }
      if (from[s] >= upto[s]) {  // nothing to replay; an id of a lost history is still unknown
        if (!same_history(s, from[s])) {
          r.replay = Replay::unknown;
          return;
        }
        continue;
      }
      std::vector<detail::RedisReplyPtr> ranges;
      std::optional<Replay> verdict;
      std::string error;
      const bool asked = shards_[s]->pipe.exclusive(
          [&](detail::RedisConnection& c, std::string& err) {
            return fetch(c, keys, from[s], upto[s], ranges, verdict, err);
          },
          error);
      if (!asked) {
        log("redis: cannot replay from shard " + std::to_string(s) + ": " + error);
        r.replay = Replay::unknown;
        return;
      }
      if (verdict) {
        r.replay = *verdict;
        return;
      }
      std::vector<Item> items;
      for (std::size_t k = 0; k < ranges.size(); ++k) collect(ranges[k].get(), k, items);
      sort_items(items);
      std::uint64_t previous = 0;
      for (const Item& item : items) {
        if (item.counter == previous) continue;  // the same entry on another stream
        previous = item.counter;
        Target target;
        Event ev;
        if (!detail::decode_entry(item.entry, target, ev)) continue;
        Target part, except;
        split(target, s, part, except);
        if (!part.matches(r.id, user, in_pool, in_channel)) continue;
        if (except.matches(r.id, user, in_pool, in_channel)) continue;
        at[s] = item.counter;
        ev.id = detail::format_positions(at);
        frames.push_back(Frame::from_event(ev));
      }
      at[s] = upto[s];
    }
    std::size_t sent = 0;
    for (Frame& f : frames) {
      if (queued) {
        (void)local_.send_encoded(Target::client(r.id), std::move(f));
      } else if (!local_.deliver_to(r.id, std::move(f))) {
        break;  // the client's sink failed: it is gone
      }
      ++sent;
    }
    r.replay = Replay::found;
    r.replayed = sent;
    ++redis_replays_;
  }

  // Whether position `from` on shard `s` belongs to the shard's current history (asked of
  // Redis; false when it cannot be asked).
  bool same_history(std::size_t s, std::uint64_t from) {
    if (from == 0) return true;
    std::optional<std::uint64_t> epoch;
    std::string error;
    const bool asked = shards_[s]->pipe.exclusive(
        [&](detail::RedisConnection& c, std::string& err) {
          auto e = c.command({"GET", epoch_key_}, err);
          if (!e) return false;
          epoch = detail::parse_u64(detail::reply_text(e.get()));
          return true;
        },
        error);
    return asked && epoch && from >= *epoch;
  }

  // The replay's Redis side on one shard: the epoch (an id of an earlier history is unknown),
  // then per stream whether it was trimmed past `from`, and its entries in (from, upto].
  bool fetch(detail::RedisConnection& c, const std::vector<std::string>& keys, std::uint64_t from,
             std::uint64_t upto, std::vector<detail::RedisReplyPtr>& ranges,
             std::optional<Replay>& verdict, std::string& err) {
    auto epoch = c.command({"GET", epoch_key_}, err);
    if (!epoch) return false;
    auto e = detail::parse_u64(detail::reply_text(epoch.get()));
    if (from != 0 && (!e || from < *e)) {
      verdict = Replay::unknown;
      return true;
    }
    const std::string lo = "(" + std::to_string(from) + "-0";
    const std::string hi = std::to_string(upto) + "-0";
    const std::string count = std::to_string(options_.replay_limit + 1);
    for (const auto& k : keys) {
      auto info = c.command({"XINFO", "STREAM", k}, err);
      if (!info) {
        if (!c.connected()) return false;
        err.clear();  // no such stream: nothing to replay from it
        continue;
      }
      if (trimmed_past(info.get(), from)) {
        verdict = Replay::too_old;
        return true;
      }
      auto range = c.command({"XRANGE", k, lo, hi, "COUNT", count}, err);
      if (!range) return false;
      if (range->type == REDIS_REPLY_ARRAY && range->elements > options_.replay_limit) {
        verdict = Replay::too_old;
        return true;
      }
      ranges.push_back(std::move(range));
    }
    return true;
  }

  // Whether XINFO STREAM says entries after `from` may be gone: one deleted after it
  // (max-deleted-entry-id), or entries removed (trimmed: entries-added above length; before
  // Redis 7, a stream at max_len) while its first remaining one is after `from`.
  bool trimmed_past(const redisReply* info, std::uint64_t from) const {
    if (!info || info->type != REDIS_REPLY_ARRAY) return false;
    std::optional<std::uint64_t> deleted, first;
    std::optional<long long> added;
    long long length = 0;
    for (std::size_t i = 0; i + 1 < info->elements; i += 2) {
      auto key = detail::reply_text(info->element[i]);
      const redisReply* v = info->element[i + 1];
      if (key == "max-deleted-entry-id") {
        auto text = detail::reply_text(v);
        deleted = detail::parse_u64(text.substr(0, text.find('-')));
      } else if (key == "length" && v && v->type == REDIS_REPLY_INTEGER) {
        length = v->integer;
      } else if (key == "entries-added" && v && v->type == REDIS_REPLY_INTEGER) {
        added = v->integer;
      } else if (key == "first-entry" && v && v->type == REDIS_REPLY_ARRAY && v->elements > 0) {
        first = detail::entry_counter(detail::reply_text(v->element[0]));
      }
    }
    if (deleted && *deleted > from) return true;
    const bool removed = added ? *added > length
                               : static_cast<std::size_t>(length) >= options_.max_len;
    return removed && first && *first > from;
  }

  // One entry read: its counter, the stream it came from, and the reply holding it.
  struct Item {
    std::uint64_t counter = 0;
    std::size_t stream = 0;
    const redisReply* entry = nullptr;
    bool ours = true;  // its id is "<counter>-0"
  };

  static void collect(const redisReply* entries, std::size_t stream, std::vector<Item>& out) {
    if (!entries || entries->type != REDIS_REPLY_ARRAY) return;
    for (std::size_t j = 0; j < entries->elements; ++j) {
      const redisReply* e = entries->element[j];
      if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 1) continue;
      auto text = detail::reply_text(e->element[0]);
      Item item;
      item.stream = stream;
      item.entry = e;
      auto counter = detail::entry_counter(text);
      if (counter) {
        item.counter = *counter;
      } else {
        item.ours = false;
        item.counter = detail::parse_u64(text.substr(0, text.find('-'))).value_or(0);
      }
      out.push_back(item);
    }
  }

  static void sort_items(std::vector<Item>& items) {
    std::stable_sort(items.begin(), items.end(),
                     [](const Item& a, const Item& b) { return a.counter < b.counter; });
  }

  // After each connect to shard `i`: the reader's client id, the shard's epoch and counter.
  bool setup(std::size_t i, detail::RedisConnection& c, std::string& error) {
    Shard& sh = *shards_[i];
    auto id = c.command({"CLIENT", "ID"}, error);
    if (!id) return false;
    if (id->type == REDIS_REPLY_INTEGER) sh.reader_client = id->integer;
    auto epoch = c.command({"GET", epoch_key_}, error);
    if (!epoch) return false;
    auto counter = c.command({"GET", counter_key_}, error);
    if (!counter) return false;
    const std::uint64_t e = detail::parse_u64(detail::reply_text(epoch.get())).value_or(0);
    const std::uint64_t k = detail::parse_u64(detail::reply_text(counter.get())).value_or(0);
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      if (!sh.started) {
        positions_[i] = k;
        sh.started = true;
      } else if (e != 0 && sh.epoch != 0 && e != sh.epoch) {
        // The shard's history was lost and started again. The cursors stay: the new history's
        // counters start above every one of the old (its epoch), so reading on from them reads
        // the new one from its start, the entries appended before this reconnect included.
        // (Dropping them would start the streams at the current counter and skip those.)
        if (positions_[i] > e) positions_[i] = e;
        log("redis shard " + std::to_string(i) + ": history started again (epoch " +
            std::to_string(e) + "); ids of the old one resume as unknown");
      }
      if (e != 0) sh.epoch = e;
    }
    c.set_timeout(options_.block + options_.timeout);
    return true;
  }

  // Takes the interests of shard `i`: returns the keys it does not read yet (and the generation
  // seen, acknowledged once they are started); drops what no local client needs any more (at
  // most once a second).
  std::vector<std::string> sync(std::size_t i, std::uint64_t& generation) {
    Shard& sh = *shards_[i];
    const auto now = std::chrono::steady_clock::now();
    const bool prune = now - sh.pruned >= std::min<std::chrono::milliseconds>(
                                               options_.block, std::chrono::milliseconds(1000));
    struct Candidate {
      std::string key;
      Target::Selector selector;
      bool all;
      std::uint64_t touched;
    };
    std::vector<Candidate> candidates;
    std::vector<std::string> fresh;
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      for (auto& [key, in] : interest_) {
        if (in.shard != i) continue;
        if (sh.cursors.find(key) == sh.cursors.end()) fresh.push_back(key);
        if (prune && !in.permanent && in.pins == 0)
          candidates.push_back(Candidate{key, in.selector, in.all, in.touched});
      }
      for (auto it = sh.cursors.begin(); it != sh.cursors.end();) {
        if (interest_.find(it->first) == interest_.end()) it = sh.cursors.erase(it);
        else ++it;
      }
      generation = generation_;
      sh.streams = sh.cursors.size();
    }
    if (!prune) return fresh;
    sh.pruned = now;
    for (const Candidate& c : candidates) {
      const bool needed = c.all ? local_.size() > 0 : local_.has_members(c.selector);
      if (needed) continue;
      std::lock_guard<std::mutex> lock(state_mutex_);
      auto it = interest_.find(c.key);
      if (it == interest_.end() || it->second.pins != 0 || it->second.touched != c.touched)
        continue;
      interest_.erase(it);
      sh.cursors.erase(c.key);
      sh.streams = sh.cursors.size();
    }
    return fresh;
  }

  // Starts reading `fresh` streams on shard `i` from the shard's current counter: the streams
  // read so far are drained up to it, atomically with reading it (MULTI: XREAD, GET), and the
  // node's position moves there. (From the node's own position instead, a node that had read
  // nothing on that shard for a while would hand its new clients that while's old entries.)
  bool start_streams(std::size_t i, detail::RedisConnection& c,
                     const std::vector<std::string>& fresh, std::string& error) {
    Shard& sh = *shards_[i];
    std::uint64_t at = 0;
    for (int round = 0;; ++round) {
      std::vector<std::string> keys, ids;
      for (const auto& [k, id] : sh.cursors) {
        keys.push_back(k);
        ids.push_back(id);
      }
      const std::string count = std::to_string(options_.read_count);
      std::vector<std::string_view> xread = {"XREAD", "COUNT", count, "STREAMS"};
      for (const auto& k : keys) xread.push_back(k);
      for (const auto& id : ids) xread.push_back(id);
      if (!c.command({"MULTI"}, error)) return false;
      if ((!keys.empty() && !c.command_argv(xread, error)) ||
          !c.command({"GET", counter_key_}, error)) {
        std::string ignored;
        if (c.connected()) (void)c.command({"DISCARD"}, ignored);
        return false;
      }
      auto done = c.command({"EXEC"}, error);
      if (!done) return false;
      if (done->type != REDIS_REPLY_ARRAY || done->elements != (keys.empty() ? 1u : 2u)) {
        error = "unexpected reply to EXEC";
        return false;
      }
      const redisReply* counter = done->element[done->elements - 1];
      const bool complete = keys.empty() || take(i, done->element[0]);
      if (complete || round >= 100) {  // (a flood that never lets go: start where it is)
        at = detail::parse_u64(detail::reply_text(counter)).value_or(0);
        break;
      }
    }
    std::lock_guard<std::mutex> lock(state_mutex_);
    if (at > positions_[i]) positions_[i] = at;
    for (const auto& k : fresh) sh.cursors.emplace(k, std::to_string(positions_[i]) + "-0");
    sh.streams = sh.cursors.size();
    return true;
  }

  // Delivers the entries of an XREAD reply on shard `i` in counter order across its streams
  // (each entry once) and moves the cursors. False when a stream returned a full COUNT: entries
  // after the smallest such last one wait for the next read (nothing may overtake them).
  bool take(std::size_t i, const redisReply* reply) {
    Shard& sh = *shards_[i];
    if (!reply || reply->type != REDIS_REPLY_ARRAY) return true;  // nothing new
    std::uint64_t limit = UINT64_MAX;
    std::vector<Item> items;
    std::vector<std::string> names;
    for (std::size_t s = 0; s < reply->elements; ++s) {
      const redisReply* st = reply->element[s];
      if (!st || st->type != REDIS_REPLY_ARRAY || st->elements != 2) continue;
      const redisReply* entries = st->element[1];
      names.emplace_back(detail::reply_text(st->element[0]));
      const std::size_t before = items.size();
      collect(entries, names.size() - 1, items);
      if (items.size() > before && entries->elements >= options_.read_count)
        limit = std::min(limit, items.back().counter);
    }
    sort_items(items);
    std::vector<std::string> last(names.size());
    std::uint64_t previous = 0;
    for (const Item& item : items) {
      if (item.counter > limit) break;
      last[item.stream] = std::string(detail::reply_text(item.entry->element[0]));
      if (item.ours && item.counter == previous) continue;  // the same entry on another stream
      previous = item.counter;
      deliver(i, item);
      sh.delivered_any = true;
    }
    for (std::size_t s = 0; s < names.size(); ++s) {
      if (last[s].empty()) continue;
      auto it = sh.cursors.find(names[s]);
      if (it != sh.cursors.end()) it->second = std::move(last[s]);
    }
    return limit == UINT64_MAX;
  }

  // A reader's step on shard `i`: the interests taken, then one blocking XREAD of its streams
  // and the delivery of what came.
  bool read(std::size_t i, detail::RedisConnection& c, std::string& error) {
    Shard& sh = *shards_[i];
    std::uint64_t generation = 0;
    std::vector<std::string> fresh = sync(i, generation);
    if (!fresh.empty() && !start_streams(i, c, fresh, error)) return false;
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      sh.acked = generation;
    }
    progress_cv_.notify_all();
    std::vector<std::string> keys, ids;
    for (const auto& [k, id] : sh.cursors) {
      keys.push_back(k);
      ids.push_back(id);
    }
    if (keys.empty()) {  // nothing to read here now: wait for an interest (or stop)
      keys.push_back(idle_key_);
      ids.push_back("$");
    }
    const std::string block = std::to_string(options_.block.count());
    const std::string count = std::to_string(options_.read_count);
    std::vector<std::string_view> args = {"XREAD", "COUNT", count, "BLOCK", block, "STREAMS"};
    for (const auto& k : keys) args.push_back(k);
    for (const auto& id : ids) args.push_back(id);
    auto reply = c.command_argv(args, error);
    if (!reply) return false;
    (void)take(i, reply.get());
    if (sh.delivered_any && sh.epoch == 0) {  // the shard's history began after this node started
      auto epoch = c.command({"GET", epoch_key_}, error);
      if (!epoch) return false;
      std::lock_guard<std::mutex> lock(state_mutex_);
      sh.epoch = detail::parse_u64(detail::reply_text(epoch.get())).value_or(0);
    }
    return true;
  }

  void deliver(std::size_t i, const Item& item) {
    Shard& sh = *shards_[i];
    ++sh.received;
    Target target;
    Event ev;
    const bool ok = item.ours && detail::decode_entry(item.entry, target, ev);
    std::lock_guard<detail::OwnedMutex> hold(deliver_mutex_);
    std::string id;
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      if (item.ours && item.counter > positions_[i]) positions_[i] = item.counter;
      id = detail::format_positions(positions_);
    }
    progress_cv_.notify_all();
    if (!ok) {
      ++malformed_;
      log("redis shard " + std::to_string(i) + ": skipped a malformed stream entry " +
          std::string(detail::reply_text(item.entry->element[0])));
      return;
    }
    Target part, except;
    split(target, i, part, except);
    ev.id = std::move(id);
    (void)local_.send_encoded(part, Frame::from_event(ev), std::nullopt, except);
  }

  Broadcaster<S>& local_;
  RedisOptions options_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::string counter_key_, epoch_key_, idle_key_;
  // Lock order: deliver_mutex_, then the local broadcaster's delivery lock, then a send pipe or
  // state_mutex_ (each taken alone, around Redis commands or a few copies, never while
  // delivering or calling out). The delivery lock is never held while waiting for
  // deliver_mutex_ (only tried then).
  detail::OwnedMutex deliver_mutex_;  // held while an entry is delivered or a client replayed
  mutable std::mutex state_mutex_;    // positions_, interest_, generation_, the shards' state
  std::condition_variable progress_cv_;  // a position moved or a reader took the interests
  std::vector<std::uint64_t> positions_;  // per shard, the last counter delivered
  std::map<std::string, Interest> interest_;
  std::uint64_t generation_ = 0;
  std::atomic<std::uint64_t> published_{0}, publish_errors_{0}, malformed_{0}, redis_replays_{0};
};

SSEPP_END_NAMESPACE
