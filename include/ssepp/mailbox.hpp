// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/detail/broadcaster_delivery.hpp>
#include <ssepp/detail/sync.hpp>
#include <ssepp/encoder.hpp>
#include <ssepp/sink.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE

/// What a full `Mailbox` does with a new frame.
enum class Overflow {
  /// Close the mailbox: `send` returns false, the broadcaster drops the client, the client
  /// reconnects with its Last-Event-ID and replays what it missed. Nothing is lost silently.
  close,
  /// Drop the oldest queued frames until the new one fits, and count them. The client stays
  /// connected and misses those frames.
  drop_oldest,
};

/// Bounds and overflow policy of a `Mailbox`. A bound of 0 means no bound of its own on that
/// dimension; a mailbox never holds more than 2^32 - 1 frames or 4 GiB - 1 bytes (larger bounds
/// are capped there).
struct MailboxOptions {
  std::size_t max_frames = 1024;         ///< frames queued at most
  std::size_t max_bytes = 4u << 20;      ///< bytes queued at most (sum of frame sizes)
  Overflow overflow = Overflow::close;   ///< what happens when a frame does not fit
  /// Room on top of `max_frames` and `max_bytes` until frames are first taken (`pop`,
  /// `try_pop`, `take_all`): for the replay a `Broadcaster` writes at connect, before the writer
  /// runs. A client cut by `Overflow::close` missed more than the bounds hold, so without this
  /// room its replay never fits and it cannot resume. Replayed frames are shared with the
  /// history: the room costs a pointer per frame. 0: no room.
  std::size_t replay_frames = 0;
  std::size_t replay_bytes = 0;  ///< see `replay_frames`
};

/// A snapshot of a mailbox's counters.
struct MailboxStats {
  std::size_t queued_frames = 0;    ///< frames waiting to be taken
  std::size_t queued_bytes = 0;     ///< their bytes
  std::uint64_t accepted_frames = 0;  ///< frames `send` queued, ever
  std::uint64_t taken_frames = 0;     ///< frames `pop`/`take_all` handed out, ever
  std::uint64_t dropped_frames = 0;   ///< frames discarded by Overflow::drop_oldest (evicted, or
                                      ///< a single frame larger than max_bytes)
  std::uint64_t dropped_bytes = 0;    ///< their bytes
  bool closed = false;                ///< `close()` was called or the mailbox overflowed
  bool overflowed = false;            ///< closed because a frame did not fit (Overflow::close)
};

/// A bounded, thread-safe queue of shared frames: the ready-made Sink for real transports.
///
/// Copies share one queue (a reference-counted handle to the state), so the broadcaster holds one
/// copy and the connection's writer another. Producers call `send` (never blocks beyond a short
/// lock); the writer either blocks in `pop`/`take_all(out, timeout)` (thread per connection) or,
/// in an event loop, is woken through `on_wake` and calls the non-blocking `take_all(out)` to
/// write every queued frame in one system call. Queued frames are shared with every other
/// recipient: a queued frame costs one pointer, not a copy of the bytes. Steady state allocates
/// nothing (a ring that grows up to `max_frames`).
class Mailbox {
 public:
  /// A new, empty, open mailbox. One allocation (the shared state); the ring grows on demand.
  explicit Mailbox(const MailboxOptions& options = {}) : state_(new State(options)) {}

