// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// Pipelined commands from many threads over one Redis connection.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/redis/connection.hpp>
#include <ssepp/redis/options.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
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
    std::vector<const std::vector<std::string_view>*> one{&args};
    return std::move(send_all(one).front());
  }

  /// Sends several commands (views valid until it returns), queued together so that they share
  /// round trips, and returns their replies in order.
  std::vector<Outcome> send_all(const std::vector<const std::vector<std::string_view>*>& commands) {
    Waiter me;
    std::deque<Request> reqs;
    for (const auto* args : commands) reqs.emplace_back(args, &me);
    const std::size_t chunk = std::max<std::size_t>(1, options_.send_batch);
    for (std::size_t i = 0; i < reqs.size(); i += chunk) {
      const std::size_t n = std::min(chunk, reqs.size() - i);
      send_chunk(me, reqs, i, n);
    }
    std::vector<Outcome> out;
    out.reserve(reqs.size());
    for (auto& r : reqs) out.push_back(std::move(r.outcome));
    return out;
  }

  /// Batches of sends written so far (each one round trip).
  std::uint64_t round_trips() const noexcept { return round_trips_.load(); }

  /// Runs `f(connection, error)` (a bool) with the connection to itself, after connecting if
  /// needed; false when connecting or `f` failed (`error` says why). For commands whose reply
  /// is not a plain string (XRANGE). `f` must only talk to Redis. It goes after the batch being
  /// written, before callers waiting to write.
  template <class F>
  bool exclusive(F&& f, std::string& error) {
    {
      std::unique_lock<std::mutex> lock(m_);
      ++exclusive_waiters_;
      exclusive_cv_.wait(lock, [&] { return !busy_; });
      --exclusive_waiters_;
      busy_ = true;
    }
    bool ok = (conn_.connected() || conn_.connect(options_, error)) && f(conn_, error);
    std::lock_guard<std::mutex> lock(m_);
    busy_ = false;
    hand_off();
    return ok;
  }

 private:
  // A caller waiting for its commands' replies.
  struct Waiter {
    std::condition_variable cv;
  };

  struct Request {
    Request(const std::vector<std::string_view>* a, Waiter* w) : args(a), waiter(w) {}
    const std::vector<std::string_view>* args;
    Waiter* waiter;
    Outcome outcome;
    bool done = false;  // guarded by m_
  };

  // Queues reqs[first, first + n) (waiting for room first) and waits for their replies, or to be
  // the owner of the oldest queued command while the connection is free: then this caller
  // writes. A writer goes on with the next batch while commands are queued (a handoff costs a
  // wake-up), for at most `max_rounds` batches.
  void send_chunk(Waiter& me, std::deque<Request>& reqs, std::size_t first, std::size_t n) {
    std::unique_lock<std::mutex> lock(m_);
    const std::size_t room = std::max<std::size_t>(1, options_.send_queue);
    if (!queue_.empty() && queue_.size() + n > room) {
      ++room_waiters_;
      room_cv_.wait(lock, [&] { return queue_.empty() || queue_.size() + n <= room; });
      --room_waiters_;
    }
    for (std::size_t k = first; k < first + n; ++k) queue_.push_back(&reqs[k]);
    // Batches are taken oldest first, so the chunk is done when its last command is.
    const Request& last = reqs[first + n - 1];
    constexpr int max_rounds = 8;
    for (int rounds = 0; rounds < max_rounds; ++rounds) {
      if (!last.done) {
        me.cv.wait(lock, [&] {
          return last.done || (!busy_ && exclusive_waiters_ == 0 && !queue_.empty() &&
                               queue_.front()->waiter == &me);
        });
      }
      if (last.done && (rounds == 0 || queue_.empty() || exclusive_waiters_ > 0)) break;
      const std::size_t take =
          std::min(queue_.size(), std::max<std::size_t>(1, options_.send_batch));
      std::vector<Request*> batch(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(take));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(take));
      busy_ = true;
      if (room_waiters_ > 0) room_cv_.notify_all();
      ++round_trips_;
      lock.unlock();
      write(batch);
      lock.lock();
      busy_ = false;
      // Each caller is told under the lock: once it sees `done` its Request may be gone.
      for (Request* r : batch) {
        r->done = true;
        if (r->waiter != &me) r->waiter->cv.notify_one();
      }
    }
    hand_off();
  }

  // With m_ held and the connection free: wake whoever is to use it next.
  void hand_off() {
    if (busy_) return;
    if (exclusive_waiters_ > 0) {
      exclusive_cv_.notify_one();
    } else if (!queue_.empty()) {
      queue_.front()->waiter->cv.notify_one();
    }
  }

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
        fail(batch, 0, why);
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

  static void fail(const std::vector<Request*>& batch, std::size_t from, const std::string& why) {
    for (std::size_t i = from; i < batch.size(); ++i) {
      batch[i]->outcome.ok = false;
      batch[i]->outcome.why = i == from ? why : std::string();
    }
  }

  const RedisOptions& options_;
  std::mutex m_;
  std::condition_variable room_cv_;       // callers waiting for room in the queue
  std::condition_variable exclusive_cv_;  // `exclusive` callers waiting for the connection
  // Guarded by m_:
  std::deque<Request*> queue_;
  bool busy_ = false;  // a writer (or `exclusive`) has the connection
  std::size_t room_waiters_ = 0;
  std::size_t exclusive_waiters_ = 0;
  std::atomic<std::uint64_t> round_trips_{0};
  // The writer's alone (busy_ set):
  RedisConnection conn_;
  std::chrono::steady_clock::time_point retry_at_{};
};

}  // namespace detail
SSEPP_END_NAMESPACE
