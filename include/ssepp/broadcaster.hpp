// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/detail/broadcaster_delivery.hpp>
#include <ssepp/detail/broadcaster_registry.hpp>
#include <ssepp/encoder.hpp>
#include <ssepp/error.hpp>
#include <ssepp/event.hpp>
#include <ssepp/history.hpp>
#include <ssepp/sink.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE

/// Longest pool, channel or user name accepted (bytes); longer or empty names are invalid.
inline constexpr std::size_t max_group_name = 1024;

/// Who a client is and what it starts in, given to `Broadcaster::connect`.
struct ConnectOptions {
  /// The authenticated user, if any: the client joins the pool "user:<user>" (see
  /// `Target::user`). Empty: anonymous.
  std::string user;
  /// Pools for the connection's life (e.g. "tenant:acme", "role:admin"). Invalid names (empty,
  /// longer than max_group_name) and duplicates are ignored.
  std::vector<std::string> pools;
  /// Channels to join now; each passes the authoriser like `join`. Refused or invalid ones are
  /// listed in `ConnectResult::refused_channels`.
  std::vector<std::string> channels;
  /// The request's Last-Event-ID header, if any (empty counts as none).
  std::optional<std::string> last_event_id;
};

/// What `Broadcaster::connect` did.
struct ConnectResult {
  /// The new client's id; 0 when the sink failed during connect (preamble, retry or replay),
  /// in which case the client is not registered.
  ClientId id = 0;
  /// Whether the Last-Event-ID was found (events replayed), unknown or too old (the host should
  /// send a snapshot), or not given.
  Replay replay = Replay::none;
  /// Events replayed before anything new.
  std::size_t replayed = 0;
  /// Initial channels refused by the authoriser or with invalid names.
  std::vector<std::string> refused_channels;

  /// True when the client is connected.
  explicit operator bool() const noexcept { return id != 0; }
};

/// What a send did.
struct SendResult {
  /// The event's id: the caller's, the automatic one, or empty when it has none.
  std::string id;
  /// Clients whose sink accepted the frame. A send made from inside a sink is queued and
  /// delivered right after the current delivery: it reports 0 here.
  std::size_t delivered = 0;
  /// Invalid event (`errc::invalid_event_*`, nothing sent, no id used), or `errc::unknown_client`
  /// for a send to one client that is not connected.
  std::error_code error;

  /// True when there is no error.
  explicit operator bool() const noexcept { return !error; }
};

/// A client as the authoriser, hooks and `Broadcaster::client` see it.
struct ClientInfo {
  ClientId id = 0;
  std::string user;                   ///< empty when anonymous
  std::vector<std::string> pools;     ///< the connect-time pools (without the user pool)
  std::vector<std::string> channels;  ///< the channels joined now
};

/// Why a client left.
enum class DisconnectReason {
  requested,    ///< `disconnect(id)` was called
  sink_failed,  ///< its sink returned false (or threw)
};

/// Optional callbacks for logging and metrics (no logging dependency). Called on the thread doing
/// the work, with no broadcaster lock held except, for sink failures, the delivery order lock (a
/// send made from a hook is then queued, like one made from a sink). They must not throw.
struct BroadcasterHooks {
  std::function<void(const ClientInfo&)> on_connect;
  std::function<void(ClientId, DisconnectReason)> on_disconnect;
  std::function<void(ClientId, Replay, std::size_t replayed)> on_replay;
  std::function<void(ClientId, std::string_view channel)> on_join_refused;
};

