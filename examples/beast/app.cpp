// The application's state: the broadcaster (and the Redis bus with --redis), the event streams and
// every stream setting.
#if SSEPP_DEMO_COMPRESS
#include <ssepp/compress.hpp>
#endif
#include "app.hpp"

#include <cstdint>
#include <cstdio>

namespace demo {

App::App(Options opts)
    : opts_(std::move(opts)),
      cors_(ssepp::CorsOptions{opts_.cors_origins, true}),
      hub_([&] {
        ssepp::BroadcasterOptions b;
        b.history_size = opts_.history;
        b.heartbeat = std::chrono::duration_cast<std::chrono::milliseconds>(opts_.heartbeat);
#if SSEPP_DEMO_REDIS
        if (!opts_.redis.empty()) {
          b.id_order = ssepp::shard_position_order;             // ids: positions per shard
          b.first_client_id = ssepp::cluster_client_id_base();  // unique in the cluster
        }
#endif
        return b;
      }()),
      streams_(hub_, serve_options()),
      rng_(std::random_device{}()) {
  for (auto [symbol, price] : {std::pair{"AAPL", 189.5},
                               {"MSFT", 415.2},
                               {"GOOG", 152.8},
                               {"AMZN", 178.3},
                               {"NVDA", 880.1},
                               {"TSLA", 175.6}})
    quotes_.push_back({symbol, price});
  // Defence in depth: the broadcaster refuses a `user:<name>` channel to anyone but <name>.
  hub_.set_authorizer([](const ssepp::ClientInfo& who, std::string_view channel) {
    return may_join(who.user, channel);
  });
#if SSEPP_DEMO_REDIS
  if (!opts_.redis.empty()) {
    ssepp::RedisOptions r;
    r.host = opts_.redis.front().host;
    r.port = opts_.redis.front().port;
    r.shards = opts_.redis;  // one per --redis, in the order given: the same on every node
    r.on_log = [](std::string_view line) {
      std::fprintf(stderr, "ssepp-demo: %.*s\n", static_cast<int>(line.size()), line.data());
    };
    bus_ = std::make_unique<ssepp::RedisStreamBus<ssepp::Mailbox>>(hub_, std::move(r));
    bus_->start();
  }
#endif
}

App::~App() {
#if SSEPP_DEMO_REDIS
  if (bus_) bus_->stop();
#endif
}

ssepp::asio::ServeOptions App::serve_options() {
  ssepp::asio::ServeOptions s;
  s.stream.write_timeout = opts_.write_timeout;
  s.mailbox.max_frames = opts_.queue_frames;
  s.mailbox.max_bytes = opts_.queue_bytes;
  s.mailbox.overflow = ssepp::Overflow::close;
  // A client cut by the bound missed more than the bound: room for its whole replay (at most the
  // history, in frames the history already holds) until the first write.
  s.mailbox.replay_frames = opts_.history;
  s.mailbox.replay_bytes = SIZE_MAX;
  s.preamble.retry = opts_.retry;
  s.cors = ssepp::CorsOptions{opts_.cors_origins, true};
  s.max_last_event_id = ssepp::default_max_last_event_id;  // admit() checks it first, in JSON
#if SSEPP_DEMO_COMPRESS
  if (opts_.compress) s.compression = ssepp::compression();
#endif
#if SSEPP_DEMO_REDIS
  // Through the bus, a Last-Event-ID older than this node's history is replayed from Redis.
  s.connect = [this](const ssepp::Mailbox& mailbox, ssepp::ConnectOptions who) {
    return bus_ ? bus_->connect(mailbox, std::move(who)) : hub_.connect(mailbox, std::move(who));
  };
#endif
  // The stream is gone (its client already left the broadcaster): forget its owner.
  s.on_end = [this](ssepp::ClientId id, ssepp::asio::EndReason, std::error_code) {
    std::lock_guard<std::mutex> lock(mutex_);
    owners_.erase(id);
  };
  return s;
}

std::size_t App::connections_open() const {
  return static_cast<std::size_t>(counters_.http_open.load(std::memory_order_relaxed)) +
         streams_.size();
}

ssepp::SendResult App::send(const ssepp::Target& target, ssepp::Event ev) {
#if SSEPP_DEMO_REDIS
  if (bus_) return bus_->send(target, std::move(ev));
#endif
  return hub_.send(target, std::move(ev));
}

void App::tick(Clock::time_point now) {
  hub_.tick(now);
  run_feed(now);
  run_jobs(now);
}

}  // namespace demo
