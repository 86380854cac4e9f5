// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// Broadcaster<Sink>: fan-out of events to connected clients. Its vocabulary (options, results,
// hooks, stats) is in broadcaster_options.hpp, the registry of who is in what in
// detail/broadcaster_registry.hpp, the delivery order in detail/broadcaster_delivery.hpp.
#pragma once

#include <ssepp/broadcaster_options.hpp>
#include <ssepp/config.hpp>
#include <ssepp/detail/broadcaster_delivery.hpp>
#include <ssepp/detail/broadcaster_registry.hpp>
#include <ssepp/encoder.hpp>
#include <ssepp/error.hpp>
#include <ssepp/event.hpp>
#include <ssepp/history.hpp>
#include <ssepp/result.hpp>
#include <ssepp/sink.hpp>
#include <ssepp/target.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE

/// Fan-out of events to connected clients: registries, targets, ids, replay, heartbeats.
///
/// - **Registries.** Clients (server-generated ids), users and pools (fixed at connect: user,
///   tenant, role...), channels (joined and left at run time, through an optional authoriser).
/// - **Sends.** `send(target, event)` encodes once and hands the same shared frame to every
///   matching client (a client matching several parts of a target gets it once). Sends to all,
///   users, pools and channels get an increasing decimal id unless the event has one, and enter
///   the history; a send to clients only gets no id and no history entry unless the caller gave
///   an id (then it is recorded, so that id is found on reconnect, but it replays to nobody).
/// - **Order.** Every client receives events in id order, and a replay strictly before anything
///   newer, even with many threads sending: deliveries are serialised by one lock, the registry
///   by another, and no lock but the delivery one is held while a sink runs.
/// - **Threads.** Every member may be called from any thread, and from inside a sink or hook:
///   disconnect/join/leave/client/stats/connect work at once; a send, tick or close_all made from
///   inside a delivery is queued and runs right after it, in order.
/// - **Failure.** A sink that returns false (or throws) is removed right after the delivery pass
///   and closed; the others receive every frame.
/// - **Time** is passed in: `tick(now)` (heartbeats, history expiry) and `connect(..., now)`.
///   History entries are stamped with the latest time given (construction, connect or tick).
/// - **Shutdown.** `close_all` sends a last event, closes every client and refuses new ones.
///
/// Cost of a send: one encode and one allocation for the frame, a hash lookup per target part,
/// then one pointer copy and one `sink.send` per recipient; no allocation per recipient.
/// Memory: a 72-byte record per client (with a pointer-sized sink) plus 12 bytes per user, pool
/// or channel membership, and the shared registries (see README for measured figures).
template <class S>
class Broadcaster {
  static_assert(detail::check_sink<S>(), "ssepp::Broadcaster<S>: S must model ssepp::Sink");

 public:
  using Clock = std::chrono::steady_clock;
  using sink_type = S;
  /// Decides whether a client may join a channel (initial channels included).
  using Authorizer = std::function<bool(const ClientInfo&, std::string_view channel)>;

  /// An empty broadcaster. `now` is the starting time for heartbeat and history ages.
  explicit Broadcaster(BroadcasterOptions options = {}, Clock::time_point now = Clock::now())
      : options_(std::move(options)),
        next_event_id_(options_.first_id),
        history_(HistoryOptions{options_.history_size, options_.history_max_age, options_.id_order}),
        now_(now),
        last_tick_(now) {
    next_client_id_.store(options_.first_client_id != 0 ? options_.first_client_id : 1,
                          std::memory_order_relaxed);
    if (options_.preamble) preamble_ = Frame::comment(std::string(2048, ' '));
    if (options_.retry) retry_ = Frame::retry(*options_.retry);
  }

  /// Closes every remaining sink (no event, no hook). No other thread may be using the
  /// broadcaster; calls from a closing sink are dropped.
  ~Broadcaster() {
    delivery_.run_last(
        [&] {
          std::lock_guard<std::mutex> lock(registry_mutex_);
          return registry_.remove_all();
        },
        worker());
  }

  Broadcaster(const Broadcaster&) = delete;
  Broadcaster& operator=(const Broadcaster&) = delete;

