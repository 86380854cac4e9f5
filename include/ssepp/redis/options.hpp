// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// Where Redis is and how the bus and the bridge use it; their counters. Needs no hiredis.
#pragma once

#include <ssepp/config.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

SSEPP_BEGIN_NAMESPACE

/// One Redis instance.
struct RedisEndpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
};

/// Where Redis is and how the bus uses it.
struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  /// Streams mode: the Redis instances (shards) the streams are spread over, by a consistent
  /// hash of each stream's key (`redis_shard_of`). Empty: one shard, `host`:`port`. Every node
  /// must list the same shards in the same order.
  std::vector<RedisEndpoint> shards;
  /// AUTH password; empty for none.
  std::string password;
  /// Streams mode: the prefix of every key: the streams `<stream>:all`, `<stream>:c:<channel>`,
  /// `<stream>:p:<pool>`, `<stream>:u:<user>`, `<stream>:k:<node>`, and per shard the counter
  /// `<stream>:counter` and `<stream>:epoch`.
  std::string stream = "ssepp:events";
  /// Streams mode: each stream is trimmed to about this many entries (XADD MAXLEN ~). It bounds
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
  /// Streams mode: at most this many entries per stream per XREAD, and per stream in the Redis
  /// replay of one client.
  std::size_t read_count = 512;
  std::size_t replay_limit = 10000;
  /// Streams mode: sends from any number of threads share round trips: whichever sending thread
  /// finds the connection free writes up to this many queued XADDs at once and reads their
  /// replies. 1 makes every send its own round trip (one at a time).
  std::size_t send_batch = 256;
  /// Streams mode: at most this many sends wait for a round trip; a send beyond waits for room.
  std::size_t send_queue = 4096;
  /// Called with a line of text on state changes and dropped messages (no logging dependency).
  /// Called from the bus's threads; must not throw.
  std::function<void(std::string_view)> on_log;
};

/// One shard as a bus sees it (`RedisStats::per_shard`, in `RedisOptions::shards` order).
struct RedisShardStats {
  RedisEndpoint endpoint;           ///< where it is
  bool connected = false;           ///< its reader is connected now
  std::size_t streams = 0;          ///< streams of this shard the node reads now
  std::uint64_t appended = 0;       ///< appends this node made on it (one per send touching it)
  std::uint64_t append_errors = 0;  ///< appends refused because it was unreachable
  std::uint64_t received = 0;       ///< entries this node read from it
  std::uint64_t reconnects = 0;     ///< times its reader connected again
};

/// Counters of a bus (each exact, read one after the other).
struct RedisStats {
  bool connected = false;           ///< the reader of every shard is connected now
  std::size_t shards = 0;           ///< shards configured
  std::size_t shards_connected = 0; ///< shards whose reader is connected now
  std::size_t streams = 0;          ///< streams this node reads now (its clients' interests)
  std::uint64_t published = 0;      ///< sends appended to Redis (streams mode)
  std::uint64_t publish_errors = 0; ///< sends refused because Redis was unreachable
  std::uint64_t send_round_trips = 0; ///< batches of sends written (each one round trip)
  std::uint64_t received = 0;       ///< entries / messages this node read from Redis
  std::uint64_t malformed = 0;      ///< entries / messages that could not be read, skipped
  std::uint64_t reconnects = 0;     ///< times the reader connected again after losing Redis
  std::uint64_t redis_replays = 0;  ///< connects replayed from Redis (past the local history)
  /// Streams mode: each shard's state and counters, in `RedisOptions::shards` order (one entry
  /// for `host`:`port` without shards). The Pub/Sub bridge leaves it empty.
  std::vector<RedisShardStats> per_shard;
};

SSEPP_END_NAMESPACE
