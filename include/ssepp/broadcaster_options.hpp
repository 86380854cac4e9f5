// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// The vocabulary of `Broadcaster<Sink>` without the template: what `connect` takes and returns,
// what a send returns, settings, hooks and counters.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/history.hpp>
#include <ssepp/result.hpp>
#include <ssepp/target.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE

/// Who a client is and what it starts in, given to `Broadcaster::connect`.
struct ConnectOptions {
  /// The authenticated user, if any: `Target::user(user)` reaches every connection of it. Empty:
  /// anonymous. Longer than `max_group_name`: the connect fails with `errc::invalid_name`.
  std::string user;
  /// Pools for the connection's life (e.g. "tenant:acme", "role:admin"); any name, the user
  /// namespace is apart (a pool "user:bob" does not reach user "bob"). Duplicates count once. An
  /// invalid name (empty, longer than `max_group_name`) fails the connect with
  /// `errc::invalid_name`: a client is never connected with less identity than the host gave.
  std::vector<std::string> pools;
  /// Channels to join now; each passes the authoriser like `join`. Refused or invalid ones are
  /// listed in `Connected::refused_channels` and the connect goes on without them.
  std::vector<std::string> channels;
  /// The request's Last-Event-ID header, if any (empty counts as none).
  std::optional<std::string> last_event_id;
};

/// What a successful `Broadcaster::connect` did.
struct Connected {
  /// The new client's id (never 0).
  ClientId id = 0;
  /// Whether the Last-Event-ID was found (events replayed), unknown or too old (the host should
  /// send a snapshot), or not given.
  Replay replay = Replay::none;
  /// Events replayed before anything new.
  std::size_t replayed = 0;
  /// Initial channels refused by the authoriser or with invalid names.
  std::vector<std::string> refused_channels;

  /// The client asked to resume from an id the history does not have (unknown or too old): it
  /// missed events, so send it the current state.
  bool replay_missed() const noexcept {
    return replay == Replay::unknown || replay == Replay::too_old;
  }
};

/// What the host of a transport adapter sees, and may add to, as a stream opens (the `on_open`
/// of `ssepp::asio::EventStreams::serve` and of `ssepp::httplib::EndpointOptions`): the connect's
/// outcome, and the bytes to write first.
struct StreamStart : Connected {
  /// Bytes written right after the preamble, before any replayed or live event: append a
  /// "connected" event, or a snapshot when `replay_missed()` (`first += ssepp::encode(ev)`).
  std::string first;

  StreamStart() = default;
  explicit StreamStart(Connected c) : Connected(std::move(c)) {}
};

/// The outcome of `Broadcaster::connect`: `Connected`, or why the client is not connected —
/// `errc::invalid_name` (user or pool name), `errc::sink_failed` (the sink refused the preamble,
/// retry hint or replay), `errc::closed` (after `close_all`). On an error the sink has been
/// closed and is not registered.
using ConnectResult = Result<Connected>;

/// What a successful send did.
struct Sent {
  /// The event's id: the caller's, the automatic one, or empty when it has none.
  std::string id;
  /// Clients whose sink accepted the frame. A send made from inside a sink or hook is queued and
  /// delivered right after the current delivery: it reports 0 here.
  std::size_t delivered = 0;
};

/// The outcome of a send: `Sent`, or why nothing was sent — `errc::invalid_event_*` (no id
/// used), `errc::invalid_name` (a user, pool or channel name in the target), `errc::unknown_client`
/// (a send to one client that is not connected), `errc::closed` (after `close_all`).
using SendResult = Result<Sent>;

/// A client as the authoriser, hooks and `Broadcaster::client` see it.
struct ClientInfo {
  ClientId id = 0;
  std::string user;                   ///< empty when anonymous
  std::vector<std::string> pools;     ///< the connect-time pools
  std::vector<std::string> channels;  ///< the channels joined now
};

/// Why a client left.
enum class DisconnectReason {
  requested,    ///< `disconnect` was called
  sink_failed,  ///< its sink returned false (or threw)
  shutdown,     ///< `close_all` was called
};

/// The enumerator's name: "requested", "sink_failed" or "shutdown" (empty for a value outside
/// the enumeration).
constexpr std::string_view to_string(DisconnectReason r) noexcept {
  switch (r) {
    case DisconnectReason::requested: return "requested";
    case DisconnectReason::sink_failed: return "sink_failed";
    case DisconnectReason::shutdown: return "shutdown";
  }
  return {};
}

/// Optional callbacks for logging and metrics (no logging dependency). Called on the thread doing
/// the work, with no broadcaster lock held except, for sink failures and `close_all`, the
/// delivery order lock (a send made from a hook is then queued, like one made from a sink). They
/// must not throw.
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
  std::size_t pools = 0;              ///< pools and users with members now
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

SSEPP_END_NAMESPACE