  Mailbox(const Mailbox& other) noexcept : state_(other.state_) { state_->retain(); }
  Mailbox(Mailbox&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  Mailbox& operator=(const Mailbox& other) noexcept {
    Mailbox(other).swap(*this);
    return *this;
  }
  Mailbox& operator=(Mailbox&& other) noexcept {
    if (this != &other) {
      if (state_) state_->release();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  ~Mailbox() {
    if (state_) state_->release();
  }
  void swap(Mailbox& other) noexcept { std::swap(state_, other.state_); }

  /// Queues `frame` (shares it, no copy of the bytes). Returns false when the mailbox is closed,
  /// or when the frame does not fit and the policy is `Overflow::close` (which closes it). With
  /// `Overflow::drop_oldest` it drops the oldest frames until the new one fits (a frame larger
  /// than `max_bytes` on its own is dropped instead) and returns true. Empty frames are ignored.
  /// Calls the wake-up function, without the lock, when the queue goes from empty to non-empty.
  bool send(const Frame& frame) { return send_impl(frame); }

  /// As `send(const Frame&)`, but a frame that is queued is moved in: no reference count change
  /// (a broadcaster hands each recipient its own reference this way). A frame that is not queued
  /// is left as it was.
  bool send(Frame&& frame) { return send_impl(std::move(frame)); }
  /// Closes the mailbox: later `send`s return false, blocked `pop`/`take_all` calls return, and
  /// the wake-up function is called once more (then released, which breaks any reference cycle
  /// through it). Frames already queued can still be taken. Idempotent.
  void close() {
    State& s = *state_;
    std::shared_ptr<const std::function<void()>> wake;
    bool waiters = false;
    {
      std::lock_guard<detail::SpinLock> lock(s.lock);
      if (s.closed) return;
      s.closed = true;
      waiters = s.has_waiters;
      wake = std::move(s.wake);
    }
    if (waiters) s.notify(true);
    if (wake && *wake) (*wake)();
  }

  /// True once `close()` was called or the mailbox overflowed with `Overflow::close`.
  bool closed() const {
    std::lock_guard<detail::SpinLock> lock(state_->lock);
    return state_->closed;
  }

  /// Takes the oldest frame, waiting up to `timeout` for one. `std::nullopt` on timeout, or when
  /// the mailbox is closed and empty (check `closed()` to tell the two apart).
  template <class Rep, class Period>
  std::optional<Frame> pop(std::chrono::duration<Rep, Period> timeout) {
    State& s = *state_;
    std::unique_lock<detail::SpinLock> lock(s.lock);
    if (!s.wait(lock, timeout)) return std::nullopt;
    return s.take_front();
  }

  /// Takes the oldest frame if there is one; never blocks.
  std::optional<Frame> try_pop() {
    State& s = *state_;
    std::lock_guard<detail::SpinLock> lock(s.lock);
    if (s.count == 0) return std::nullopt;
    return s.take_front();
  }

  /// Appends every queued frame to `out`, oldest first, and returns how many. Never blocks.
  /// For event loops: call it when woken, then write all of `out` in one go (writev).
  std::size_t take_all(std::vector<Frame>& out) {
    State& s = *state_;
    std::lock_guard<detail::SpinLock> lock(s.lock);
    return s.take_all(out);
  }

  /// As `take_all(out)`, but first waits up to `timeout` until at least one frame is queued (or
  /// the mailbox is closed). For thread-per-connection writers that batch: one write per wake-up.
  template <class Rep, class Period>
  std::size_t take_all(std::vector<Frame>& out, std::chrono::duration<Rep, Period> timeout) {
    State& s = *state_;
    std::unique_lock<detail::SpinLock> lock(s.lock);
    if (!s.wait(lock, timeout)) return 0;
    return s.take_all(out);
  }

  /// Sets the function called when the queue goes from empty to non-empty, and on close. It runs
  /// on the sending thread (often the broadcaster's), without the mailbox lock: keep it short
  /// (post to your event loop, write an eventfd). It may call `take_all`. If frames are already
  /// queued, it is called once now so none wait unnoticed. Don't capture a Mailbox copy in it
  /// (that would keep the state alive in a cycle until close).
  void on_wake(std::function<void()> fn) {
    State& s = *state_;
    std::shared_ptr<const std::function<void()>> call_now;
    std::shared_ptr<const std::function<void()>> next;
    if (fn) next = std::make_shared<const std::function<void()>>(std::move(fn));
    {
      std::lock_guard<detail::SpinLock> lock(s.lock);
      s.wake.swap(next);  // the old function is released after the lock
      if (s.count != 0 || s.closed) call_now = s.wake;
      if (s.closed) s.wake.reset();
    }
    if (call_now && *call_now) (*call_now)();
  }

  /// A consistent snapshot of the counters.
  MailboxStats stats() const {
    const State& s = *state_;
    std::lock_guard<detail::SpinLock> lock(s.lock);
    MailboxStats st;
    st.queued_frames = s.count;
    st.queued_bytes = s.bytes;
    st.accepted_frames = s.taken_frames + s.evicted_frames + s.count;
    st.taken_frames = s.taken_frames;
    st.dropped_frames = s.evicted_frames + s.refused_frames;
    st.dropped_bytes = s.dropped_bytes;
    st.closed = s.closed;
    st.overflowed = s.overflowed;
    return st;
  }

  /// The options this mailbox was made with.
  const MailboxOptions& options() const noexcept { return state_->options; }

  /// Cache hint from a `Broadcaster` a few recipients before `send` (stage 2: the queue's state,
  /// one cache line; stage 1: the ring slot the next frame goes to). Takes no lock, changes
  /// nothing.
  void prefetch(int stage) const noexcept {
    if (stage >= 2) {
      detail::prefetch(state_, true);
    } else if (const void* slot = state_->next_slot.load(std::memory_order_relaxed)) {
      detail::prefetch(slot, true);
    }
  }

  /// True when both handles share one queue.
  friend bool operator==(const Mailbox& a, const Mailbox& b) noexcept { return a.state_ == b.state_; }
  friend bool operator!=(const Mailbox& a, const Mailbox& b) noexcept { return !(a == b); }

 private:
  template <class F>
  bool send_impl(F&& frame) {
    State& s = *state_;
    std::shared_ptr<const std::function<void()>> wake;
    bool accepted = true;
    bool notify = false;
    {
      std::lock_guard<detail::SpinLock> lock(s.lock);
      if (s.closed) return false;
      const std::size_t n = frame.size();
      if (n == 0) return true;
      if (SSEPP_LIKELY(s.fits(n))) {
        notify = s.enqueue(std::forward<F>(frame), wake);
      } else if (!s.drop_oldest) {
        s.closed = true;
        s.overflowed = true;
        notify = s.has_waiters;
        wake = std::move(s.wake);
        accepted = false;
      } else if (n > s.byte_limit) {
        ++s.refused_frames;
        s.dropped_bytes += n;
      } else {
        while (!s.fits(n)) s.drop_front();
        notify = s.enqueue(std::forward<F>(frame), wake);
      }
    }
    if (notify) s.notify(!accepted);
    if (wake && *wake) (*wake)();
    return accepted;
  }

  // One block per queue. Everything `send` touches sits in its first cache line (`hot_bytes`):
  // a broadcast walking thousands of mailboxes loads (and prefetches) one line each, so the hot
  // part has a one-byte lock, 32-bit counts and bounds, and no blocking primitives; blocked
  // writers wait on the cold part's mutex and condition variable. The ring is raw storage: slots
  // outside the queued range hold no Frame, so a send writes its slot without reading it first.
  struct alignas(64) State {
    explicit State(const MailboxOptions& o)
        : drop_oldest(o.overflow == Overflow::drop_oldest),
          frame_limit(clamp(plus_room(o.max_frames, o.replay_frames))),
          byte_limit(clamp(plus_room(o.max_bytes, o.replay_bytes))),
          options(o) {}
    ~State() {
      while (count != 0) (void)pop_front();
      deallocate(slots, cap);
    }
    State(const State&) = delete;
    State& operator=(const State&) = delete;

    // ---- hot: guarded by `lock` (next_slot is also read without it, as a hint)
    mutable detail::SpinLock lock;
    bool closed = false;
    bool overflowed = false;
    bool replay_room = true;  // until frames are first taken
    const bool drop_oldest;
    bool has_waiters = false;  // a writer is blocked in pop/take_all: sends notify
    std::uint32_t head = 0;
    std::uint32_t count = 0;  // `count` frames from `head` are constructed
    std::uint32_t cap = 0;    // grows by doubling up to the frame limit
    std::uint32_t frame_limit;  // the bounds in force (with the replay room until first taken)
    std::uint32_t bytes = 0;
    std::uint32_t byte_limit;
    Frame* slots = nullptr;  // ring of `cap` slots
    // Where the next frame goes (for `prefetch`, read without the lock); null when unknown.
    std::atomic<const void*> next_slot{nullptr};
    std::shared_ptr<const std::function<void()>> wake;
    // ---- cold
    std::atomic<std::size_t> handles{1};
    const MailboxOptions options;
    std::uint64_t taken_frames = 0;
    std::uint64_t evicted_frames = 0;  // dropped from the queue by Overflow::drop_oldest
    std::uint64_t refused_frames = 0;  // dropped on arrival: larger than max_bytes alone
    std::uint64_t dropped_bytes = 0;
    std::mutex wait_mutex;             // blocked writers: waiter_count, cv
    std::condition_variable cv;
    std::uint32_t waiter_count = 0;

    static constexpr std::size_t hot_bytes = 64;
    static constexpr std::uint32_t most = UINT32_MAX;  // "no bound": 2^32 - 1 frames or bytes

    void retain() noexcept { handles.fetch_add(1, std::memory_order_relaxed); }
    void release() noexcept {
      if (handles.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
    }

    static std::size_t plus_room(std::size_t bound, std::size_t room) noexcept {
      if (bound == 0) return 0;
      return room > SIZE_MAX - bound ? SIZE_MAX : bound + room;
    }
    static std::uint32_t clamp(std::size_t bound) noexcept {
      return bound == 0 || bound > most ? most : static_cast<std::uint32_t>(bound);
    }

    bool fits(std::size_t n) const noexcept {
      return count < frame_limit && std::uint64_t{bytes} + n <= byte_limit;
    }

    /// Frames were taken: the replay room is over, the live bounds apply.
    void end_replay_room() noexcept {
      if (!replay_room) return;
      replay_room = false;
      frame_limit = clamp(options.max_frames);
      byte_limit = clamp(options.max_bytes);
    }

    /// Queues f (it fits); sets `wake` on the empty -> non-empty transition; true when a blocked
    /// writer needs notifying.
    template <class F>
    bool enqueue(F&& f, std::shared_ptr<const std::function<void()>>& wake_out) {
      if (count == 0 && wake) wake_out = wake;
      push_back(std::forward<F>(f));
      return has_waiters;
    }

    std::uint32_t slot(std::uint32_t i) const noexcept {
      std::uint32_t at = head + i;
      return at >= cap ? at - cap : at;
    }

    void set_next_slot() noexcept {
      next_slot.store(count < cap ? slots + slot(count) : nullptr, std::memory_order_relaxed);
    }

    template <class F>
    void push_back(F&& f) {
      if (count == cap) grow();
      const auto n = static_cast<std::uint32_t>(f.size());  // fits: at most byte_limit
      new (slots + slot(count)) Frame(std::forward<F>(f));
      ++count;
      bytes += n;
      set_next_slot();
    }

    Frame pop_front() noexcept {
      Frame* p = slots + head;
      Frame f(std::move(*p));
      p->~Frame();
      if (++head == cap) head = 0;
      --count;
      bytes -= static_cast<std::uint32_t>(f.size());
      if (count == 0) head = 0;
      set_next_slot();
      return f;
    }

    /// pop_front for a writer: ends the replay room.
    Frame take_front() noexcept {
      end_replay_room();
      ++taken_frames;
      return pop_front();
    }

    void drop_front() noexcept {
      Frame f = pop_front();
      ++evicted_frames;
      dropped_bytes += f.size();
    }

    std::size_t take_all(std::vector<Frame>& out) {
      const std::uint32_t n = count;
      if (n == 0) return 0;
      end_replay_room();
      out.reserve(out.size() + n);
      for (std::uint32_t i = 0; i < n; ++i) {
        Frame* p = slots + slot(i);
        out.push_back(std::move(*p));
        p->~Frame();
      }
      count = 0;
      head = 0;
      bytes = 0;
      taken_frames += n;
      set_next_slot();
      return n;
    }

    static Frame* allocate(std::size_t n) { return std::allocator<Frame>().allocate(n); }
    static void deallocate(Frame* p, std::size_t n) noexcept {
      if (p) std::allocator<Frame>().deallocate(p, n);
    }

    void grow() {
      std::uint32_t next = cap == 0 ? 8 : (cap > most / 2 ? most : cap * 2);
      if (next > frame_limit) next = std::max(frame_limit, count + 1);
      Frame* block = allocate(next);
      for (std::uint32_t i = 0; i < count; ++i) {
        Frame* p = slots + slot(i);
        new (block + i) Frame(std::move(*p));
        p->~Frame();
      }
      deallocate(slots, cap);
      slots = block;
      cap = next;
      head = 0;
    }

    /// With `lock` held: until a frame is queued or the mailbox is closed, waits up to `timeout`
    /// on the cold mutex (the spin lock released meanwhile). Returns with `lock` held; false
    /// when no frame is queued.
    template <class Rep, class Period>
    bool wait(std::unique_lock<detail::SpinLock>& held, std::chrono::duration<Rep, Period> timeout) {
      if (count != 0 || closed) return count != 0;
      held.unlock();
      const auto deadline = detail::deadline_after(timeout);
      std::unique_lock<std::mutex> waiting(wait_mutex);
      ++waiter_count;
      for (;;) {
        held.lock();
        if (count != 0 || closed) break;
        has_waiters = true;  // seen by every send after this; they notify under wait_mutex
        held.unlock();
        if (cv.wait_until(waiting, deadline) == std::cv_status::timeout) {
          held.lock();
          break;
        }
      }
      if (--waiter_count == 0) has_waiters = false;
      return count != 0;
    }

    /// Wakes blocked writers (after a send saw has_waiters, or on close).
    void notify(bool all) {
      std::lock_guard<std::mutex> waiting(wait_mutex);
      if (all) cv.notify_all();
      else cv.notify_one();
    }
  };
  static_assert(offsetof(State, wake) + sizeof(std::shared_ptr<const std::function<void()>>) <=
                    State::hot_bytes,
                "what send touches fits in Mailbox::State::hot_bytes");

  State* state_;
};

static_assert(is_sink_v<Mailbox>, "Mailbox must be a Sink");

SSEPP_END_NAMESPACE
