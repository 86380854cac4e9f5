// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// Optional multi-node support over Redis (needs hiredis; CMake target ssepp::redis). Not part of
// <ssepp/ssepp.hpp>.
//
//   RedisStreamBus   every node appends its sends to one Redis stream (XADD) and delivers what
//                    the stream carries (XREAD) to its local clients: ids are Redis entry ids,
//                    the same on every node, so a client resumes on any node.
//   RedisPubSubBridge  delivers JSON messages that any service PUBLISHes on a Redis channel.
#pragma once

#include <ssepp/broadcaster.hpp>
#include <ssepp/config.hpp>
#include <ssepp/detail/json_lite.hpp>
#include <ssepp/error.hpp>
#include <ssepp/event.hpp>
#include <ssepp/history.hpp>
#include <ssepp/result.hpp>

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

#include <cerrno>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE

/// Where Redis is and how the bus uses it.
struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  /// AUTH password; empty for none.
  std::string password;
  /// Streams mode: the stream every node appends to and reads.
  std::string stream = "ssepp:events";
  /// Streams mode: the stream is trimmed to about this many entries (XADD MAXLEN ~). It bounds
  /// how far back a client can resume from Redis.
  std::size_t max_len = 100000;
  /// Pub/Sub mode: the channel other services PUBLISH to.
  std::string channel = "ssepp:publish";
  /// Connecting and each command (but the blocking read) give up after this.
  std::chrono::milliseconds timeout{2000};
  /// Streams mode: how long one XREAD blocks (the reader also wakes at once on stop()).
  std::chrono::milliseconds block{5000};
  /// Reconnection backoff: doubles from min to max while Redis stays away.
  std::chrono::milliseconds retry_min{100};
  std::chrono::milliseconds retry_max{5000};
  /// Streams mode: at most this many entries per XREAD, and per Redis replay of one client.
  std::size_t read_count = 512;
  std::size_t replay_limit = 10000;
  /// Called with a line of text on state changes and dropped messages (no logging dependency).
  /// Called from the bus's threads; must not throw.
  std::function<void(std::string_view)> on_log;
};

/// Counters of a bus (each exact, read one after the other).
struct RedisStats {
  bool connected = false;           ///< the reader is connected now
  std::uint64_t published = 0;      ///< sends appended to Redis (streams mode)
  std::uint64_t publish_errors = 0; ///< sends refused because Redis was unreachable
  std::uint64_t received = 0;       ///< entries / messages read from Redis
  std::uint64_t malformed = 0;      ///< entries / messages that could not be read, skipped
  std::uint64_t reconnects = 0;     ///< times the reader connected again after losing Redis
  std::uint64_t redis_replays = 0;  ///< connects replayed from Redis (past the local history)
};

/// How Redis stream entry ids compare ("1700000000000-0", or "1700000000000" meaning "-0"): by
/// (milliseconds, sequence), negative, zero or positive like `a <=> b`; `std::nullopt` when either
/// is not a stream id. The `IdOrder` of a broadcaster fed by a `RedisStreamBus`
/// (`BroadcasterOptions::id_order`), so that a Last-Event-ID older than its history is told
/// "too old" rather than "unknown".
inline std::optional<int> stream_id_order(std::string_view a, std::string_view b) noexcept {
  auto parse = [](std::string_view s) -> std::optional<std::pair<std::uint64_t, std::uint64_t>> {
    auto dash = s.find('-');
    auto ms = detail::parse_u64(s.substr(0, dash));
    if (!ms) return std::nullopt;
    if (dash == std::string_view::npos) return std::pair<std::uint64_t, std::uint64_t>(*ms, 0);
    auto seq = detail::parse_u64(s.substr(dash + 1));
    if (!seq) return std::nullopt;
    return std::pair<std::uint64_t, std::uint64_t>(*ms, *seq);
  };
  auto x = parse(a);
  auto y = parse(b);
  if (!x || !y) return std::nullopt;
  return detail::three_way(*x, *y);
}

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

