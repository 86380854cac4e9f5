// GET /metrics: the broadcaster's, the streams' and the HTTP layer's counters, in Prometheus text.
#include "api.hpp"

#include <fmt/format.h>

namespace demo {

Response App::metrics() {
  Response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  // Prometheus text format, built in one stack-first buffer (17 significant digits: every
  // counter below 2^53 prints as the integer it is).
  fmt::memory_buffer out;
  auto metric = [&](std::string_view name, std::string_view type, std::string_view help,
                    double value) {
    fmt::format_to(fmt::appender(out), "# HELP {0} {2}\n# TYPE {0} {1}\n{0} {3:.17g}\n", name, type,
                   help, value);
  };
  auto num = [](auto v) { return static_cast<double>(v); };
  const auto st = hub_.stats();
  metric("ssepp_clients", "gauge", "Connected stream clients.", num(st.clients));
  metric("ssepp_pools", "gauge", "Pools with members (user pools included).", num(st.pools));
  metric("ssepp_channels", "gauge", "Channels with members.", num(st.channels));
  metric("ssepp_history_events", "gauge", "Events kept for Last-Event-ID replay.",
         num(st.history));
  metric("ssepp_connects_total", "counter", "Clients connected.", num(st.connects));
  metric("ssepp_disconnects_total", "counter", "Clients removed, for any reason.",
         num(st.disconnects));
  metric("ssepp_drops_total", "counter", "Clients removed because their sink failed (queue full).",
         num(st.drops));
  metric("ssepp_sends_total", "counter", "Events sent (each once, whatever its audience).",
         num(st.sends));
  metric("ssepp_frames_total", "counter", "Frames handed to clients.", num(st.frames));
  metric("ssepp_bytes_total", "counter", "Bytes of those frames.", num(st.bytes));
  metric("ssepp_heartbeats_total", "counter", "Heartbeat frames sent.", num(st.heartbeats));
  metric("ssepp_replays_total", "counter", "Reconnections whose Last-Event-ID was found.",
         num(st.replays));
  metric("ssepp_replayed_frames_total", "counter", "Events replayed to reconnecting clients.",
         num(st.replayed_frames));
  metric("ssepp_replay_misses_total", "counter",
         "Reconnections whose Last-Event-ID was unknown or too old.", num(st.replay_misses));
  // The demo refuses someone else's user: channel itself (403) before the broadcaster's
  // authoriser would: both count.
  metric("ssepp_refused_joins_total", "counter",
         "Channel joins refused (a user: channel that is not the caller's).",
         num(st.refused_joins + refused_joins_.load(std::memory_order_relaxed)));
#if SSEPP_DEMO_REDIS
  if (bus_) {
    // ssepp_bus_*: what this node did through the bus; ssepp_redis_*: its Redis connections.
    const auto rs = bus_->stats();
    metric("ssepp_bus_published_total", "counter",
           "Sends appended to Redis by this node (one per send, whatever its shards).",
           num(rs.published));
    metric("ssepp_bus_publish_errors_total", "counter",
           "Sends refused: a shard they needed was unreachable.", num(rs.publish_errors));
    metric("ssepp_bus_received_total", "counter",
           "Entries this node read from Redis (its clients' interests only).", num(rs.received));
    metric("ssepp_bus_streams", "gauge", "Redis streams this node reads now.", num(rs.streams));
    metric("ssepp_redis_connected", "gauge", "1 while the reader of every shard is connected.",
           rs.connected ? 1 : 0);
    metric("ssepp_redis_shards", "gauge", "Redis shards configured (--redis given).",
           num(rs.shards));
    metric("ssepp_redis_shards_connected", "gauge", "Shards whose reader is connected now.",
           num(rs.shards_connected));
    metric("ssepp_redis_reconnects_total", "counter", "Reconnections of the Redis readers.",
           num(rs.reconnects));
    metric("ssepp_redis_replays_total", "counter", "Resumptions replayed from Redis.",
           num(rs.redis_replays));
    // Per shard, labelled by its place in the --redis list and its endpoint.
    auto per_shard = [&](std::string_view name, std::string_view type, std::string_view help,
                         auto value) {
      fmt::format_to(fmt::appender(out), "# HELP {0} {2}\n# TYPE {0} {1}\n", name, type, help);
      for (std::size_t i = 0; i < rs.per_shard.size(); ++i) {
        const auto& sh = rs.per_shard[i];
        fmt::format_to(fmt::appender(out), "{}{{shard=\"{}\",endpoint=\"{}:{}\"}} {:.17g}\n", name,
                       i, sh.endpoint.host, sh.endpoint.port, value(sh));
      }
    };
    per_shard("ssepp_redis_shard_connected", "gauge", "1 while this shard's reader is connected.",
              [](const ssepp::RedisShardStats& sh) { return sh.connected ? 1.0 : 0.0; });
    per_shard("ssepp_redis_shard_streams", "gauge", "Streams of this shard this node reads now.",
              [&](const ssepp::RedisShardStats& sh) { return num(sh.streams); });
    per_shard("ssepp_redis_shard_appended_total", "counter",
              "Appends this node made on this shard.",
              [&](const ssepp::RedisShardStats& sh) { return num(sh.appended); });
    per_shard("ssepp_redis_shard_append_errors_total", "counter",
              "Appends refused: this shard was unreachable.",
              [&](const ssepp::RedisShardStats& sh) { return num(sh.append_errors); });
    per_shard("ssepp_redis_shard_received_total", "counter", "Entries this node read from this shard.",
              [&](const ssepp::RedisShardStats& sh) { return num(sh.received); });
    per_shard("ssepp_redis_shard_reconnects_total", "counter",
              "Reconnections of this shard's reader.",
              [&](const ssepp::RedisShardStats& sh) { return num(sh.reconnects); });
  }
#endif
  const auto ss = streams_.stats();
  auto ended = [&](ssepp::asio::EndReason reason) {
    return ss.ended[static_cast<std::size_t>(reason)];
  };
  auto& c = counters_;
  auto load = [](const std::atomic<std::uint64_t>& a) { return static_cast<double>(a.load()); };
  metric("ssepp_demo_connections_open", "gauge", "TCP connections open (HTTP and streams).",
         num(connections_open()));
  metric("ssepp_demo_connections_accepted_total", "counter", "TCP connections accepted.",
         load(c.connections_accepted));
  metric("ssepp_demo_connections_refused_total", "counter", "TCP connections refused (limit).",
         load(c.connections_refused));
  metric("ssepp_demo_requests_total", "counter", "HTTP requests handled.", load(c.requests));
  metric("ssepp_demo_bad_requests_total", "counter", "Requests answered with 4xx.",
         load(c.bad_requests));
  metric("ssepp_demo_streams_open", "gauge", "Event streams open.", num(ss.open));
  metric("ssepp_demo_streams_cut_total", "counter",
         "Streams cut (queue overflow, write timeout, or an end that did not drain).",
         num(ended(ssepp::asio::EndReason::overflow) +
             ended(ssepp::asio::EndReason::write_timeout) +
             ended(ssepp::asio::EndReason::end_timeout)));
  fmt::format_to(fmt::appender(out),
                 "# HELP ssepp_demo_streams_ended_total Streams ended, by reason.\n"
                 "# TYPE ssepp_demo_streams_ended_total counter\n");
  for (std::size_t i = 0; i < ssepp::asio::end_reason_count; ++i)
    fmt::format_to(fmt::appender(out), "ssepp_demo_streams_ended_total{{reason=\"{}\"}} {}\n",
                   ssepp::asio::to_string(static_cast<ssepp::asio::EndReason>(i)), ss.ended[i]);
  metric("ssepp_demo_writes_total", "counter", "Socket writes carrying stream bytes.",
         num(ss.writes));
  metric("ssepp_demo_frames_written_total", "counter", "Stream frames written to sockets.",
         num(ss.frames));
  metric("ssepp_demo_streams_compressed_total", "counter", "Streams sent compressed.",
         num(ss.compressed));
  metric("ssepp_demo_uncompressed_bytes_total", "counter",
         "Bytes of compressed streams before compression.", num(ss.uncompressed_bytes));
  metric("ssepp_demo_compressed_bytes_total", "counter",
         "Bytes of compressed streams after compression.", num(ss.compressed_bytes));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    metric("ssepp_demo_sessions", "gauge", "Login sessions.", num(sessions_.size()));
    metric("ssepp_demo_jobs_running", "gauge", "Simulated jobs running.", num(jobs_.size()));
  }
  r.body = fmt::to_string(out);
  return r;
}

}  // namespace demo