/// Settings of a `Broadcaster`.
struct BroadcasterOptions {
  /// Events kept for Last-Event-ID replay (0: no replay).
  std::size_t history_size = 1024;
  /// Events older than this are dropped from the history at `tick` (zero: no age limit).
  std::chrono::milliseconds history_max_age = std::chrono::minutes(5);
  /// A client idle this long gets a comment heartbeat at `tick` (zero: no heartbeats).
  std::chrono::milliseconds heartbeat = std::chrono::seconds(15);
  /// When set, every new client first receives "retry: N" (its reconnection delay).
  std::optional<std::chrono::milliseconds> retry;
  /// When true, every new client first receives a 2 KiB comment, which makes buffering proxies
  /// and old browsers start delivering at once.
  bool preamble = false;
  /// The first automatic event id (ids then increase by one). Start from e.g. a timestamp so
  /// ids from before a restart are not mistaken for new ones.
  std::uint64_t first_id = 1;
  /// The first client id (ids then increase by one; 0 counts as 1). Give each node of a cluster
  /// its own range so client ids are unique across nodes.
  ClientId first_client_id = 1;
  /// How Last-Event-IDs compare when telling "too old" from "unknown" (`decimal_id_order` for
  /// automatic ids, `stream_id_order` when a Redis Streams bus supplies the ids).
  IdOrder id_order = decimal_id_order;
  /// Logging and metrics callbacks.
  BroadcasterHooks hooks;
};

/// Counters of a `Broadcaster` (a consistent-enough snapshot: each field is exact, fields are
/// read one after the other).
struct BroadcasterStats {
  std::size_t clients = 0;            ///< connected now
  std::size_t pools = 0;              ///< pools with members now (user pools included)
  std::size_t channels = 0;           ///< channels with members now
  std::size_t history = 0;            ///< events kept for replay now
  std::uint64_t connects = 0;         ///< successful connects
  std::uint64_t disconnects = 0;      ///< clients removed, for any reason
  std::uint64_t drops = 0;            ///< clients removed because their sink failed (at connect too)
  std::uint64_t sends = 0;            ///< events sent (each once, however many clients it reached)
  std::uint64_t frames = 0;           ///< frames sinks accepted (events, heartbeats, replays, ...)
  std::uint64_t bytes = 0;            ///< bytes of those frames
  std::uint64_t heartbeats = 0;       ///< heartbeat frames sinks accepted
  std::uint64_t replays = 0;          ///< connects whose Last-Event-ID was found
  std::uint64_t replayed_frames = 0;  ///< events those replays delivered
  std::uint64_t replay_misses = 0;    ///< connects whose Last-Event-ID was unknown or too old
  std::uint64_t refused_joins = 0;    ///< channel joins the authoriser refused
};

