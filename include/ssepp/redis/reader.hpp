// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// The one reader loop of the Redis bus and the Pub/Sub bridge: a thread that connects, prepares
// the connection, then reads, and reconnects with backoff while Redis stays away.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/redis/connection.hpp>
#include <ssepp/redis/options.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

SSEPP_BEGIN_NAMESPACE
namespace detail {

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

/// A reader thread on its own connection. After each connect it runs `setup` (e.g. SUBSCRIBE,
/// or finding where a stream starts), then `read` in a loop (one blocking read and the handling
/// of what it got). A lost connection, a failed setup or a failed read backs off (doubling from
/// retry_min to retry_max) and tries again; `stop()` wakes it from any wait or read.
class RedisReader {
 public:
  struct Steps {
    /// After each connect: false with the reason in `error` (the connection is closed then).
    std::function<bool(RedisConnection&, std::string& error)> setup;
    /// One read: false with the reason in `error` when the read failed.
    std::function<bool(RedisConnection&, std::string& error)> read;
    std::string setup_failed;  ///< log prefix of a failed setup
    std::string connected;     ///< log line once connected and set up
    std::string lost;          ///< log prefix of a lost connection
    std::string read_failed;   ///< log prefix of an error reply to a read
  };

  /// `options` must outlive the reader.
  explicit RedisReader(const RedisOptions& options) : options_(options) {}
  RedisReader(const RedisReader&) = delete;
  RedisReader& operator=(const RedisReader&) = delete;
  ~RedisReader() { stop(); }

  /// Starts the thread (nothing when it runs).
  void start(Steps steps) {
    if (thread_.joinable()) return;
    steps_ = std::move(steps);
    stopper_.reset();
    thread_ = std::thread([this] { loop(); });
  }

  /// Stops the thread and waits for it. Not from the thread itself.
  void stop() {
    stopper_.stop();
    conn_.interrupt();
    if (thread_.joinable()) thread_.join();
  }

  /// Connected and set up now.
  bool connected() const noexcept { return connected_.load(); }
  /// Times it connected again after losing Redis.
  std::uint64_t reconnects() const noexcept { return reconnects_.load(); }

 private:
  void log(const std::string& line) const {
    if (options_.on_log) options_.on_log(line);
  }

  void loop() {
    std::chrono::milliseconds backoff{0};
    bool ever_connected = false;
    std::string error;
    while (!stopper_.stopped()) {
      if (!conn_.connected()) {
        connected_ = false;
        if (backoff.count() > 0 && stopper_.wait(backoff)) break;
        error.clear();
        if (!conn_.connect(options_, error)) {
          log("redis: cannot connect to " + options_.host + ":" + std::to_string(options_.port) +
              ": " + error);
          backoff = next_backoff(backoff, options_);
          continue;
        }
        // A stop() that came while this connected found no socket to shut down: see it now,
        // before blocking (a later stop() finds the socket).
        if (stopper_.stopped()) break;
        if (!steps_.setup(conn_, error)) {
          log(steps_.setup_failed + error);
          conn_.close();
          backoff = next_backoff(backoff, options_);
          continue;
        }
        if (ever_connected) ++reconnects_;
        ever_connected = true;
        backoff = std::chrono::milliseconds{0};
        connected_ = true;
        log(steps_.connected);
      }
      error.clear();
      if (steps_.read(conn_, error)) {
        backoff = std::chrono::milliseconds{0};
        continue;
      }
      backoff = next_backoff(backoff, options_);
      if (!conn_.connected()) {
        connected_ = false;
        if (!stopper_.stopped()) log(steps_.lost + error);
      } else {  // an error reply (e.g. the server's ACL changed): back off as for a loss
        log(steps_.read_failed + error);
        if (stopper_.wait(backoff)) break;
      }
    }
    conn_.close();
    connected_ = false;
  }

  const RedisOptions& options_;
  Steps steps_;
  std::thread thread_;
  Stopper stopper_;
  RedisConnection conn_;
  std::atomic<bool> connected_{false};
  std::atomic<std::uint64_t> reconnects_{0};
};

}  // namespace detail
SSEPP_END_NAMESPACE
