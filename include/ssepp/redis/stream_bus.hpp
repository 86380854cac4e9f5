// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// RedisStreamBus: several nodes, one Redis stream (XADD to send, XREAD to deliver).
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

/// Several nodes, one stream: each node's `Broadcaster` behaves as part of one cluster.
///
/// - `send` appends the event and its target to the Redis stream (XADD, MAXLEN ~) and returns
///   the entry id, which becomes the event id everywhere. It does not deliver: every node, this
///   one included, delivers what it reads from the stream, in stream order, so all nodes agree
///   on order and ids. While Redis is unreachable `send` fails with `errc::bus_unavailable`:
///   nothing is silently dropped.
/// - A reader thread per node blocks in XREAD and hands each entry to the local broadcaster
///   (its history uses `stream_id_order`). When Redis goes away the node keeps serving its local
///   clients, retries with backoff, and on return reads on from the last id it delivered: no
///   entry is lost or delivered twice (as long as the stream kept it, see `max_len`).
/// - `connect` resumes a client on any node: from the local history when the Last-Event-ID is
///   there, else from Redis (XRANGE) — the events after that id this client would have received,
///   in order, before anything newer. A direct send to a client id is not replayed: ids of
///   earlier connections are gone. Use client ids that are unique in the cluster
///   (`BroadcasterOptions::first_client_id` from `cluster_client_id_base()`).
///
/// The local broadcaster must be made with `id_order = stream_id_order`; sends must go through
/// the bus (a local `send` would reach only this node and use a local id).
///
/// Threads: `send`, `connect`, `last_id` and `stats` may be called from any thread, and from the
/// local broadcaster's sinks and hooks, on any thread (the reader's included), without deadlock:
/// the bus never holds its Redis connection's lock while delivering or calling out, and never
/// waits for its delivery lock from inside a delivery. A `send` from a hook waits for its Redis
/// round trip there and then (the local delivery that called the hook waits for it).
///
/// Sends from many threads share round trips (`RedisOptions::send_batch`): whichever sending
/// thread finds the connection free writes every queued XADD at once and hands each caller its
/// own reply; each caller still gets its own entry id or `errc::bus_unavailable`, and the sends
/// of one thread are appended in the order it made them. A `connect` from
/// inside a local delivery on another thread than the reader, at the moment the reader is about
/// to deliver an entry, cannot replay from Redis (it would have to wait for the reader, which
/// waits for that delivery): its replay is then left as the local history's verdict, `too_old`
/// or `unknown`, and the host sends a snapshot. `start` and `stop` must not be called from a
/// sink or hook.
template <class S>
class RedisStreamBus {
 public:
  RedisStreamBus(Broadcaster<S>& local, RedisOptions options)
      : local_(local), options_(std::move(options)) {}
  RedisStreamBus(const RedisStreamBus&) = delete;
  RedisStreamBus& operator=(const RedisStreamBus&) = delete;
  ~RedisStreamBus() { stop(); }

  /// Starts the reader. The first read starts after the stream's current last entry; a node
  /// that is (re)started therefore does not replay old entries to its (new) clients.
  void start() {
    detail::RedisReader::Steps steps;
    steps.setup = [this](detail::RedisConnection& c, std::string& error) {
      // Connected means able to read: a first start needs the stream's last id.
      if (last_id().empty() && !read_start_id(c, error)) return false;
      c.set_timeout(options_.block + options_.timeout);
      return true;
    };
    steps.read = [this](detail::RedisConnection& c, std::string& error) { return read(c, error); };
    steps.setup_failed = "redis: cannot read the stream " + options_.stream + ": ";
    steps.connected = "redis: reader connected";
    steps.lost = "redis: reader lost the connection: ";
    steps.read_failed = "redis: XREAD failed: ";
    reader_.start(std::move(steps));
  }

  /// Stops the reader and waits for it.
  void stop() { reader_.stop(); }