  /// Registers a client. In order, the sink receives: the preamble and the retry hint (if
  /// configured), then — when `options.last_event_id` is given — every event after that id it
  /// would have received (by its user, pools and accepted initial channels), then live events.
  /// `replay` says whether the id was found, unknown or too old. Initial channels pass the
  /// authoriser; refused ones are listed and not joined. Errors (the sink is then closed):
  /// `errc::invalid_name` (user or a pool), `errc::sink_failed`, `errc::closed`.
  /// Cost: with a Last-Event-ID, waits for the delivery in progress (if any) and scans the
  /// history; without one, only the registry lock.
  ConnectResult connect(S sink, ConnectOptions options = {}, Clock::time_point now = Clock::now()) {
    if (closed()) return refuse(sink, errc::closed);
    Names names;
    if (!options.user.empty()) {
      if (!valid_group_name(options.user)) return refuse(sink, errc::invalid_name);
      names.user = std::move(options.user);
    }
    for (std::string& p : options.pools) {
      if (!valid_group_name(p)) return refuse(sink, errc::invalid_name);
      if (!contains(names.pools, p)) names.pools.push_back(std::move(p));
    }
    const ClientId id = next_client_id_.fetch_add(1, std::memory_order_relaxed);
    Connected result;
    result.id = id;

    std::shared_ptr<const Authorizer> auth = authorizer();
    const bool want_info = (auth && *auth) || options_.hooks.on_connect;
    ClientInfo info;
    if (want_info) {
      info.id = id;
      info.user = names.user;
      info.pools = names.pools;
    }
    for (std::string& ch : options.channels) {
      if (!valid_group_name(ch)) {
        result.refused_channels.push_back(std::move(ch));
        continue;
      }
      if (contains(names.channels, ch)) continue;
      if (auth && *auth && !(*auth)(info, ch)) {
        counters_.refused_joins.fetch_add(1, std::memory_order_relaxed);
        if (options_.hooks.on_join_refused) options_.hooks.on_join_refused(id, ch);
        result.refused_channels.push_back(std::move(ch));
        continue;
      }
      if (want_info) info.channels.push_back(ch);
      names.channels.push_back(std::move(ch));
    }

    std::optional<std::string> last = std::move(options.last_event_id);
    if (last && last->empty()) last.reset();

    std::error_code failure;
    auto admit = [&] {
      std::vector<Frame> replay;
      if (last) {
        std::unique_lock<std::mutex> lock(registry_mutex_);
        if (swept_) {  // stays so while this delivery runs: nothing is written
          lock.unlock();
          detail::sink_close(sink);
          failure = errc::closed;
          return;
        }
        if (now > now_) now_ = now;
        auto in = [](const std::vector<std::string>& v) {
          return [&v](std::string_view name) { return contains(v, name); };
        };
        result.replay = history_.replay_after(
            *last,
            [&](const HistoryEntry& e) {
              return e.target.matches(id, names.user, in(names.pools), in(names.channels));
            },
            replay);
      }
      if (!write_initial(sink, replay)) {  // closed it
        failure = errc::sink_failed;
        return;
      }
      // Once close_all is called, only a connect holding the delivery order lock may still
      // register: the shutdown, which needs that lock, then reaches it with the others.
      bool registered = false;
      {
        std::lock_guard<std::mutex> lock(registry_mutex_);
        if (last ? !swept_ : !closed()) {
          if (now > now_) now_ = now;
          registry_.add(id, std::move(sink), std::move(names), now);
          registered = true;
        }
      }
      if (!registered) {
        detail::sink_close(sink);
        failure = errc::closed;
        return;
      }
      result.replayed = replay.size();
    };
    // A replay must reach the sink before any newer event: hold the delivery order lock. Without
    // one, the sink is written before it is registered, so nothing can overtake.
    if (last) with_delivery(admit);
    else admit();

    if (result.replay == Replay::found) {
      counters_.replays.fetch_add(1, std::memory_order_relaxed);
      counters_.replayed_frames.fetch_add(result.replayed, std::memory_order_relaxed);
    } else if (result.replay != Replay::none) {
      counters_.replay_misses.fetch_add(1, std::memory_order_relaxed);
    }
    if (failure) {
      if (failure == errc::sink_failed) counters_.drops.fetch_add(1, std::memory_order_relaxed);
      return failure;
    }
    counters_.connects.fetch_add(1, std::memory_order_relaxed);
    if (options_.hooks.on_connect) options_.hooks.on_connect(info);
    if (last && options_.hooks.on_replay) options_.hooks.on_replay(id, result.replay, result.replayed);
    return result;
  }

