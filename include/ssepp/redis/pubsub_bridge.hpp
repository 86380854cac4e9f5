// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// RedisPubSubBridge: delivers the JSON messages other services PUBLISH on a Redis channel.
#pragma once

#include <ssepp/broadcaster.hpp>
#include <ssepp/config.hpp>
#include <ssepp/redis/codec.hpp>
#include <ssepp/redis/connection.hpp>
#include <ssepp/redis/options.hpp>
#include <ssepp/redis/reader.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

SSEPP_BEGIN_NAMESPACE

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

  /// Starts the subscriber thread.
  void start() {
    detail::RedisReader::Steps steps;
    steps.setup = [this](detail::RedisConnection& c, std::string& error) {
      if (!c.command({"SUBSCRIBE", options_.channel}, error)) return false;
      c.set_timeout(std::chrono::milliseconds{0});  // wait for messages indefinitely
      return true;
    };
    steps.read = [this](detail::RedisConnection& c, std::string& error) { return read(c, error); };
    steps.setup_failed = "redis: cannot subscribe to " + options_.channel + ": ";
    steps.connected = "redis: subscribed to " + options_.channel;
    steps.lost = "redis: subscription lost: ";
    steps.read_failed = "redis: subscription read failed: ";
    reader_.start(std::move(steps));
  }

  /// Stops the subscriber thread and waits for it.
  void stop() { reader_.stop(); }

  /// True once subscribed (and until the connection drops).
  bool subscribed() const noexcept { return reader_.connected(); }

  RedisStats stats() const {
    RedisStats s;
    s.connected = reader_.connected();
    s.received = received_.load();
    s.malformed = malformed_.load();
    s.reconnects = reader_.reconnects();
    return s;
  }

 private:
  void log(const std::string& line) const {
    if (options_.on_log) options_.on_log(line);
  }

  // The reader's step: wait for one pushed message and deliver it.
  bool read(detail::RedisConnection& c, std::string& error) {
    auto reply = c.next_reply(error);
    if (!reply) return false;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        detail::reply_text(reply->element[0]) != "message")
      return true;
    ++received_;
    std::string why;
    if (auto m = parse_pubsub_message(detail::reply_text(reply->element[2]), &why)) {
      (void)local_.send(m->target, std::move(m->event));
    } else {
      ++malformed_;
      log("redis: dropped a malformed message: " + why);
    }
    return true;
  }

  Broadcaster<S>& local_;
  RedisOptions options_;
  detail::RedisReader reader_{options_};
  std::atomic<std::uint64_t> received_{0}, malformed_{0};
};

SSEPP_END_NAMESPACE