/// Fan-out of events to connected clients: registries, targets, ids, replay, heartbeats.
///
/// - **Registries.** Clients (server-generated ids), pools (fixed at connect: user, tenant,
///   role...), channels (joined and left at run time, through an optional authoriser).
/// - **Sends.** `send(target, event)` encodes once and hands the same shared frame to every
///   matching client (a client matching several parts of a target gets it once). Sends to all,
///   pools, users and channels get an increasing decimal id unless the event has one, and enter
///   the history; a send to clients only gets no id and no history entry unless the caller gave
///   an id (then it is recorded, so that id is found on reconnect, but it replays to nobody).
/// - **Order.** Every client receives events in id order, and a replay strictly before anything
///   newer, even with many threads sending: deliveries are serialised by one lock, the registry
///   by another, and no lock but the delivery one is held while a sink runs.
/// - **Threads.** Every member may be called from any thread, and from inside a sink or hook:
///   disconnect/join/leave/client/stats/connect work at once; a send or tick made from inside a
///   delivery is queued and runs right after it, in order.
/// - **Failure.** A sink that returns false (or throws) is removed right after the delivery pass
///   and closed; the others receive every frame.
/// - **Time** is passed in: `tick(now)` (heartbeats, history expiry) and `connect(..., now)`.
///   History entries are stamped with the latest time given (construction, connect or tick).
///
/// Cost of a send: one encode and one allocation for the frame, a hash lookup per target part,
/// then one pointer copy and one `sink.send` per recipient; no allocation per recipient.
/// Memory: a 72-byte record per client (with a pointer-sized sink) plus 12 bytes per pool or
/// channel membership, and the shared registries (see README for measured figures).
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

  /// Closes every remaining sink. No other thread may be using the broadcaster.
  ~Broadcaster() {
    std::lock_guard<std::mutex> order(delivery_);
    detail::DeliveryMark mark(this);  // calls from a closing sink are queued and dropped
    ClientMap clients;
    std::vector<typename ClientMap::node_type> retired;
    {
      std::lock_guard<std::mutex> lock(registry_);
      clients.swap(clients_);
      retired.swap(retired_);
      all_.clear();
      pools_.clear();
      channels_.clear();
    }
    for (auto& n : retired) detail::sink_close(n.mapped().sink);
    for (auto& kv : clients) detail::sink_close(kv.second.sink);
  }

  Broadcaster(const Broadcaster&) = delete;
  Broadcaster& operator=(const Broadcaster&) = delete;

  /// Registers a client and returns its id. In order, the sink receives: the preamble and the
  /// retry hint (if configured), then — when `options.last_event_id` is given — every event
  /// after that id it would have received (by its pools, user and accepted initial channels),
  /// then live events. `result.replay` says whether the id was found, unknown or too old.
  /// Initial channels pass the authoriser; refused ones are listed and not joined.
  /// Cost: with a Last-Event-ID, waits for the delivery in progress (if any) and scans the
  /// history; without one, only the registry lock.
  ConnectResult connect(S sink, ConnectOptions options = {}, Clock::time_point now = Clock::now()) {
    ConnectResult result;
    const ClientId id = next_client_id_.fetch_add(1, std::memory_order_relaxed);

    Names names;
    if (valid_name(options.user) && options.user.size() + 5 <= max_group_name) {
      names.pools.push_back(Target::user_pool(options.user));
      names.has_user = true;
    }
    for (std::string& p : options.pools)
      if (valid_name(p) && !contains(names.pools, p)) names.pools.push_back(std::move(p));

    std::shared_ptr<const Authorizer> auth = authorizer();
    const bool want_info = (auth && *auth) || options_.hooks.on_connect;
    ClientInfo info;
    if (want_info) {
      info.id = id;
      info.user = options.user;
      for (std::size_t i = names.has_user ? 1 : 0; i < names.pools.size(); ++i)
        info.pools.push_back(names.pools[i]);
    }
    for (std::string& ch : options.channels) {
      if (!valid_name(ch)) {
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

    bool ok = false;
    auto admit = [&] {
      std::vector<Frame> replay;
      if (last) {
        std::lock_guard<std::mutex> lock(registry_);
        if (now > now_) now_ = now;
        result.replay = history_.replay_after(
            *last,
            [&](const HistoryEntry& e) {
              return e.target.matches(
                  id, [&](std::string_view p) { return contains(names.pools, p); },
                  [&](std::string_view c) { return contains(names.channels, c); });
            },
            replay);
      }
      if (!write_initial(sink, replay)) return;
      std::lock_guard<std::mutex> lock(registry_);
      register_locked(id, std::move(sink), names, now);
      result.replayed = replay.size();
      ok = true;
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
    if (!ok) {
      counters_.drops.fetch_add(1, std::memory_order_relaxed);
      result.replayed = 0;
      return result;
    }
    result.id = id;
    counters_.connects.fetch_add(1, std::memory_order_relaxed);
    if (options_.hooks.on_connect) options_.hooks.on_connect(info);
    if (last && options_.hooks.on_replay) options_.hooks.on_replay(id, result.replay, result.replayed);
    return result;
  }

  /// Removes a client: it leaves every pool and channel at once, its sink is closed (now, or
  /// right after the delivery in progress if one is running) and never used again after that.
  /// Returns false when no client has that id. Never waits for a delivery.
  bool disconnect(ClientId id) {
    typename ClientMap::node_type node;
    {
      std::lock_guard<std::mutex> lock(registry_);
      auto it = clients_.find(id);
      if (it == clients_.end()) return false;
      unlink_locked(it->second);
      node = clients_.extract(it);
    }
    counters_.disconnects.fetch_add(1, std::memory_order_relaxed);
    if (options_.hooks.on_disconnect) options_.hooks.on_disconnect(id, DisconnectReason::requested);
    if (!delivering() && delivery_.try_lock()) {
      {
        std::lock_guard<std::mutex> order(delivery_, std::adopt_lock);
        detail::DeliveryMark mark(this);
        detail::sink_close(node.mapped().sink);
        node = {};
        finish_locked();
      }
      reclaim_orphans();
      return true;
    }
    // A delivery is running (maybe on this thread, from a sink): it may still be using this
    // client's sink, so the delivery closes and frees it when it ends.
    retire(std::move(node));
    if (!delivering()) reclaim_orphans();
    return true;
  }

  /// Adds a client to a channel, if the authoriser (when set) agrees. Joining a channel the
  /// client is already in succeeds and changes nothing. Errors: `errc::invalid_name`,
  /// `errc::unknown_client`, `errc::join_refused` (nothing changed).
  std::error_code join(ClientId id, std::string_view channel) {
    if (!valid_name(channel)) return errc::invalid_name;
    std::shared_ptr<const Authorizer> auth;
    ClientInfo info;
    {
      std::lock_guard<std::mutex> lock(registry_);
      auto it = clients_.find(id);
      if (it == clients_.end()) return errc::unknown_client;
      if (channel_index_locked(it->second, channel) != npos) return {};
      auth = authorizer_;
      if (auth && *auth) info = info_locked(it->second);
    }
    if (auth && *auth && !(*auth)(info, channel)) {
      counters_.refused_joins.fetch_add(1, std::memory_order_relaxed);
      if (options_.hooks.on_join_refused) options_.hooks.on_join_refused(id, channel);
      return errc::join_refused;
    }
    std::lock_guard<std::mutex> lock(registry_);
    auto it = clients_.find(id);
    if (it == clients_.end()) return errc::unknown_client;
    if (channel_index_locked(it->second, channel) == npos)
      add_member_locked(it->second, channels_, std::string(channel));
    return {};
  }

  /// Removes a client from a channel (nothing to do when it is not in it). Errors:
  /// `errc::unknown_client`.
  std::error_code leave(ClientId id, std::string_view channel) {
    std::lock_guard<std::mutex> lock(registry_);
    auto it = clients_.find(id);
    if (it == clients_.end()) return errc::unknown_client;
    Client& c = it->second;
    std::size_t k = channel_index_locked(c, channel);
    if (k == npos) return {};
    remove_member_locked(c.groups[k], true);
    c.remove_group(k);
    return {};
  }

  /// Sets the channel authoriser, called without broadcaster locks for every join and initial
  /// channel: `(client, channel) -> bool`. An empty function allows every join.
  void set_authorizer(Authorizer fn) {
    auto p = fn ? std::make_shared<const Authorizer>(std::move(fn)) : nullptr;
    std::lock_guard<std::mutex> lock(registry_);
    authorizer_ = std::move(p);
  }

  /// Encodes `event` once and delivers it to every client `target` matches (each once). Sends to
  /// anything but clients only get the next automatic id unless `event.id` is set, and enter the
  /// history. Returns the id and how many clients accepted it. Never throws for an invalid event:
  /// `error` is set and nothing is sent.
  SendResult send(const Target& target, Event event) {
    SendResult r;
    if (auto valid = validate(event); !valid) {
      r.error = valid.error();
      return r;
    }
    const bool auto_id = !event.id && !target.is_direct();
    if (delivering()) {  // from inside a sink or hook: run right after the current delivery
      if (auto_id) event.id = std::to_string(next_event_id_++);
      r.id = event.id.value_or(std::string());
      if (target.is_direct() && target.selectors().size() == 1 && !connected(target.selectors()[0].client))
        r.error = errc::unknown_client;
      pending_.push_back(Pending{false, {}, target, Frame::from_event(event), std::move(event.id)});
      return r;
    }
    with_delivery([&] {
      if (auto_id) event.id = std::to_string(next_event_id_++);
      r.id = event.id.value_or(std::string());
      Frame frame = Frame::from_event(event);
      Outcome o = deliver_locked(target, frame, std::move(event.id));
      r.delivered = o.delivered;
      if (o.unknown_client) r.error = errc::unknown_client;
    });
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
  /// frame must already carry its `id:` line. Same ordering and threading rules as `send`.
  SendResult send_encoded(const Target& target, Frame frame,
                          std::optional<std::string> history_id = std::nullopt) {
    SendResult r;
    r.id = history_id.value_or(std::string());
    if (delivering()) {
      pending_.push_back(Pending{false, {}, target, std::move(frame), std::move(history_id)});
      return r;
    }
    with_delivery([&] {
      Outcome o = deliver_locked(target, frame, std::move(history_id));
      r.delivered = o.delivered;
      if (o.unknown_client) r.error = errc::unknown_client;
    });
    return r;
  }

  /// Delivers an already-encoded frame to one client only (not recorded in the history): for a
  /// replay fetched from elsewhere (e.g. a bus's XRANGE) right after `connect`. True when the
  /// client's sink accepted it (false when unknown, failed, or queued from inside a sink).
  bool deliver_to(ClientId id, Frame frame) {
    return send_encoded(Target::client(id), std::move(frame)).delivered == 1;
  }

  /// Sends a comment heartbeat (":\n\n") to every client nothing was written to for at least the
  /// heartbeat interval, and drops history entries older than `history_max_age`. Call it
  /// regularly (every second is plenty). Idleness is tracked per tick, without a clock read per
  /// delivery: a write counts as made at the tick before it.
  void tick(Clock::time_point now) {
    if (delivering()) {
      pending_.push_back(Pending{true, now, {}, {}, {}});
      return;
    }
    with_delivery([&] { tick_locked(now); });
  }

  /// A client's user, pools and channels, or nullopt when it is not connected.
  std::optional<ClientInfo> client(ClientId id) const {
    std::lock_guard<std::mutex> lock(registry_);
    auto it = clients_.find(id);
    if (it == clients_.end()) return std::nullopt;
    return info_locked(it->second);
  }

  /// The id of the newest event recorded in the history (kept after it expires); empty if none.
  std::string last_event_id() const {
    std::lock_guard<std::mutex> lock(registry_);
    return history_.last_id();
  }

  /// Counters and registry sizes.
  BroadcasterStats stats() const {
    BroadcasterStats s;
    {
      std::lock_guard<std::mutex> lock(registry_);
      s.clients = clients_.size();
      s.pools = pools_.size();
      s.channels = channels_.size();
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

 private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  struct Client;
  /// A pool or channel: its members, and its name (the key of its map node). 24 bytes.
  struct Group {
    detail::InlineOneVector<Client*> members;
    const std::string* name = nullptr;
  };
  /// A client's place in a group: `group()->members[index] == client`. 12 bytes (the pointer
  /// kept as two 32-bit halves); whether the group is a channel follows from the position in the
  /// client's array (pools first).
  struct Membership {
    Membership() = default;
    Membership(Group* g, std::uint32_t i) noexcept : index(i) { set_group(g); }
    Group* group() const noexcept {
      auto v = static_cast<std::uintptr_t>(lo);
      if constexpr (sizeof(std::uintptr_t) > 4) v |= static_cast<std::uintptr_t>(hi) << 16 << 16;
      return reinterpret_cast<Group*>(v);  // NOLINT(performance-no-int-to-ptr): packed pointer
    }
    void set_group(Group* g) noexcept {
      auto v = reinterpret_cast<std::uintptr_t>(g);
      lo = static_cast<std::uint32_t>(v);
      hi = sizeof(std::uintptr_t) > 4 ? static_cast<std::uint32_t>(v >> 16 >> 16) : 0;
    }
    std::uint32_t lo = 0;
    std::uint32_t hi = 0;
    std::uint32_t index = 0;
  };
  /// One connection: 48 bytes plus the sink. `sink`, `written` and `last_activity` belong to the
  /// delivery lock holder; the rest to the registry lock. Memberships live in one exact-size
  /// array: pools (the user pool first), then channels.
  struct Client {
    Client(S&& s, ClientId i) : sink(std::move(s)), id(i) {}
    ~Client() { delete[] groups; }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    S sink;                // first, with `written`: what a delivery touches
    bool written = false;  // written since the last tick
    bool has_user = false;
    bool removed = false;
    std::uint32_t epoch = 0;  // dedupe stamp of the last multi-part send
    ClientId id;
    Clock::time_point last_activity{};  // last write as of the previous tick
    Membership* groups = nullptr;
    std::uint32_t group_count = 0;
    std::uint32_t group_cap = 0;
    std::uint32_t pool_count = 0;
    std::uint32_t all_index = 0;  // position in all_

    Membership* begin() noexcept { return groups; }
    Membership* end() noexcept { return groups + group_count; }
    const Membership* begin() const noexcept { return groups; }
    const Membership* end() const noexcept { return groups + group_count; }

    void reserve_groups(std::size_t n) {
      if (n <= group_cap) return;
      auto* block = new Membership[n];
      for (std::uint32_t k = 0; k < group_count; ++k) block[k] = groups[k];
      delete[] groups;
      groups = block;
      group_cap = static_cast<std::uint32_t>(n);
    }
    void add_group(const Membership& m) {
      if (group_count == group_cap) reserve_groups(group_cap + (group_cap < 4 ? 2 : group_cap / 2));
      groups[group_count++] = m;
    }
    void remove_group(std::size_t k) noexcept { groups[k] = groups[--group_count]; }
  };
  using ClientMap = std::unordered_map<ClientId, Client>;
  using GroupMap = std::unordered_map<std::string, Group>;

  struct Names {
    std::vector<std::string> pools;
    std::vector<std::string> channels;
    bool has_user = false;
  };
  struct Pending {
    bool tick;
    Clock::time_point now;
    Target target;
    Frame frame;
    std::optional<std::string> id;
  };
  struct Outcome {
    std::size_t delivered = 0;
    bool unknown_client = false;
  };
  struct Counters {
    std::atomic<std::uint64_t> connects{0}, disconnects{0}, drops{0}, sends{0}, frames{0}, bytes{0},
        heartbeats{0}, replays{0}, replayed_frames{0}, replay_misses{0}, refused_joins{0};
  };

  static bool valid_name(std::string_view name) noexcept {
    return !name.empty() && name.size() <= max_group_name;
  }
  static bool contains(const std::vector<std::string>& v, std::string_view s) noexcept {
    for (const std::string& x : v)
      if (x == s) return true;
    return false;
  }

  bool delivering() const noexcept { return detail::DeliveryMark::held(this); }

  std::shared_ptr<const Authorizer> authorizer() const {
    std::lock_guard<std::mutex> lock(registry_);
    return authorizer_;
  }

  bool connected(ClientId id) const {
    std::lock_guard<std::mutex> lock(registry_);
    return clients_.count(id) != 0;
  }

  /// Runs f holding the delivery order lock (or inline when this thread already holds it), then
  /// runs what was queued meanwhile and frees retired clients.
  template <class F>
  void with_delivery(F&& f) {
    if (delivering()) {
      f();
      return;
    }
    {
      std::lock_guard<std::mutex> order(delivery_);
      detail::DeliveryMark mark(this);
      f();
      finish_locked();
    }
    reclaim_orphans();
  }

  /// Queued sends and ticks, then retired clients, until neither is left. Delivery lock held.
  void finish_locked() {
    for (;;) {
      if (!pending_.empty()) {
        Pending p = std::move(pending_.front());
        pending_.pop_front();
        if (p.tick) tick_locked(p.now);
        else deliver_locked(p.target, p.frame, std::move(p.id));
        continue;
      }
      std::vector<typename ClientMap::node_type> dead;
      {
        std::lock_guard<std::mutex> lock(registry_);
        dead.swap(retired_);
        retired_pending_.store(false, std::memory_order_relaxed);
      }
      if (dead.empty()) return;
      for (auto& n : dead) detail::sink_close(n.mapped().sink);
    }
  }

  /// Hands a removed client to whoever holds the delivery lock (it is freed when they finish).
  void retire(typename ClientMap::node_type&& node) {
    std::lock_guard<std::mutex> lock(registry_);
    retired_.push_back(std::move(node));
    retired_pending_.store(true, std::memory_order_release);
  }

  /// Frees clients retired while another thread was delivering and has since finished.
  void reclaim_orphans() {
    while (retired_pending_.load(std::memory_order_acquire) && delivery_.try_lock()) {
      std::lock_guard<std::mutex> order(delivery_, std::adopt_lock);
      detail::DeliveryMark mark(this);
      finish_locked();
    }
  }

  /// Preamble, retry, replay: straight to a sink that is not registered yet.
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

  /// Records (when id), selects the recipients, delivers without the registry lock, then drops
  /// the clients whose sink failed. Delivery lock held.
  Outcome deliver_locked(const Target& target, const Frame& frame, std::optional<std::string> id) {
    Outcome o;
    {
      std::lock_guard<std::mutex> lock(registry_);
      if (id) history_.push(std::move(*id), target, frame, now_);
      o.unknown_client = select_locked(target);
    }
    counters_.sends.fetch_add(1, std::memory_order_relaxed);
    o.delivered = run_pass(frame, true);
    drop_failed();
    return o;
  }

  /// Fills recipients_ with the clients `target` matches, each once. Returns true when the target
  /// is one client that is not connected.
  bool select_locked(const Target& target) {
    recipients_.clear();
    if (target.is_all()) {
      recipients_.assign(all_.begin(), all_.end());
      return false;
    }
    const auto& parts = target.selectors();
    if (parts.size() == 1) {  // one part: no duplicates possible
      const Target::Selector& s = parts[0];
      if (s.kind == Target::Kind::client) {
        auto it = clients_.find(s.client);
        if (it == clients_.end()) return true;
        recipients_.push_back(&it->second);
      } else if (const Group* g = find_group_locked(s)) {
        recipients_.assign(g->members.begin(), g->members.end());
      }
      return false;
    }
    if (++epoch_ == 0) {  // wrapped: forget every old stamp
      for (Client* c : all_) c->epoch = 0;
      epoch_ = 1;
    }
    const std::uint32_t stamp = epoch_;
    auto add = [&](Client* c) {
      if (c->epoch != stamp) {
        c->epoch = stamp;
        recipients_.push_back(c);
      }
    };
    for (const Target::Selector& s : parts) {
      if (s.kind == Target::Kind::client) {
        auto it = clients_.find(s.client);
        if (it != clients_.end()) add(&it->second);
      } else if (const Group* g = find_group_locked(s)) {
        for (Client* c : g->members) add(c);
      }
    }
    return false;
  }

  const Group* find_group_locked(const Target::Selector& s) const {
    const GroupMap& map = s.kind == Target::Kind::channel ? channels_ : pools_;
    auto it = map.find(s.name);
    return it == map.end() ? nullptr : &it->second;
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

  /// Removes the clients whose sink failed in the last pass (closed by finish_locked).
  void drop_failed() {
    if (failed_.empty()) return;
    std::vector<ClientId> gone;
    {
      std::lock_guard<std::mutex> lock(registry_);
      for (Client* c : failed_) {
        if (c->removed) continue;  // disconnected meanwhile
        gone.push_back(c->id);
        unlink_locked(*c);
        retired_.push_back(clients_.extract(c->id));
      }
      if (!gone.empty()) retired_pending_.store(true, std::memory_order_release);
    }
    failed_.clear();
    counters_.drops.fetch_add(gone.size(), std::memory_order_relaxed);
    counters_.disconnects.fetch_add(gone.size(), std::memory_order_relaxed);
    if (options_.hooks.on_disconnect)
      for (ClientId id : gone) options_.hooks.on_disconnect(id, DisconnectReason::sink_failed);
  }

  void tick_locked(Clock::time_point now) {
    {
      std::lock_guard<std::mutex> lock(registry_);
      if (now > now_) now_ = now;
      history_.expire(now);
      const auto interval = options_.heartbeat;
      recipients_.clear();
      if (interval.count() > 0) {
        for (Client* c : all_) {
          if (c->written) {
            c->written = false;
            if (c->last_activity < last_tick_) c->last_activity = last_tick_;
          }
          if (now - c->last_activity >= interval) {
            c->last_activity = now;
            recipients_.push_back(c);
          }
        }
      }
      if (now > last_tick_) last_tick_ = now;
    }
    std::size_t n = run_pass(Frame::keepalive(), false);
    counters_.heartbeats.fetch_add(n, std::memory_order_relaxed);
    drop_failed();
  }

  void register_locked(ClientId id, S&& sink, Names& names, Clock::time_point now) {
    if (now > now_) now_ = now;
    Client& c = clients_.try_emplace(id, std::move(sink), id).first->second;
    c.last_activity = now;
    c.has_user = names.has_user;
    c.reserve_groups(names.pools.size() + names.channels.size());
    for (std::string& p : names.pools) add_member_locked(c, pools_, std::move(p));
    c.pool_count = c.group_count;
    for (std::string& ch : names.channels) add_member_locked(c, channels_, std::move(ch));
    c.all_index = static_cast<std::uint32_t>(all_.size());
    all_.push_back(&c);
  }

  void add_member_locked(Client& c, GroupMap& map, std::string name) {
    auto [it, fresh] = map.try_emplace(std::move(name));
    Group& g = it->second;
    if (fresh) g.name = &it->first;
    c.add_group(Membership(&g, static_cast<std::uint32_t>(g.members.size())));
    g.members.push_back(&c);
  }

  /// Takes the membership's client out of its group; erases the group when it empties.
  void remove_member_locked(const Membership& m, bool channel) {
    Group& g = *m.group();
    Client* last = g.members.back();
    if (m.index + 1 != g.members.size()) {
      g.members[m.index] = last;
      for (Membership& lm : *last)
        if (lm.group() == &g) {
          lm.index = m.index;
          break;
        }
    }
    g.members.pop_back();
    if (g.members.empty()) {
      GroupMap& map = channel ? channels_ : pools_;
      // cppcheck-suppress mismatchingContainerIterator ; `map` is one of the two, by reference
      map.erase(map.find(*g.name));
    } else {
      g.members.shrink();
    }
  }

  /// Takes a client out of every registry (its record stays alive until freed).
  void unlink_locked(Client& c) {
    for (std::uint32_t k = 0; k < c.group_count; ++k) remove_member_locked(c.groups[k], k >= c.pool_count);
    c.group_count = 0;
    Client* last = all_.back();
    all_[c.all_index] = last;
    last->all_index = c.all_index;
    all_.pop_back();
    shrink(all_);
    c.removed = true;
  }

  /// Gives memory back after a crowd left (a vector at a quarter of its capacity).
  static void shrink(std::vector<Client*>& v) {
    if (v.capacity() > 64 && v.size() < v.capacity() / 4) v.shrink_to_fit();
  }

  std::size_t channel_index_locked(const Client& c, std::string_view channel) const noexcept {
    for (std::size_t k = c.pool_count; k < c.group_count; ++k)
      if (*c.groups[k].group()->name == channel) return k;
    return npos;
  }

  ClientInfo info_locked(const Client& c) const {
    ClientInfo info;
    info.id = c.id;
    for (std::size_t k = 0; k < c.group_count; ++k) {
      const std::string& name = *c.groups[k].group()->name;
      if (k == 0 && c.has_user) info.user = name.substr(5);
      else if (k < c.pool_count) info.pools.push_back(name);
      else info.channels.push_back(name);
    }
    return info;
  }

  const BroadcasterOptions options_;
  Frame preamble_;
  Frame retry_;

  // Delivery order lock: held by whoever delivers (send, tick, connect with replay). Taken
  // before registry_ when both are needed; never taken while holding registry_.
  std::mutex delivery_;
  // Delivery-lock-only state.
  std::uint64_t next_event_id_;
  std::vector<Client*> recipients_;  // reused snapshot: no allocation per recipient
  std::vector<Client*> failed_;
  std::deque<Pending> pending_;      // sends and ticks made from inside a delivery

  // Registry lock: the maps, the history, the clock; held briefly, never while a sink runs.
  mutable std::mutex registry_;
  ClientMap clients_;
  GroupMap pools_;
  GroupMap channels_;
  std::vector<Client*> all_;
  History history_;
  std::uint32_t epoch_ = 0;
  Clock::time_point now_;
  Clock::time_point last_tick_;
  std::shared_ptr<const Authorizer> authorizer_;
  std::vector<typename ClientMap::node_type> retired_;  // removed during a delivery; freed after it

  std::atomic<bool> retired_pending_{false};
  std::atomic<ClientId> next_client_id_{1};
  Counters counters_;
};

SSEPP_END_NAMESPACE