  /// Removes a client: it leaves every user, pool and channel at once, its sink is closed (now,
  /// or right after the delivery in progress if one is running) and never used again after that.
  /// Error: `errc::unknown_client` when no client has that id. Never waits for a delivery.
  Result<void> disconnect(ClientId id) {
    std::vector<Node> gone;
    {
      std::lock_guard<std::mutex> lock(registry_mutex_);
      Client* c = registry_.find(id);
      if (c == nullptr) return errc::unknown_client;
      gone.push_back(registry_.remove(*c));
    }
    counters_.disconnects.fetch_add(1, std::memory_order_relaxed);
    if (options_.hooks.on_disconnect) options_.hooks.on_disconnect(id, DisconnectReason::requested);
    delivery_.release(std::move(gone), worker());
    return {};
  }

  /// Removes every client `target` matches (e.g. `Target::user("bob")`: log a user out of every
  /// tab), like `disconnect(id)` for each. Returns how many were removed.
  std::size_t disconnect(const Target& target) {
    std::vector<Node> gone;
    std::vector<ClientId> ids;
    {
      std::lock_guard<std::mutex> lock(registry_mutex_);
      std::vector<Client*> chosen;
      (void)registry_.select(target, chosen);
      gone.reserve(chosen.size());
      ids.reserve(chosen.size());
      for (Client* c : chosen) {
        ids.push_back(c->id);
        gone.push_back(registry_.remove(*c));
      }
    }
    counters_.disconnects.fetch_add(ids.size(), std::memory_order_relaxed);
    if (options_.hooks.on_disconnect)
      for (ClientId id : ids) options_.hooks.on_disconnect(id, DisconnectReason::requested);
    delivery_.release(std::move(gone), worker());
    return ids.size();
  }

  /// Shuts down: sends `last` (if given) to every client, like `broadcast`, then removes and
  /// closes every client (hook reason `DisconnectReason::shutdown`). From the call on, `connect`
  /// and sends fail with `errc::closed` (a connect already under way is either closed with the
  /// others, after `last`, or refused). Safe from any thread and from inside a sink or hook (the
  /// shutdown then runs right after the current delivery). Returns how many clients were closed
  /// (0 when called again or queued). Error: `errc::invalid_event_*` for an invalid `last`, and
  /// then nothing is done.
  Result<std::size_t> close_all(std::optional<Event> last = std::nullopt) {
    if (last)
      if (auto valid = validate(*last); !valid) return valid.error();
    {
      std::lock_guard<std::mutex> lock(registry_mutex_);
      if (closed()) return std::size_t{0};
      closed_.store(true, std::memory_order_release);
    }
    std::size_t n = 0;
    auto shut = [&](bool queue) {
      if (last) {
        if (!last->id) last->id = std::to_string(next_event_id_++);
        Frame frame = Frame::from_event(*last);
        if (queue) defer_send(Target::all(), frame, last->id);
        else (void)deliver_locked(Target::all(), frame, last->id);
      }
      if (queue) delivery_.defer(Pending{Pending::Kind::close, {}, {}, {}, {}, {}});
      else n = close_locked();
    };
    if (delivering()) shut(true);
    else with_delivery([&] { shut(false); });
    return n;
  }

  /// True once `close_all` was called.
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

  /// Adds a client to a channel, if the authoriser (when set) agrees. Joining a channel the
  /// client is already in succeeds and changes nothing. Errors: `errc::invalid_name`,
  /// `errc::unknown_client`, `errc::join_refused` (nothing changed).
  Result<void> join(ClientId id, std::string_view channel) {
    if (!valid_group_name(channel)) return errc::invalid_name;
    std::shared_ptr<const Authorizer> auth;
    ClientInfo info;
    {
      std::lock_guard<std::mutex> lock(registry_mutex_);
      Client* c = registry_.find(id);
      if (c == nullptr) return errc::unknown_client;
      if (registry_.in_channel(*c, channel)) return {};
      auth = authorizer_;
      if (auth && *auth) info = registry_.info(*c);
    }
    if (auth && *auth && !(*auth)(info, channel)) {
      counters_.refused_joins.fetch_add(1, std::memory_order_relaxed);
      if (options_.hooks.on_join_refused) options_.hooks.on_join_refused(id, channel);
      return errc::join_refused;
    }
    std::lock_guard<std::mutex> lock(registry_mutex_);
    Client* c = registry_.find(id);
    if (c == nullptr) return errc::unknown_client;
    (void)registry_.join(*c, channel);
    return {};
  }

