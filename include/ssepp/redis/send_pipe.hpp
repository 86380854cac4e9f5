// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// Pipelined commands from many threads over one Redis connection.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/redis/connection.hpp>
#include <ssepp/redis/options.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE
namespace detail {

/// One connection shared by any number of sending threads, many commands per round trip.
///
/// A caller queues its command (waiting for room past `send_queue` queued) and waits for its
/// reply. Whichever waiting caller finds the connection free becomes the writer: it takes up to
/// `send_batch` queued commands, appends them all, reads their replies in order, hands each to
/// its caller, and frees the connection; the next waiting caller then writes the next batch. The
/// writer holds no lock during the round trip and calls nothing out, so a caller never waits
/// for anything but Redis (or its timeout): a send from a sink or hook cannot deadlock.
class SendPipe {
 public:
  /// The reply to one command: a string reply's text, or the reason it failed (`why` is empty
  /// when another command of the same batch already said it).
  struct Outcome {
    bool ok = false;
    std::string text;
    std::string why;
  };

  /// `options` must outlive the pipe.
  explicit SendPipe(const RedisOptions& options) : options_(options) {}

  /// Sends one command (views valid until it returns) and returns its reply.
  Outcome send(const std::vector<std::string_view>& args) {
    Request req{&args, {}, false};
    std::unique_lock<std::mutex> lock(m_);
    const std::size_t room = std::max<std::size_t>(1, options_.send_queue);
    cv_.wait(lock, [&] { return queue_.size() < room; });
    queue_.push_back(&req);
    while (!req.done) {
      if (busy_) {
        cv_.wait(lock, [&] { return req.done || !busy_; });
        continue;
      }
      // The connection is free: write the oldest queued commands, this one among them or not.
      const std::size_t n = std::min(queue_.size(), std::max<std::size_t>(1, options_.send_batch));
      batch_.assign(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
      busy_ = true;
      cv_.notify_all();  // room in the queue
      lock.unlock();
      write(batch_);
      lock.lock();
      for (Request* r : batch_) r->done = true;
      batch_.clear();
      busy_ = false;
      cv_.notify_all();
    }
    return std::move(req.outcome);
  }

  /// Runs `f(connection, error)` with the connection to itself (connected, or nullopt-like
  /// false returned with `error`), between two batches. For commands whose reply is not a plain
  /// string (XRANGE). `f` must only talk to Redis.
  template <class F>
  bool exclusive(F&& f, std::string& error) {
    {
      std::unique_lock<std::mutex> lock(m_);
      cv_.wait(lock, [&] { return !busy_; });
      busy_ = true;
    }
    bool ok = (conn_.connected() || conn_.connect(options_, error)) && f(conn_, error);
    {
      std::lock_guard<std::mutex> lock(m_);
      busy_ = false;
    }
    cv_.notify_all();
    return ok;
  }

 private:
  struct Request {
    const std::vector<std::string_view>* args;
    Outcome outcome;
    bool done;
  };

  // The writer's round trip: connect if needed (at most one attempt per retry_min), append
  // every command, read every reply. Runs with busy_ set and m_ released.
  void write(const std::vector<Request*>& batch) {
    SigpipeGuard no_sigpipe;
    std::string error;
    if (!conn_.connected()) {
      auto now = std::chrono::steady_clock::now();
      if (now < retry_at_ || !conn_.connect(options_, error)) {
        std::string why;
        if (!error.empty()) {  // a real attempt: say why, once
          retry_at_ = now + options_.retry_min;
          why = "redis: send: cannot connect to " + options_.host + ":" +
                std::to_string(options_.port) + ": " + error;
        }
        fail(batch, 0, std::move(why));
        return;
      }
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (!conn_.append_argv(*batch[i]->args, error)) {
        fail(batch, 0, "redis: send failed: " + error);
        return;
      }
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      Outcome& out = batch[i]->outcome;
      auto reply = conn_.next_reply(error);
      if (reply && reply->type == REDIS_REPLY_STRING) {
        out.ok = true;
        out.text = std::string(reply_text(reply.get()));
        continue;
      }
      if (!conn_.connected()) {  // the rest of the replies are lost with the connection
        fail(batch, i, "redis: send failed: " + error);
        return;
      }
      out.why = "redis: send failed: " + (reply ? std::string("unexpected reply") : error);
    }
  }

  static void fail(const std::vector<Request*>& batch, std::size_t from, std::string why) {
    for (std::size_t i = from; i < batch.size(); ++i) {
      batch[i]->outcome.ok = false;
      batch[i]->outcome.why = i == from ? why : std::string();
    }
  }

  const RedisOptions& options_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Request*> queue_;   // guarded by m_
  bool busy_ = false;            // guarded by m_: a writer (or `exclusive`) has the connection
  std::vector<Request*> batch_;  // the writer's batch (m_ to change, the writer's alone between)
  // The writer's alone (busy_ set):
  RedisConnection conn_;
  std::chrono::steady_clock::time_point retry_at_{};
};

}  // namespace detail
SSEPP_END_NAMESPACE