/// Keeps a write to a closed connection (Redis gone, or a stop() that shut the socket down) from
/// raising SIGPIPE, whose default action ends the host process: hiredis writes with write(2)
/// without MSG_NOSIGNAL, and a library must not change the process's signal dispositions. Blocks
/// SIGPIPE on this thread while alive and discards one raised meanwhile.
class SigpipeGuard {
 public:
  SigpipeGuard() noexcept {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    blocked_ = pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
    // Only a SIGPIPE the thread already blocked can be pending: that one is not ours to discard.
    was_pending_ = blocked_ && sigismember(&old_, SIGPIPE) == 1 && pending();
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;
  ~SigpipeGuard() {
    if (!blocked_) return;
    if (!was_pending_ && pending()) {
      const timespec zero{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  bool pending() const noexcept {
    sigset_t set;
    sigemptyset(&set);
    return sigpending(&set) == 0 && sigismember(&set, SIGPIPE) == 1;
  }

  sigset_t pipe_{};
  sigset_t old_{};
  bool was_pending_ = false;
  bool blocked_ = false;
};

struct RedisReplyFree {
  void operator()(redisReply* r) const noexcept {
    if (r) freeReplyObject(r);
  }
};
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyFree>;

struct RedisContextFree {
  void operator()(redisContext* c) const noexcept {
    if (c) redisFree(c);
  }
};

/// One blocking hiredis connection. Not thread-safe; `interrupt()` may be called from another
/// thread to wake a blocked command (it shuts the socket down).
class RedisConnection {
 public:
  bool connect(const RedisOptions& o, std::string& error) {
    close();
    timeval tv = to_timeval(o.timeout);
    std::unique_ptr<redisContext, RedisContextFree> c(
        redisConnectWithTimeout(o.host.c_str(), o.port, tv));
    if (!c || c->err) {
      error = c ? c->errstr : "cannot allocate a Redis context";
      return false;
    }
    redisSetTimeout(c.get(), tv);
    {
      std::lock_guard<std::mutex> lock(fd_mutex_);
      fd_ = c->fd;
    }
    ctx_ = std::move(c);
    if (!o.password.empty()) {
      auto r = command({"AUTH", o.password}, error);
      if (!r) {  // refused: a connection that never authenticated is no connection
        error = "AUTH: " + error;
        close();
        return false;
      }
    }
    return true;
  }

  bool connected() const noexcept { return ctx_ != nullptr; }

  /// Sets the read timeout for the next commands (e.g. longer than an XREAD BLOCK).
  void set_timeout(std::chrono::milliseconds t) {
    if (ctx_) redisSetTimeout(ctx_.get(), to_timeval(t));
  }

  /// Runs one command. On a transport error the connection is closed and nullptr returned; an
  /// error reply is returned as nullptr too, with its text in `error`.
  RedisReplyPtr command(std::initializer_list<std::string_view> args, std::string& error) {
    return command_argv(std::vector<std::string_view>(args), error);
  }

  RedisReplyPtr command_argv(const std::vector<std::string_view>& args, std::string& error) {
    if (!ctx_) {
      error = "not connected";
      return nullptr;
    }
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    argv.reserve(args.size());
    lens.reserve(args.size());
    for (auto a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    SigpipeGuard no_sigpipe;
    RedisReplyPtr r(static_cast<redisReply*>(
        redisCommandArgv(ctx_.get(), static_cast<int>(argv.size()), argv.data(), lens.data())));
    return checked(std::move(r), error);
  }

  /// Reads the next pushed reply (Pub/Sub).
  RedisReplyPtr next_reply(std::string& error) {
    if (!ctx_) {
      error = "not connected";
      return nullptr;
    }
    void* raw = nullptr;
    SigpipeGuard no_sigpipe;  // flushes pending output, if any
    if (redisGetReply(ctx_.get(), &raw) != REDIS_OK) raw = nullptr;
    return checked(RedisReplyPtr(static_cast<redisReply*>(raw)), error);
  }

  /// Wakes a command blocked in another thread: it fails and the connection closes.
  void interrupt() noexcept {
    std::lock_guard<std::mutex> lock(fd_mutex_);
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }

  void close() noexcept {
    {
      std::lock_guard<std::mutex> lock(fd_mutex_);
      fd_ = -1;
    }
    ctx_.reset();
  }

 private:
  static timeval to_timeval(std::chrono::milliseconds ms) {
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(ms.count() / 1000);
    tv.tv_usec = static_cast<decltype(tv.tv_usec)>((ms.count() % 1000) * 1000);
    return tv;
  }

  RedisReplyPtr checked(RedisReplyPtr r, std::string& error) {
    if (!r) {
      error = ctx_ && ctx_->err ? ctx_->errstr : "connection lost";
      close();
      return nullptr;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      error.assign(r->str, r->len);
      return nullptr;
    }
    return r;
  }

  std::unique_ptr<redisContext, RedisContextFree> ctx_;
  std::mutex fd_mutex_;
  int fd_ = -1;
};

inline std::string_view reply_text(const redisReply* r) noexcept {
  if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)) return {};
  return {r->str, r->len};
}

/// A target as one stream-entry field: "*" for all, else each part as <kind><length>:<name>
/// with kind k (client id), u (user), p (pool) or c (channel). Any byte may appear in a name.
inline std::string encode_target(const Target& t) {
  if (t.is_all()) return "*";
  std::string out;
  for (const auto& s : t.selectors()) {
    std::string name = s.kind == Target::Kind::client ? std::to_string(s.client) : s.name;
    out += s.kind == Target::Kind::client ? 'k'
           : s.kind == Target::Kind::user ? 'u'
           : s.kind == Target::Kind::pool ? 'p'
                                          : 'c';
    out += std::to_string(name.size());
    out += ':';
    out += name;
  }
  return out;
}

inline std::optional<Target> decode_target(std::string_view text) {
  if (text == "*") return Target::all();
  Target t;
  if (text.empty()) return std::nullopt;
  while (!text.empty()) {
    char kind = text.front();
    text.remove_prefix(1);
    std::size_t len = 0, i = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9' && i < 10)
      len = len * 10 + static_cast<std::size_t>(text[i++] - '0');
    if (i == 0 || i >= text.size() || text[i] != ':' || text.size() - i - 1 < len) return std::nullopt;
    std::string name(text.substr(i + 1, len));
    text.remove_prefix(i + 1 + len);
    if (kind == 'u') {
      t |= Target::user(name);
    } else if (kind == 'p') {
      t |= Target::pool(std::move(name));
    } else if (kind == 'c') {
      t |= Target::channel(std::move(name));
    } else if (kind == 'k') {
      auto id = parse_u64(name);
      if (!id) return std::nullopt;
      t |= Target::client(*id);
    } else {
      return std::nullopt;
    }
  }
  return t;
}

/// A stream entry ([id, [field, value, ...]]) as a target and an event carrying the entry id.
inline bool decode_entry(const redisReply* entry, Target& target, Event& ev) {
  if (!entry || entry->type != REDIS_REPLY_ARRAY || entry->elements != 2) return false;
  const redisReply* fields = entry->element[1];
  if (reply_text(entry->element[0]).empty() || !fields || fields->type != REDIS_REPLY_ARRAY ||
      fields->elements % 2 != 0)
    return false;
  ev = Event{};
  ev.id = std::string(reply_text(entry->element[0]));
  bool has_target = false;
  for (std::size_t i = 0; i + 1 < fields->elements; i += 2) {
    std::string_view k = reply_text(fields->element[i]), v = reply_text(fields->element[i + 1]);
    if (k == "target") {
      auto t = decode_target(v);
      if (!t) return false;
      target = std::move(*t);
      has_target = true;
    } else if (k == "event") {
      ev.type = std::string(v);
    } else if (k == "data") {
      ev.data = std::string(v);
    } else if (k == "comment") {
      ev.comment = std::string(v);
    } else if (k == "retry") {
      auto ms = v.size() <= 12 ? parse_u64(v) : std::nullopt;
      if (!ms) return false;
      ev.retry = std::chrono::milliseconds(static_cast<long long>(*ms));
    }
  }
  return has_target && validate(ev).has_value();
}

/// Waits on a condition variable until stop or the delay passes; true when stopped.
class Stopper {
 public:
  bool wait(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock(m_);
    return cv_.wait_for(lock, d, [&] { return stopped_; });
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stopped_ = true;
    }
    cv_.notify_all();
  }
  void reset() {
    std::lock_guard<std::mutex> lock(m_);
    stopped_ = false;
  }
  bool stopped() {
    std::lock_guard<std::mutex> lock(m_);
    return stopped_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool stopped_ = false;
};

inline std::chrono::milliseconds next_backoff(std::chrono::milliseconds d, const RedisOptions& o) {
  return std::min(o.retry_max, std::max(o.retry_min, d * 2));
}

}  // namespace detail

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
/// waits for its delivery lock from inside a delivery. A `send` from a hook makes its Redis round
/// trip there and then (the local delivery that called the hook waits for it). A `connect` from
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
    if (reader_.joinable()) return;
    stopper_.reset();
    reader_ = std::thread([this] { read_loop(); });
  }