  /// Removes a client from a channel (nothing to do when it is not in it). Error:
  /// `errc::unknown_client`.
  Result<void> leave(ClientId id, std::string_view channel) {
    std::lock_guard<std::mutex> lock(registry_mutex_);
    Client* c = registry_.find(id);
    if (c == nullptr) return errc::unknown_client;
    (void)registry_.leave(*c, channel);
    return {};
  }

  /// Sets the channel authoriser, called without broadcaster locks for every join and initial
  /// channel: `(client, channel) -> bool`. An empty function allows every join.
  void set_authorizer(Authorizer fn) {
    auto p = fn ? std::make_shared<const Authorizer>(std::move(fn)) : nullptr;
    std::lock_guard<std::mutex> lock(registry_mutex_);
    authorizer_ = std::move(p);
  }

  /// Encodes `event` once and delivers it to every client `target` matches (each once). Sends to
  /// anything but clients only get the next automatic id unless `event.id` is set, and enter the
  /// history. Returns the id and how many clients accepted it. Never throws: an invalid event
  /// or name, an unknown single client or a closed broadcaster is an error, and nothing is sent.
  SendResult send(const Target& target, Event event) {
    if (auto valid = validate(event); !valid) return valid.error();
    if (!target.valid()) return errc::invalid_name;
    if (closed()) return errc::closed;
    const bool auto_id = !event.id && !target.is_direct();
    Sent r;
    if (delivering()) {  // from inside a sink or hook: run right after the current delivery
      if (unknown_single_client(target)) return errc::unknown_client;
      if (auto_id) event.id = std::to_string(next_event_id_++);
      r.id = event.id.value_or(std::string());
      defer_send(target, Frame::from_event(event), std::move(event.id));
      return r;
    }
    bool unknown = false;
    with_delivery([&] {
      if (auto_id) event.id = std::to_string(next_event_id_++);
      r.id = event.id.value_or(std::string());
      Frame frame = Frame::from_event(event);
      Outcome o = deliver_locked(target, frame, std::move(event.id));
      r.delivered = o.delivered;
      unknown = o.unknown_client;
    });
    if (unknown) return errc::unknown_client;
    return r;
  }

  /// `send(Target::all(), event)`.
  SendResult broadcast(Event event) { return send(Target::all(), std::move(event)); }
  /// `send(Target::user(user), event)`: every connection of that user.
  SendResult send_to_user(std::string_view user, Event event) {
    return send(Target::user(user), std::move(event));
  }
  /// `send(Target::pool(pool), event)`.
  SendResult send_to_pool(std::string_view pool, Event event) {
    return send(Target::pool(std::string(pool)), std::move(event));
  }
  /// `send(Target::channel(channel), event)`.
  SendResult publish(std::string_view channel, Event event) {
    return send(Target::channel(std::string(channel)), std::move(event));
  }
  /// `send(Target::client(id), event)`.
  SendResult send_to(ClientId id, Event event) { return send(Target::client(id), std::move(event)); }

  /// Delivers an already-encoded frame as is (no validation, no automatic id) and, when
  /// `history_id` is given, records it in the history under that id. The seam for a multi-node
  /// bus that assigns ids itself (e.g. Redis stream ids, with `id_order = stream_id_order`): the
  /// frame must already carry its `id:` line. Same ordering, threading and errors as `send`.
  /// `except`: clients it matches are left out (a bus that carries one event on several
  /// streams delivers each copy to the clients no other copy reaches).
  SendResult send_encoded(const Target& target, Frame frame,
                          std::optional<std::string> history_id = std::nullopt,
                          const Target& except = Target()) {
    if (!target.valid()) return errc::invalid_name;
    if (closed()) return errc::closed;
    Sent r;
    r.id = history_id.value_or(std::string());
    if (delivering()) {
      if (unknown_single_client(target)) return errc::unknown_client;
      delivery_.defer(Pending{Pending::Kind::send, {}, target, std::move(frame),
                              std::move(history_id), except});
      return r;
    }
    bool unknown = false;
    with_delivery([&] {
      Outcome o = deliver_locked(target, frame, std::move(history_id), except);
      r.delivered = o.delivered;
      unknown = o.unknown_client;
    });
    if (unknown) return errc::unknown_client;
    return r;
  }

