// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// The broadcaster's delivery discipline: one lock orders every delivery; calls made from inside a
// delivery (by a sink or hook) are queued behind it; removed clients are closed only when no
// delivery can still be using them. Plus the small helpers the fan-out loop uses.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/detail/prefetch.hpp>
#include <ssepp/encoder.hpp>
#include <ssepp/sink.hpp>

#include <atomic>
#include <cstddef>
#include <deque>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE
namespace detail {

/// Calls `s.send(std::move(f))`: a sink taking frames by value or by `Frame&&` (like `Mailbox`)
/// keeps `f` itself, with no reference count change; one taking `const Frame&` leaves `f` as it
/// was. `f` is taken by lvalue reference because the caller looks at it afterwards (was it
/// kept?). A throwing sink counts as a failed one.
template <class S>
bool sink_send_share(S& s, Frame& f) noexcept {
#if SSEPP_HAS_EXCEPTIONS
  try {
    return static_cast<bool>(s.send(std::move(f)));
  } catch (...) {
    return false;
  }
#else
  return static_cast<bool>(s.send(std::move(f)));
#endif
}

/// Marks, for the current thread, "I hold the delivery lock of broadcaster `owner`". Marks nest
/// (a sink of broadcaster A may call broadcaster B), so they form a per-thread stack. A
/// broadcaster asks `held(this)` to tell a re-entrant call from a sink (which must not lock
/// again) from a call on another thread.
class DeliveryMark {
 public:
  explicit DeliveryMark(const void* owner) noexcept : owner_(owner), prev_(top()) { top() = this; }
  ~DeliveryMark() { top() = prev_; }
  DeliveryMark(const DeliveryMark&) = delete;
  DeliveryMark& operator=(const DeliveryMark&) = delete;

  /// True when the current thread holds `owner`'s delivery lock.
  static bool held(const void* owner) noexcept {
    for (const DeliveryMark* m = top(); m != nullptr; m = m->prev_)
      if (m->owner_ == owner) return true;
    return false;
  }

 private:
  static DeliveryMark*& top() noexcept {
    static thread_local DeliveryMark* current = nullptr;
    return current;
  }

  const void* owner_;
  DeliveryMark* prev_;
};

/// Ordered delivery for one broadcaster. Whoever delivers (sends, ticks, replays) holds the order
/// lock, so every client sees deliveries in one order. A sink or hook runs with the lock held and
/// may call back in: its sends and ticks are `defer`red and run right after the current delivery,
/// in order. A client removed while a delivery may still be using its sink is `retire`d: the
/// lock holder closes it when it finishes, so no sink is closed under a running `send`, and a
/// remover never waits for a delivery.
///
/// `Job` is what a deferred call needs; `Node` a removed client. The owner's handler `h` offers
/// `h.run(Job&)` (run a deferred job, lock held) and `h.close(Node&)` (close a removed client's
/// sink, lock held). The owner's registry lock, if any, is taken inside the lock, never around it.
template <class Job, class Node>
class DeliveryOrder {
 public:
  DeliveryOrder() = default;
  DeliveryOrder(const DeliveryOrder&) = delete;
  DeliveryOrder& operator=(const DeliveryOrder&) = delete;

  /// True when the current thread holds the lock: it is inside a delivery (a sink or hook).
  bool held() const noexcept { return DeliveryMark::held(this); }

  /// Runs `f` holding the lock (inline when this thread already holds it), then the jobs
  /// deferred meanwhile and the removed clients, until neither is left.
  template <class F, class H>
  void run(F&& f, H&& h) {
    if (held()) {
      f();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      DeliveryMark mark(this);
      f();
      drain(h);
    }
    reclaim(h);
  }

  /// Queues a job to run right after the current delivery. Only while `held()`.
  void defer(Job job) { pending_.push_back(std::move(job)); }

  /// Hands removed clients to the lock holder (it closes them when it finishes).
  void retire(std::vector<Node>&& nodes) {
    if (nodes.empty()) return;
    std::lock_guard<std::mutex> lock(retired_mutex_);
    for (Node& n : nodes) retired_.push_back(std::move(n));
    retired_pending_.store(true, std::memory_order_release);
  }

  /// Closes removed clients now when no delivery is running, else retires them. Never waits.
  template <class H>
  void release(std::vector<Node>&& nodes, H&& h) {
    if (!held() && mutex_.try_lock()) {
      {
        std::lock_guard<std::mutex> lock(mutex_, std::adopt_lock);
        DeliveryMark mark(this);
        for (Node& n : nodes) h.close(n);
        nodes.clear();
        drain(h);
      }
      reclaim(h);
      return;
    }
    // A delivery is running (maybe on this thread, from a sink): it may still be using these
    // sinks, so it closes and frees them when it ends.
    retire(std::move(nodes));
    if (!held()) reclaim(h);
  }

  /// For the owner's destructor: holding the lock, runs `f` (which returns the clients still
  /// registered) and closes those and the retired ones. Jobs deferred by closing sinks are dropped.
  template <class F, class H>
  void run_last(F&& f, H&& h) {
    std::lock_guard<std::mutex> lock(mutex_);
    DeliveryMark mark(this);
    std::vector<Node> nodes = f();
    std::vector<Node> retired;
    {
      std::lock_guard<std::mutex> r(retired_mutex_);
      retired.swap(retired_);
    }
    for (Node& n : retired) h.close(n);
    for (Node& n : nodes) h.close(n);
    pending_.clear();
  }

 private:
  /// Deferred jobs, then retired clients, until neither is left. Lock held.
  template <class H>
  void drain(H& h) {
    for (;;) {
      if (!pending_.empty()) {
        Job job = std::move(pending_.front());
        pending_.pop_front();
        h.run(job);
        continue;
      }
      std::vector<Node> dead;
      {
        std::lock_guard<std::mutex> lock(retired_mutex_);
        dead.swap(retired_);
        retired_pending_.store(false, std::memory_order_relaxed);
      }
      if (dead.empty()) return;
      for (Node& n : dead) h.close(n);
    }
  }

  /// Frees clients retired while another thread was delivering and has since finished: the
  /// retirer sets the flag before trying the lock, the holder checks it after letting go.
  template <class H>
  void reclaim(H& h) {
    while (retired_pending_.load(std::memory_order_acquire) && mutex_.try_lock()) {
      std::lock_guard<std::mutex> lock(mutex_, std::adopt_lock);
      DeliveryMark mark(this);
      drain(h);
    }
  }

  std::mutex mutex_;            // the order lock
  std::deque<Job> pending_;     // lock holder only
  std::mutex retired_mutex_;    // guards retired_
  std::vector<Node> retired_;
  std::atomic<bool> retired_pending_{false};
};

}  // namespace detail
SSEPP_END_NAMESPACE