  /// Stops the reader and waits for it.
  void stop() {
    stopper_.stop();
    reader_conn_.interrupt();
    if (reader_.joinable()) reader_.join();
  }

  /// Appends an event for `target` to the stream. Returns the entry id (the event id on every
  /// node) or an error: the event's own (`validate`), or `errc::bus_unavailable`. An event id
  /// given by the caller is ignored: the stream assigns ids. `delivered` is 0: delivery happens
  /// on every node when the entry is read.
  SendResult send(const Target& target, Event ev) {
    ev.id.reset();
    if (auto valid = validate(ev); !valid) return valid.error();
    std::string target_field = detail::encode_target(target);
    std::string maxlen = std::to_string(options_.max_len);
    std::string retry = ev.retry ? std::to_string(ev.retry->count()) : std::string();
    std::vector<std::string_view> args = {"XADD", options_.stream, "MAXLEN", "~", maxlen, "*",
                                          "target", target_field, "data", ev.data};
    if (!ev.type.empty()) args.insert(args.end(), {"event", ev.type});
    if (!ev.comment.empty()) args.insert(args.end(), {"comment", ev.comment});
    if (ev.retry) args.insert(args.end(), {"retry", retry});

    // send_mutex_ guards the send connection and nothing else: no delivery, no call out (the
    // log line is written after it is released), so a hook may send while holding the local
    // delivery lock.
    std::string error, why, id;
    bool unavailable = false;
    {
      std::lock_guard<std::mutex> lock(send_mutex_);
      auto now = std::chrono::steady_clock::now();
      if (!send_conn_.connected()) {
        if (now < send_retry_at_ || !send_conn_.connect(options_, error)) {
          if (!error.empty()) {  // a real attempt (at most one per retry_min): say why
            send_retry_at_ = now + options_.retry_min;
            why = "redis: send: cannot connect to " + options_.host + ":" +
                  std::to_string(options_.port) + ": " + error;
          }
          unavailable = true;
        }
      }
      if (!unavailable) {
        auto reply = send_conn_.command_argv(args, error);
        if (reply && reply->type == REDIS_REPLY_STRING) {
          id = std::string(detail::reply_text(reply.get()));
        } else {
          why = "redis: send failed: " + error;
          unavailable = true;
        }
      }
    }
    if (unavailable) {
      ++publish_errors_;
    } else {
      ++published_;
    }
    if (!why.empty()) log(why);
    if (unavailable) return errc::bus_unavailable;
    return Sent{std::move(id), 0};
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
    s.connected = connected_.load();
    s.published = published_.load();
    s.publish_errors = publish_errors_.load();
    s.received = received_.load();
    s.malformed = malformed_.load();
    s.reconnects = reconnects_.load();
    s.redis_replays = redis_replays_.load();
    return s;
  }