  /// Appends an event for `target` to the stream. Returns the entry id (the event id on every
  /// node) or an error: the event's own (`validate`), or `errc::bus_unavailable`. An event id
  /// given by the caller is ignored: the stream assigns ids. `delivered` is 0: delivery happens
  /// on every node when the entry is read.
  SendResult send(const Target& target, Event ev) {
    ev.id.reset();
    if (auto valid = validate(ev); !valid) return valid.error();
    detail::EntryFields fields(target, ev);
    std::string maxlen = std::to_string(options_.max_len);
    std::vector<std::string_view> args = {"XADD", options_.stream, "MAXLEN", "~", maxlen, "*"};
    fields.append_to(args, ev);
    // The pipe holds no lock while it waits for Redis and calls nothing out (the log line is
    // written after it returns), so a hook may send while holding the local delivery lock.
    auto out = pipe_.send(args);
    if (!out.why.empty()) log(out.why);
    if (!out.ok) {
      ++publish_errors_;
      return errc::bus_unavailable;
    }
    ++published_;
    return Sent{std::move(out.text), 0};
  }

  /// Sends several events at once: they are queued together and share round trips (up to
  /// `RedisOptions::send_batch` per trip), so one thread reaches the rate many sending threads
  /// would. Appended in the given order; each result is what `send` would have returned for it.
  std::vector<SendResult> send_many(std::vector<std::pair<Target, Event>> items) {
    std::vector<SendResult> results(items.size());
    std::deque<detail::EntryFields> fields;
    std::deque<std::vector<std::string_view>> args;
    std::vector<const std::vector<std::string_view>*> commands;
    std::vector<std::size_t> slot;  // commands[k] is items[slot[k]]
    std::string maxlen = std::to_string(options_.max_len);
    for (std::size_t i = 0; i < items.size(); ++i) {
      Event& ev = items[i].second;
      ev.id.reset();
      if (auto valid = validate(ev); !valid) {
        results[i] = valid.error();
        continue;
      }
      fields.emplace_back(items[i].first, ev);
      args.push_back({"XADD", options_.stream, "MAXLEN", "~", maxlen, "*"});
      fields.back().append_to(args.back(), ev);
      commands.push_back(&args.back());
      slot.push_back(i);
    }
    auto outcomes = pipe_.send_all(commands);
    for (std::size_t k = 0; k < outcomes.size(); ++k) {
      if (!outcomes[k].why.empty()) log(outcomes[k].why);
      if (outcomes[k].ok) {
        ++published_;
        results[slot[k]] = Sent{std::move(outcomes[k].text), 0};
      } else {
        ++publish_errors_;
        results[slot[k]] = errc::bus_unavailable;
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

  /// Connects a client to the local broadcaster and, when its Last-Event-ID is past the local
  /// history, replays the missed events from Redis. While it does, this node delivers nothing
  /// newer, so the replay comes strictly first, and nothing is both replayed and delivered live.
  ConnectResult connect(S sink, ConnectOptions options) {
    // deliver_mutex_ keeps the reader from delivering between this client's registration and the
    // end of its replay. This thread may hold it already (a hook of the reader's own delivery, or
    // of a connect in progress): nothing else delivers then either. Inside a delivery of the
    // local broadcaster it is only tried: the reader may hold it, waiting for that delivery.
    const bool in_delivery = local_.delivering();
    const bool nested = deliver_mutex_.held_here();
    std::unique_lock<detail::OwnedMutex> hold(deliver_mutex_, std::defer_lock);
    if (!nested) {
      if (in_delivery) (void)hold.try_lock();
      else hold.lock();
    }
    std::optional<std::string> last = options.last_event_id;
    std::vector<std::string> channels = options.channels;
    std::string user = options.user;
    std::vector<std::string> pools = options.pools;
    ConnectResult r = local_.connect(std::move(sink), std::move(options));
    if (!r || !last || last->empty() || r->replay == Replay::found) return r;
    if (!stream_id_order(*last, *last)) return r;  // not a stream id: unknown
    if (!nested && !hold.owns_lock()) {
      log("redis: no replay from Redis for a client connected from inside a delivery while the "
          "reader was delivering: replay left " +
          std::string(r->replay == Replay::too_old ? "too old" : "unknown"));
      return r;
    }
    for (const auto& refused : r->refused_channels)
      channels.erase(std::remove(channels.begin(), channels.end(), refused), channels.end());
    auto in_pool = [&](std::string_view p) {
      return std::find(pools.begin(), pools.end(), p) != pools.end();
    };
    auto in_channel = [&](std::string_view c) {
      return std::find(channels.begin(), channels.end(), c) != channels.end();
    };
    replay_from_redis(*r, *last, user, in_pool, in_channel, in_delivery);
    return r;
  }

  /// The id of the last entry this node delivered ("" before the first).
  std::string last_id() const {
    std::lock_guard<std::mutex> lock(state_mutex_);
    return last_id_;
  }

  RedisStats stats() const {
    RedisStats s;
    s.connected = reader_.connected();
    s.published = published_.load();
    s.publish_errors = publish_errors_.load();
    s.send_round_trips = pipe_.round_trips();
    s.received = received_.load();
    s.malformed = malformed_.load();
    s.reconnects = reader_.reconnects();
    s.redis_replays = redis_replays_.load();
    return s;
  }

 private:
  void log(const std::string& line) const {
    if (options_.on_log) options_.on_log(line);
  }

  /// The entries after `last` up to `upto`, read from Redis on the send connection between two
  /// batches of sends (nothing but the Redis commands meanwhile). `too_old` when `last` left
  /// the stream or more than replay_limit entries follow it; nullopt when Redis could not be
  /// asked (`error` says why).
  std::optional<Replay> fetch_range(const std::string& last, const std::string& upto,
                                    detail::RedisReplyPtr& range, std::string& error) {
    std::optional<Replay> verdict;
    auto ask = [&](detail::RedisConnection& c, std::string& err) {
      // Is `last` still in the stream? Its entry, or an older one, must be there.
      auto first = c.command({"XRANGE", options_.stream, "-", "+", "COUNT", "1"}, err);
      if (!first || first->type != REDIS_REPLY_ARRAY) return false;
      if (first->elements == 0) {  // trimmed to nothing
        verdict = Replay::too_old;
        return true;
      }
      auto first_id = detail::reply_text(first->element[0]->elements ? first->element[0]->element[0]
                                                                     : nullptr);
      auto vs_first = stream_id_order(last, first_id);
      if (!vs_first || *vs_first < 0) {
        verdict = Replay::too_old;
        return true;
      }
      std::string start = "(" + last;
      std::string count = std::to_string(options_.replay_limit + 1);
      range = c.command({"XRANGE", options_.stream, start, upto, "COUNT", count}, err);
      if (!range || range->type != REDIS_REPLY_ARRAY) return false;
      verdict = range->elements > options_.replay_limit ? Replay::too_old : Replay::found;
      return true;
    };
    if (!pipe_.exclusive(ask, error)) return std::nullopt;
    return verdict;
  }

  /// Replays from Redis what client `r.id` missed after `last`, up to what this node delivered.
  /// Called holding deliver_mutex_ (directly or through the reader); `queued` when called from
  /// inside a local delivery, which runs the replay right after itself, before anything newer.
  template <class InPool, class InChannel>
  void replay_from_redis(Connected& r, const std::string& last, const std::string& user,
                         InPool& in_pool, InChannel& in_channel, bool queued) {
    std::string upto;
    {
      std::lock_guard<std::mutex> lock(state_mutex_);
      // From a hook of the reader's delivery of an entry, that entry is the last one delivered:
      // the client was registered after its recipients were chosen.
      upto = delivering_.empty() ? last_id_ : delivering_;
    }
    if (upto.empty()) return;
    auto cmp = stream_id_order(last, upto);
    if (!cmp || *cmp >= 0) return;  // not before what this node delivered: nothing to replay
    detail::RedisReplyPtr range;
    std::string error;
    std::optional<Replay> fetched = fetch_range(last, upto, range, error);
    if (!fetched) {
      log("redis: cannot replay from the stream " + options_.stream + ": " + error);
      return;
    }
    if (*fetched != Replay::found) {
      r.replay = *fetched;
      return;
    }
    // The send connection is free again: a sink or hook that sends through the bus while this
    // delivers finds it so.
    std::size_t sent = 0;
    for (std::size_t i = 0; i < range->elements; ++i) {
      Target target;
      Event ev;
      if (!detail::decode_entry(range->element[i], target, ev)) continue;
      if (!target.matches(r.id, user, in_pool, in_channel)) continue;
      if (queued) {
        (void)local_.send_encoded(Target::client(r.id), Frame::from_event(ev));
      } else if (!local_.deliver_to(r.id, Frame::from_event(ev))) {
        return;  // the client's sink failed: it is gone
      }
      ++sent;
    }
    r.replay = Replay::found;
    r.replayed = sent;
    ++redis_replays_;
  }

  // The reader's step: one XREAD after the last delivered entry, and the delivery of what came.
  bool read(detail::RedisConnection& c, std::string& error) {
    std::string from = last_id();
    std::string block = std::to_string(options_.block.count());
    std::string count = std::to_string(options_.read_count);
    auto reply =
        c.command({"XREAD", "COUNT", count, "BLOCK", block, "STREAMS", options_.stream, from}, error);
    if (!reply) return false;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) return true;  // timed out
    const redisReply* stream = reply->element[0];
    if (!stream || stream->type != REDIS_REPLY_ARRAY || stream->elements != 2) return true;
    const redisReply* entries = stream->element[1];
    for (std::size_t i = 0; entries && i < entries->elements; ++i) deliver(entries->element[i]);
    return true;
  }

  // Where reading starts the first time: after the stream's current last entry.
  bool read_start_id(detail::RedisConnection& c, std::string& error) {
    auto r = c.command({"XREVRANGE", options_.stream, "+", "-", "COUNT", "1"}, error);
    if (!r) return false;
    std::string id = "0-0";
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->elements > 0)
      id = std::string(detail::reply_text(r->element[0]->element[0]));
    std::lock_guard<std::mutex> lock(state_mutex_);
    last_id_ = id;
    return true;
  }

  void deliver(const redisReply* entry) {
    ++received_;
    Target target;
    Event ev;
    std::string id = entry && entry->type == REDIS_REPLY_ARRAY && entry->elements > 0
                         ? std::string(detail::reply_text(entry->element[0]))
                         : std::string();
    std::lock_guard<detail::OwnedMutex> hold(deliver_mutex_);
    if (detail::decode_entry(entry, target, ev)) {
      set_delivering(id);
      (void)local_.send(target, std::move(ev));
      set_delivering({});
    } else {
      ++malformed_;
      log("redis: skipped a malformed stream entry " + id);
    }
    if (!id.empty()) {
      std::lock_guard<std::mutex> lock(state_mutex_);
      last_id_ = std::move(id);
    }
  }

  void set_delivering(std::string id) {
    std::lock_guard<std::mutex> lock(state_mutex_);
    delivering_ = std::move(id);
  }

  Broadcaster<S>& local_;
  RedisOptions options_;
  detail::RedisReader reader_{options_};
  detail::SendPipe pipe_{options_};
  // Lock order: deliver_mutex_, then the local broadcaster's delivery lock, then the send pipe
  // or state_mutex_ (each taken alone, around Redis commands or a string copy, never while
  // delivering or calling out). The delivery lock is never held while waiting for
  // deliver_mutex_ (only tried then).
  detail::OwnedMutex deliver_mutex_;  // held while an entry is delivered or a client replayed
  mutable std::mutex state_mutex_;    // last_id_, delivering_
  std::string last_id_;
  std::string delivering_;  // the entry the reader is delivering now, "" between entries
  std::atomic<std::uint64_t> published_{0}, publish_errors_{0}, received_{0}, malformed_{0},
      redis_replays_{0};
};

SSEPP_END_NAMESPACE
