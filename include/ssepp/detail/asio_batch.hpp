// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
// Internals of ssepp::asio: the flush queue that gathers the event streams woken on one
// execution context and flushes them once the handlers that may send them more have run.
#pragma once

#include <ssepp/config.hpp>

#include <boost/asio/execution_context.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE
namespace detail {

/// What the flush queue does with a stream, whatever its next layer.
struct FlushOps {
  /// Runs the stream's flush on its own executor (inline when already there).
  void (*flush)(void* stream);
  /// Frames the stream's mailbox ever accepted (grows while sends arrive).
  std::uint64_t (*frames_arrived)(const void* stream);
};

/// A queued stream: kept alive until flushed.
struct FlushTarget {
  std::shared_ptr<void> stream;
  const FlushOps* ops = nullptr;
};

/// One per execution context (an Asio service). Streams whose mailbox woke up are queued here and
/// one handler (the turn) is posted for all of them. It works in two phases:
/// - *Gather.* The turn yields (posts itself again) as long as frames keep arriving between its
///   turns: a publish that reaches many streams wakes them all, and more publishes may be waiting
///   behind it in the context's queue (pipelined requests, a burst of handlers, each step of a
///   request posted one after the other). It stops after `quiet_turns` turns without a new frame,
///   or once it has held the first stream back as long as the last write phase took (at least
///   `window`), so the gathering never outweighs the writing.
/// - *Write.* The gathered streams are flushed in order, `chunk` at a time, yielding between
///   chunks: publishes that arrive meanwhile are handled at once and reach the streams not yet
///   written in this phase; the streams already written are woken again and gathered for the next
///   phase. Under load the phases become a round-robin in which each stream is written once per
///   round, with everything that arrived since its last write: an event waits at most about one
///   round, and each write carries every event of that round.
/// A lone event waits a few passes through the ready handlers.
class FlushQueue : public ::boost::asio::execution_context::service {
  using Clock = std::chrono::steady_clock;
  using Targets = std::vector<FlushTarget>;

 public:
  static inline ::boost::asio::execution_context::id id;

  /// The shortest gathering limit; the last write phase's length when that is longer.
  static constexpr std::chrono::microseconds window{1000};
  /// Turns without a new frame before the write phase: a request's next step (write the
  /// response, read the next header, read its body) is a handler of its own, queued behind a turn.
  static constexpr unsigned quiet_turns = 4;
  /// Streams looked at, per gathering turn, for frames that arrived without waking anyone.
  static constexpr std::size_t sampled = 8;
  /// Streams flushed per turn of the write phase.
  static constexpr std::size_t chunk = 128;

  explicit FlushQueue(::boost::asio::execution_context& ctx)
      : ::boost::asio::execution_context::service(ctx) {}

  /// Queues `target` (from any thread); the first stream queued while no turn is pending posts
  /// one to `ex` (its own executor).
  template <class Executor>
  void add(FlushTarget target, const Executor& ex) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopped_) return;
      pending_.push_back(std::move(target));
      ++wakes_;
      if (posted_) return;
      posted_ = true;
      start_gathering();
    }
    post_turn(ex);
  }

 private:
  void shutdown() override {
    Targets drop, drop_too;
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;
    drop.swap(pending_);
    drop_too.swap(writing_);
  }

  void start_gathering() {
    turns_ = 0;
    quiet_ = 0;
    frames_seen_ = 0;
    first_ = Clock::now();
  }

  template <class Executor>
  void post_turn(const Executor& ex) {
    ::boost::asio::post(ex, [this, ex] { turn(ex); });
  }

  /// Gathering: true while the turn should yield once more (mutex held).
  bool keep_gathering() {
    std::uint64_t frames = 0;
    const std::size_t n = pending_.size() < sampled ? pending_.size() : sampled;
    for (std::size_t i = 0; i < n; ++i)
      frames += pending_[i].ops->frames_arrived(pending_[i].stream.get());
    if (wakes_ != wakes_seen_ || frames != frames_seen_) quiet_ = 0;
    wakes_seen_ = wakes_;
    frames_seen_ = frames;
    const Clock::duration limit = last_phase_ > window ? last_phase_ : Clock::duration(window);
    return ++quiet_ <= quiet_turns && ++turns_ < max_turns && Clock::now() - first_ < limit;
  }

  template <class Executor>
  void turn(const Executor& ex) {
    FlushTarget batch[chunk];
    std::size_t n = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopped_) return;
      if (next_ == writing_.size()) {  // gathering
        if (keep_gathering()) return post_turn(ex);
        writing_.clear();
        writing_.swap(pending_);
        next_ = 0;
        phase_start_ = Clock::now();
      }
      for (; n < chunk && next_ < writing_.size(); ++n) batch[n] = std::move(writing_[next_++]);
    }
    for (std::size_t i = 0; i < n; ++i) {
      batch[i].ops->flush(batch[i].stream.get());
      batch[i].stream.reset();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopped_) return;
      if (next_ == writing_.size()) {  // the phase is over
        last_phase_ = Clock::now() - phase_start_;
        if (pending_.empty()) {
          posted_ = false;
          return;
        }
        start_gathering();  // streams woken meanwhile: the next round
      }
    }
    post_turn(ex);
  }

  static constexpr unsigned max_turns = 4096;

  std::mutex mutex_;
  Targets pending_;                // woken, gathered for the next write phase
  Targets writing_;                // the write phase's streams; [next_, size) still to flush
  std::size_t next_ = 0;
  std::uint64_t wakes_ = 0;
  std::uint64_t wakes_seen_ = 0;
  std::uint64_t frames_seen_ = 0;
  Clock::time_point first_{};        // the gathering began
  Clock::time_point phase_start_{};  // the write phase began
  Clock::duration last_phase_{};     // how long the last write phase took
  unsigned turns_ = 0;
  unsigned quiet_ = 0;  // gathering turns in a row that saw no new frame
  bool posted_ = false;
  bool stopped_ = false;
};

}  // namespace detail
SSEPP_END_NAMESPACE