 private:
  void log(const std::string& line) const {
    if (options_.on_log) options_.on_log(line);
  }

  /// The entries after `last` up to `upto`, read from Redis under send_mutex_ (and nothing but
  /// the Redis commands under it). `too_old` when `last` left the stream or more than
  /// replay_limit entries follow it; nullopt when Redis could not be asked (`error` says why).
  std::optional<Replay> fetch_range(const std::string& last, const std::string& upto,
                                    detail::RedisReplyPtr& range, std::string& error) {
    std::lock_guard<std::mutex> lock(send_mutex_);
    if (!send_conn_.connected() && !send_conn_.connect(options_, error)) return std::nullopt;
    // Is `last` still in the stream? Its entry, or an older one, must be there.
    auto first = send_conn_.command({"XRANGE", options_.stream, "-", "+", "COUNT", "1"}, error);
    if (!first || first->type != REDIS_REPLY_ARRAY) return std::nullopt;
    if (first->elements == 0) return Replay::too_old;  // trimmed to nothing
    auto first_id = detail::reply_text(first->element[0]->elements ? first->element[0]->element[0]
                                                                   : nullptr);
    auto vs_first = stream_id_order(last, first_id);
    if (!vs_first || *vs_first < 0) return Replay::too_old;
    std::string start = "(" + last;
    std::string count = std::to_string(options_.replay_limit + 1);
    range = send_conn_.command({"XRANGE", options_.stream, start, upto, "COUNT", count}, error);
    if (!range || range->type != REDIS_REPLY_ARRAY) return std::nullopt;
    if (range->elements > options_.replay_limit) return Replay::too_old;
    return Replay::found;
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
    // send_mutex_ is released: a sink or hook that sends through the bus while this delivers
    // finds it free.
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

  void read_loop() {
    std::chrono::milliseconds backoff{0};
    bool ever_connected = false;
    std::string error;
    while (!stopper_.stopped()) {
      if (!reader_conn_.connected()) {
        if (backoff.count() > 0 && stopper_.wait(backoff)) break;
        if (!reader_conn_.connect(options_, error)) {
          connected_ = false;
          log("redis: cannot connect to " + options_.host + ":" + std::to_string(options_.port) +
              ": " + error);
          backoff = detail::next_backoff(backoff, options_);
          continue;
        }
        // A stop() that came while this connected found no socket to shut down: see it now,
        // before blocking (a later stop() finds the socket).
        if (stopper_.stopped()) break;
        // Connected means able to read: a first start needs the stream's last id.
        if (last_id().empty() && !read_start_id(error)) {
          log("redis: cannot read the stream " + options_.stream + ": " + error);
          reader_conn_.close();
          backoff = detail::next_backoff(backoff, options_);
          continue;
        }
        if (ever_connected) ++reconnects_;
        ever_connected = true;
        connected_ = true;
        backoff = std::chrono::milliseconds{0};
        log("redis: reader connected");
        reader_conn_.set_timeout(options_.block + options_.timeout);
      }
      std::string from = last_id();
      std::string block = std::to_string(options_.block.count());
      std::string count = std::to_string(options_.read_count);
      auto reply = reader_conn_.command(
          {"XREAD", "COUNT", count, "BLOCK", block, "STREAMS", options_.stream, from}, error);
      if (!reply) {
        if (!reader_conn_.connected()) {
          connected_ = false;
          if (!stopper_.stopped()) log("redis: reader lost the connection: " + error);
          backoff = detail::next_backoff(backoff, options_);
        } else {  // an error reply (e.g. the server's ACL changed): back off as for a loss
          log("redis: XREAD failed: " + error);
          backoff = detail::next_backoff(backoff, options_);
          if (stopper_.wait(backoff)) break;
        }
        continue;
      }
      backoff = std::chrono::milliseconds{0};
      if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) continue;  // timed out
      const redisReply* stream = reply->element[0];
      if (!stream || stream->type != REDIS_REPLY_ARRAY || stream->elements != 2) continue;
      const redisReply* entries = stream->element[1];
      for (std::size_t i = 0; entries && i < entries->elements; ++i) deliver(entries->element[i]);
    }
    reader_conn_.close();
    connected_ = false;
  }