  /// Delivers an already-encoded frame to one client only (not recorded in the history): for a
  /// replay fetched from elsewhere (e.g. a bus's XRANGE) right after `connect`. Errors:
  /// `errc::unknown_client`, `errc::sink_failed` (the sink refused it: the client is removed),
  /// `errc::closed`. From inside a sink or hook it is queued and reports success.
  Result<void> deliver_to(ClientId id, Frame frame) {
    SendResult r = send_encoded(Target::client(id), std::move(frame));
    if (!r) return r.error();
    if (r->delivered == 0 && !delivering()) return errc::sink_failed;
    return {};
  }

  /// Sends a comment heartbeat (":\n\n") to every client nothing was written to for at least the
  /// heartbeat interval, and drops history entries older than `history_max_age`. Call it
  /// regularly (every second is plenty). Idleness is tracked per tick, without a clock read per
  /// delivery: a write counts as made at the tick before it.
  void tick(Clock::time_point now) {
    if (delivering()) {
      delivery_.defer(Pending{Pending::Kind::tick, now, {}, {}, {}, {}});
      return;
    }
    with_delivery([&] { tick_locked(now); });
  }

  /// A client's user, pools and channels, or nullopt when it is not connected.
  std::optional<ClientInfo> client(ClientId id) const {
    std::lock_guard<std::mutex> lock(registry_mutex_);
    const Client* c = registry_.find(id);
    if (c == nullptr) return std::nullopt;
    return registry_.info(*c);
  }

  /// Whether a client here matches `s`: the client is connected, or the user, pool or channel
  /// has a member here. For a bus that reads only what its local clients need.
  bool has_members(const Target::Selector& s) const {
    std::lock_guard<std::mutex> lock(registry_mutex_);
    return registry_.has(s);
  }

  /// Clients registered now.
  std::size_t size() const {
    std::lock_guard<std::mutex> lock(registry_mutex_);
    return registry_.size();
  }

  /// The id of the newest event recorded in the history (kept after it expires); empty if none.
  std::string last_event_id() const {
    std::lock_guard<std::mutex> lock(registry_mutex_);
    return history_.last_id();
  }

  /// Counters and registry sizes.
  BroadcasterStats stats() const {
    BroadcasterStats s;
    {
      std::lock_guard<std::mutex> lock(registry_mutex_);
      s.clients = registry_.size();
      s.pools = registry_.pool_count();
      s.channels = registry_.channel_count();
      s.history = history_.size();
    }
    auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    s.connects = get(counters_.connects);
    s.disconnects = get(counters_.disconnects);
    s.drops = get(counters_.drops);
    s.sends = get(counters_.sends);
    s.frames = get(counters_.frames);
    s.bytes = get(counters_.bytes);
    s.heartbeats = get(counters_.heartbeats);
    s.replays = get(counters_.replays);
    s.replayed_frames = get(counters_.replayed_frames);
    s.replay_misses = get(counters_.replay_misses);
    s.refused_joins = get(counters_.refused_joins);
    return s;
  }

  const BroadcasterOptions& options() const noexcept { return options_; }

  /// True when the calling thread is inside this broadcaster's delivery (running one of its
  /// sinks or hooks): a send or tick made now is queued and runs right after it. For layers
  /// built on top (a bus) that must not block on locks the delivery may wait for.
  bool delivering() const noexcept { return delivery_.held(); }

 private:
  using Registry = detail::Registry<S>;
  using Client = typename Registry::Client;
  using Node = typename Registry::Node;
  using Names = typename Registry::Names;

  /// A send, tick or shutdown made from inside a delivery, run right after it.
  struct Pending {
    enum class Kind : std::uint8_t { send, tick, close };
    Kind kind;
    Clock::time_point now;
    Target target;
    Frame frame;
    std::optional<std::string> id;
    Target except{};
  };
  struct Outcome {
    std::size_t delivered = 0;
    bool unknown_client = false;
  };
  struct Counters {
    std::atomic<std::uint64_t> connects{0}, disconnects{0}, drops{0}, sends{0}, frames{0}, bytes{0},
        heartbeats{0}, replays{0}, replayed_frames{0}, replay_misses{0}, refused_joins{0};
  };
  /// What the delivery order calls back: deferred jobs and closing removed clients.
  struct Worker {
    Broadcaster& b;
    void run(Pending& p) {
      switch (p.kind) {
        case Pending::Kind::send:
          (void)b.deliver_locked(p.target, p.frame, std::move(p.id), p.except);
          break;
        case Pending::Kind::tick: b.tick_locked(p.now); break;
        case Pending::Kind::close: (void)b.close_locked(); break;
      }
    }
    void close(Node& n) { detail::sink_close(n.mapped().sink); }
  };
  Worker worker() noexcept { return Worker{*this}; }