  // Where reading starts the first time: after the stream's current last entry.
  bool read_start_id(std::string& error) {
    auto r = reader_conn_.command({"XREVRANGE", options_.stream, "+", "-", "COUNT", "1"}, error);
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
  std::thread reader_;
  detail::Stopper stopper_;
  detail::RedisConnection reader_conn_;
  detail::RedisConnection send_conn_;
  // Lock order: deliver_mutex_, then the local broadcaster's delivery lock, then send_mutex_ or
  // state_mutex_ (each taken alone, around Redis commands or a string copy, never while
  // delivering or calling out). The delivery lock is never held while waiting for
  // deliver_mutex_ (only tried then).
  std::mutex send_mutex_;             // send_conn_ and send_retry_at_
  std::chrono::steady_clock::time_point send_retry_at_{};
  detail::OwnedMutex deliver_mutex_;  // held while an entry is delivered or a client replayed
  mutable std::mutex state_mutex_;    // last_id_, delivering_
  std::string last_id_;
  std::string delivering_;  // the entry the reader is delivering now, "" between entries
  std::atomic<bool> connected_{false};
  std::atomic<std::uint64_t> published_{0}, publish_errors_{0}, received_{0}, malformed_{0},
      reconnects_{0}, redis_replays_{0};
};

namespace detail {
/// parse_pubsub_message's reader: false with the reason in `error`.
inline bool read_pubsub_message(std::string_view text, Target& target, Event& ev,
                                std::string& error) {
  std::vector<detail::JsonMember> top;
  if (!detail::JsonReader(text).object(top, error)) return false;
  ev = Event{};
  target = Target::all();
  for (const auto& m : top) {
    if (m.key == "target") {
      if (m.is_null) continue;
      std::vector<detail::JsonMember> t;
      if (m.is_string || !detail::JsonReader(m.value).object(t, error) || t.size() != 1) {
        if (error.empty()) error = "target must be an object with one key";
        return false;
      }
      const auto& sel = t.front();
      if (sel.key == "all" && sel.value == "true") continue;
      if (!sel.is_string || sel.value.empty()) {
        error = "target value must be a non-empty string";
        return false;
      }
      if (sel.key == "channel") {
        target = Target::channel(sel.value);
      } else if (sel.key == "user") {
        target = Target::user(sel.value);
      } else if (sel.key == "pool") {
        target = Target::pool(sel.value);
      } else if (sel.key == "client") {
        auto id = detail::parse_u64(sel.value);
        if (!id) {
          error = "client must be a decimal id";
          return false;
        }
        target = Target::client(*id);
      } else {
        error = "unknown target kind \"" + sel.key + "\"";
        return false;
      }
    } else if (m.key == "event") {
      if (!m.is_string) return error = "event must be a string", false;
      ev.type = m.value;
    } else if (m.key == "data") {
      ev.data = m.value;
    } else if (m.key == "id") {
      if (!m.is_string) return error = "id must be a string", false;
      ev.id = m.value;
    } else if (m.key == "retry") {
      auto ms = !m.is_string && m.value.size() <= 12 ? detail::parse_u64(m.value) : std::nullopt;
      if (!ms) return error = "retry must be a non-negative integer", false;
      ev.retry = std::chrono::milliseconds(static_cast<long long>(*ms));
    } else {
      error = "unknown key \"" + m.key + "\"";
      return false;
    }
  }
  if (auto valid = validate(ev); !valid) {
    error = valid.error().message();
    return false;
  }
  return true;
}
}  // namespace detail

/// One Pub/Sub interop message: who it is for, and the event.
struct PubSubMessage {
  Target target;
  Event event;
};

/// Reads one Pub/Sub interop message:
/// `{"target": {"channel": "…"} | {"user": "…"} | {"pool": "…"} | {"client": "…"} | {"all": true},
///   "event": "…", "data": "…" (or any JSON value, delivered as its JSON text), "id": "…",
///   "retry": ms}`; every key but data optional, no target means everyone.
/// Anything else fails with `errc::invalid_message` (never an exception: the text is untrusted).
/// The code says only "malformed"; when `why` is given it receives the reason in words, e.g.
/// `unknown key "extra"` or `event type contains a line break (CR or LF)`, for a log line or a
/// reply to the publisher.
inline Result<PubSubMessage> parse_pubsub_message(std::string_view text,
                                                  std::string* why = nullptr) {
  PubSubMessage m;
  std::string error;
  if (detail::read_pubsub_message(text, m.target, m.event, error)) return m;
  if (why) *why = error.empty() ? make_error_code(errc::invalid_message).message() : std::move(error);
  return errc::invalid_message;
}

/// Delivers the JSON messages other services PUBLISH on `RedisOptions::channel` to this node's
/// clients (see `parse_pubsub_message`). Every node subscribes, so a message reaches matching
/// clients everywhere. Malformed messages are counted and logged, never delivered. Pub/Sub has no
/// memory: messages published while a node is disconnected do not reach it (use the Streams bus
/// when that matters); the node reconnects with backoff.
template <class S>
class RedisPubSubBridge {
 public:
  RedisPubSubBridge(Broadcaster<S>& local, RedisOptions options)
      : local_(local), options_(std::move(options)) {}
  RedisPubSubBridge(const RedisPubSubBridge&) = delete;
  RedisPubSubBridge& operator=(const RedisPubSubBridge&) = delete;
  ~RedisPubSubBridge() { stop(); }