  static bool contains(const std::vector<std::string>& v, std::string_view s) noexcept {
    for (const std::string& x : v)
      if (x == s) return true;
    return false;
  }

  static ConnectResult refuse(S& sink, errc e) {
    detail::sink_close(sink);
    return e;
  }

  /// Queues a send behind the current delivery (which this thread runs).
  void defer_send(const Target& target, Frame frame, std::optional<std::string> id) {
    delivery_.defer(Pending{Pending::Kind::send, {}, target, std::move(frame), std::move(id), {}});
  }

  template <class F>
  void with_delivery(F&& f) {
    delivery_.run(std::forward<F>(f), worker());
  }

  std::shared_ptr<const Authorizer> authorizer() const {
    std::lock_guard<std::mutex> lock(registry_mutex_);
    return authorizer_;
  }

  /// True when `target` is one client that is not connected.
  bool unknown_single_client(const Target& target) const {
    if (!target.is_direct() || target.selectors().size() != 1) return false;
    std::lock_guard<std::mutex> lock(registry_mutex_);
    return registry_.find(target.selectors()[0].client) == nullptr;
  }

  /// Preamble, retry, replay: straight to a sink that is not registered yet. Closes it on failure.
  bool write_initial(S& sink, const std::vector<Frame>& replay) {
    std::uint64_t frames = 0, bytes = 0;
    bool ok = true;
    auto put = [&](const Frame& f) {
      if (!ok || f.empty()) return;
      if (detail::sink_send(sink, f)) {
        ++frames;
        bytes += f.size();
      } else {
        ok = false;
      }
    };
    put(preamble_);
    put(retry_);
    for (const Frame& f : replay) put(f);
    counters_.frames.fetch_add(frames, std::memory_order_relaxed);
    counters_.bytes.fetch_add(bytes, std::memory_order_relaxed);
    if (!ok) detail::sink_close(sink);
    return ok;
  }

  /// Selects the recipients, records the event (when `id`), delivers without the registry lock,
  /// then drops the clients whose sink failed. A send to one unknown client does nothing.
  /// Delivery lock held.
  Outcome deliver_locked(const Target& target, const Frame& frame, std::optional<std::string> id,
                         const Target& except = Target()) {
    Outcome o;
    {
      std::lock_guard<std::mutex> lock(registry_mutex_);
      o.unknown_client = registry_.select_except(target, except, recipients_);
      if (o.unknown_client) return o;
      if (id) history_.push(std::move(*id), target, frame, now_);
    }
    counters_.sends.fetch_add(1, std::memory_order_relaxed);
    o.delivered = run_pass(frame, true);
    drop_failed();
    return o;
  }