  void start() {
    if (reader_.joinable()) return;
    stopper_.reset();
    reader_ = std::thread([this] { loop(); });
  }

  void stop() {
    stopper_.stop();
    conn_.interrupt();
    if (reader_.joinable()) reader_.join();
  }

  /// True once subscribed (and until the connection drops).
  bool subscribed() const noexcept { return subscribed_.load(); }

  RedisStats stats() const {
    RedisStats s;
    s.connected = subscribed_.load();
    s.received = received_.load();
    s.malformed = malformed_.load();
    s.reconnects = reconnects_.load();
    return s;
  }

 private:
  void log(const std::string& line) const {
    if (options_.on_log) options_.on_log(line);
  }

  void loop() {
    std::chrono::milliseconds backoff{0};
    bool ever = false;
    std::string error;
    while (!stopper_.stopped()) {
      if (!conn_.connected()) {
        subscribed_ = false;
        if (backoff.count() > 0 && stopper_.wait(backoff)) break;
        if (!conn_.connect(options_, error) ||
            !conn_.command({"SUBSCRIBE", options_.channel}, error)) {
          conn_.close();
          log("redis: cannot subscribe to " + options_.channel + ": " + error);
          backoff = detail::next_backoff(backoff, options_);
          continue;
        }
        // A stop() that came while this connected found no socket to shut down: see it now,
        // before waiting without a timeout (a later stop() finds the socket).
        if (stopper_.stopped()) break;
        conn_.set_timeout(std::chrono::milliseconds{0});  // wait for messages indefinitely
        if (ever) ++reconnects_;
        ever = true;
        backoff = std::chrono::milliseconds{0};
        subscribed_ = true;
        log("redis: subscribed to " + options_.channel);
      }
      auto reply = conn_.next_reply(error);
      if (!reply) {
        if (!stopper_.stopped()) log("redis: subscription lost: " + error);
        conn_.close();
        backoff = detail::next_backoff(backoff, options_);
        continue;
      }
      if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
          detail::reply_text(reply->element[0]) != "message")
        continue;
      ++received_;
      std::string why;
      if (auto m = parse_pubsub_message(detail::reply_text(reply->element[2]), &why)) {
        (void)local_.send(m->target, std::move(m->event));
      } else {
        ++malformed_;
        log("redis: dropped a malformed message: " + why);
      }
    }
    conn_.close();
    subscribed_ = false;
  }

  Broadcaster<S>& local_;
  RedisOptions options_;
  std::thread reader_;
  detail::Stopper stopper_;
  detail::RedisConnection conn_;
  std::atomic<bool> subscribed_{false};
  std::atomic<std::uint64_t> received_{0}, malformed_{0}, reconnects_{0};
};

/// A random base for client ids that are unique across the nodes of a cluster (the high 32 bits
/// random, so two nodes' sequences do not meet): pass as `BroadcasterOptions::first_client_id`.
inline std::uint64_t cluster_client_id_base() {
  std::random_device rd;
  std::uint64_t hi = (static_cast<std::uint64_t>(rd()) & 0x7FFFFFFFu) | 1u;
  return hi << 32;
}

SSEPP_END_NAMESPACE