  /// Hands `frame` to every selected client; no registry lock, so sinks may call back in.
  /// Per recipient it costs no atomic operation of its own: the frame's references are added for
  /// all recipients at once, each sink gets one to keep (a `Mailbox` moves it into its queue), and
  /// the ones not kept are given back at the end. Client records lie scattered in memory, so with
  /// many clients each is a cache miss: the records (and, through the sink's optional `prefetch`
  /// hint, the sink's own state) are requested a few clients ahead so that the misses overlap.
  std::size_t run_pass(const Frame& frame, bool counts_as_write) {
    constexpr std::size_t ahead = 8;  // clients between prefetch stages
    Client* const* const r = recipients_.data();
    const std::size_t n = recipients_.size();
    struct Shares {  // references added for the pass and not kept by a sink (also on a throw)
      const Frame& frame;
      long left;
      ~Shares() { detail::FrameAccess::drop_refs(frame, left); }
    } shares{frame, static_cast<long>(n)};
    detail::FrameAccess::add_refs(frame, shares.left);
    std::size_t ok = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if constexpr (detail::has_prefetch<S>::value) {
        if (i + 3 * ahead < n) detail::prefetch(r[i + 3 * ahead]);
        if (i + 2 * ahead < n) detail::sink_prefetch(r[i + 2 * ahead]->sink, 2);
        if (i + ahead < n) detail::sink_prefetch(r[i + ahead]->sink, 1);
      } else {
        if (i + ahead < n) detail::prefetch(r[i + ahead]);
      }
      Client* c = r[i];
      Frame share = detail::FrameAccess::borrow(frame);
      const bool sent = detail::sink_send_share(c->sink, share);
      if (!detail::FrameAccess::forget(share)) --shares.left;  // the sink kept it
      if (SSEPP_LIKELY(sent)) {
        ++ok;
        if (counts_as_write && !c->written) c->written = true;
      } else {
        failed_.push_back(c);
      }
    }
    recipients_.clear();
    counters_.frames.fetch_add(ok, std::memory_order_relaxed);
    counters_.bytes.fetch_add(static_cast<std::uint64_t>(ok) * frame.size(), std::memory_order_relaxed);
    return ok;
  }

  /// Removes the clients whose sink failed in the last pass; the delivery order closes them when
  /// the current delivery ends. Delivery lock held.
  void drop_failed() {
    if (failed_.empty()) return;
    std::vector<Node> gone;
    std::vector<ClientId> ids;
    {
      std::lock_guard<std::mutex> lock(registry_mutex_);
      for (Client* c : failed_) {
        if (c->removed) continue;  // disconnected meanwhile
        ids.push_back(c->id);
        gone.push_back(registry_.remove(*c));
      }
    }
    failed_.clear();
    delivery_.retire(std::move(gone));
    counters_.drops.fetch_add(ids.size(), std::memory_order_relaxed);
    counters_.disconnects.fetch_add(ids.size(), std::memory_order_relaxed);
    if (options_.hooks.on_disconnect)
      for (ClientId id : ids) options_.hooks.on_disconnect(id, DisconnectReason::sink_failed);
  }

  /// Removes and closes every client (the shutdown). Delivery lock held, no pass running.
  std::size_t close_locked() {
    std::vector<Node> gone;
    {
      std::lock_guard<std::mutex> lock(registry_mutex_);
      gone = registry_.remove_all();
      swept_ = true;
    }
    counters_.disconnects.fetch_add(gone.size(), std::memory_order_relaxed);
    if (options_.hooks.on_disconnect)
      for (Node& n : gone) options_.hooks.on_disconnect(n.key(), DisconnectReason::shutdown);
    for (Node& n : gone) detail::sink_close(n.mapped().sink);
    return gone.size();
  }

  void tick_locked(Clock::time_point now) {
    {
      std::lock_guard<std::mutex> lock(registry_mutex_);
      if (now > now_) now_ = now;
      history_.expire(now);
      recipients_.clear();
      if (options_.heartbeat.count() > 0)
        registry_.select_idle(now, last_tick_, options_.heartbeat, recipients_);
      if (now > last_tick_) last_tick_ = now;
    }
    std::size_t n = run_pass(Frame::keepalive(), false);
    counters_.heartbeats.fetch_add(n, std::memory_order_relaxed);
    drop_failed();
  }

  const BroadcasterOptions options_;
  Frame preamble_;
  Frame retry_;

  // Delivery order: held by whoever delivers (send, tick, connect with replay, close_all). Taken
  // before registry_mutex_ when both are needed; never taken while holding registry_mutex_.
  detail::DeliveryOrder<Pending, Node> delivery_;
  // Delivery-lock-only state.
  std::uint64_t next_event_id_;
  std::vector<Client*> recipients_;  // reused snapshot: no allocation per recipient
  std::vector<Client*> failed_;

  // Registry lock: the registry, the history, the clock; held briefly, never while a sink runs.
  mutable std::mutex registry_mutex_;
  Registry registry_;
  History history_;
  Clock::time_point now_;
  Clock::time_point last_tick_;
  std::shared_ptr<const Authorizer> authorizer_;
  bool swept_ = false;  // close_all removed everyone: no client may register any more

  std::atomic<bool> closed_{false};  // close_all was called; set under registry_mutex_
  std::atomic<ClientId> next_client_id_{1};
  Counters counters_;
};

SSEPP_END_NAMESPACE
