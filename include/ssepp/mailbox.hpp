// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/detail/prefetch.hpp>
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
#include <string_view>
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

/// The enumerator's name: "close" or "drop_oldest" ("" for a value that is none).
constexpr std::string_view to_string(Overflow o) noexcept {
  switch (o) {
    case Overflow::close: return "close";
    case Overflow::drop_oldest: return "drop_oldest";
  }
  return {};
}

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
/// nothing (a ring that grows up to `max_frames`), and nothing is allocated or freed while the
/// queue's lock is held: a ring grows into memory allocated before the lock is taken, and frames
/// dropped or replaced are let go of after it is released.
///
/// A moved-from Mailbox shares no queue and behaves as a closed, empty one: `send` returns false,
/// `pop` and `take_all` return at once with nothing, `stats()` says closed, `close` and `on_wake`
/// do nothing. It may be assigned a new value, copied and destroyed.
class Mailbox {
 public:
  /// A new, empty, open mailbox. One allocation (the shared state); the ring grows on demand.
  explicit Mailbox(const MailboxOptions& options = {}) : state_(new State(options)) {}

  Mailbox(const Mailbox& other) noexcept : state_(other.state_) {
    if (state_) state_->retain();
  }
  /// Leaves `other` without a queue (see the class comment).
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
    if (SSEPP_UNLIKELY(state_ == nullptr)) return;
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
    if (SSEPP_UNLIKELY(state_ == nullptr)) return true;
    std::lock_guard<detail::SpinLock> lock(state_->lock);
    return state_->closed;
  }

  /// Takes the oldest frame, waiting up to `timeout` for one. `std::nullopt` on timeout, or when
  /// the mailbox is closed and empty (check `closed()` to tell the two apart).
  template <class Rep, class Period>
  std::optional<Frame> pop(std::chrono::duration<Rep, Period> timeout) {
    if (SSEPP_UNLIKELY(state_ == nullptr)) return std::nullopt;
    State& s = *state_;
    std::unique_lock<detail::SpinLock> lock(s.lock);
    if (!s.wait(lock, timeout)) return std::nullopt;
    return s.take_front();
  }

  /// Takes the oldest frame if there is one; never blocks.
  std::optional<Frame> try_pop() {
    if (SSEPP_UNLIKELY(state_ == nullptr)) return std::nullopt;
    State& s = *state_;
    std::lock_guard<detail::SpinLock> lock(s.lock);
    if (s.count == 0) return std::nullopt;
    return s.take_front();
  }

  /// Appends every queued frame to `out`, oldest first, and returns how many. Never blocks.
  /// For event loops: call it when woken, then write all of `out` in one go (writev). `out`
  /// grows (if it must) before the queue is locked: reuse one vector and it stops growing.
  std::size_t take_all(std::vector<Frame>& out) {
    if (SSEPP_UNLIKELY(state_ == nullptr)) return 0;
    std::unique_lock<detail::SpinLock> lock(state_->lock);
    return take_locked(lock, out);
  }

  /// As `take_all(out)`, but first waits up to `timeout` until at least one frame is queued (or
  /// the mailbox is closed). For thread-per-connection writers that batch: one write per wake-up.
  template <class Rep, class Period>
  std::size_t take_all(std::vector<Frame>& out, std::chrono::duration<Rep, Period> timeout) {
    if (SSEPP_UNLIKELY(state_ == nullptr)) return 0;
    std::unique_lock<detail::SpinLock> lock(state_->lock);
    if (!state_->wait(lock, timeout)) return 0;
    return take_locked(lock, out);
  }

  /// Sets the function called when the queue goes from empty to non-empty, and on close. It runs
  /// on the sending thread (often the broadcaster's), without the mailbox lock: keep it short
  /// (post to your event loop, write an eventfd). It may call `take_all`. If frames are already
  /// queued, it is called once now so none wait unnoticed. Don't capture a Mailbox copy in it
  /// (that would keep the state alive in a cycle until close).
  void on_wake(std::function<void()> fn) {
    if (SSEPP_UNLIKELY(state_ == nullptr)) return;
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
    MailboxStats st;
    if (SSEPP_UNLIKELY(state_ == nullptr)) {
      st.closed = true;
      return st;
    }
    const State& s = *state_;
    std::lock_guard<detail::SpinLock> lock(s.lock);
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

  /// The options this mailbox was made with (the defaults for a moved-from mailbox).
  const MailboxOptions& options() const noexcept {
    static const MailboxOptions none{};
    return state_ ? state_->options : none;
  }

  /// True when both handles share one queue (or both are moved-from).
  friend bool operator==(const Mailbox& a, const Mailbox& b) noexcept { return a.state_ == b.state_; }
  friend bool operator!=(const Mailbox& a, const Mailbox& b) noexcept { return !(a == b); }

 private:
  using Wake = std::shared_ptr<const std::function<void()>>;

  // The broadcaster's cache hint (see <ssepp/sink.hpp>), internal: stage 2 brings in the
  // queue's state (one cache line), stage 1 the ring slot the next frame goes to. Takes no lock,
  // changes nothing.
  friend void ssepp_sink_prefetch(const Mailbox& box, int stage, detail::SinkHook) noexcept {
    const State* s = box.state_;
    if (s == nullptr) return;
    if (stage >= 2) {
      detail::prefetch(s, true);
    } else if (const void* slot = s->next_slot.load(std::memory_order_relaxed)) {
      detail::prefetch(slot, true);
    }
  }

  // The common case with the lock held once: open, the frame fits and the ring has a free slot.
  // Anything else (a full ring to grow, an overflow) takes the slow path.
  template <class F>
  bool send_impl(F&& frame) {
    State* const s = state_;
    if (SSEPP_UNLIKELY(s == nullptr)) return false;
    Wake wake;  // released after the lock
    bool notify = false;
    bool slow = false;
    {
      std::lock_guard<detail::SpinLock> lock(s->lock);
      if (s->closed) return false;
      const std::size_t n = frame.size();
      if (n == 0) return true;
      slow = !s->fits(n) || s->count == s->cap;
      if (SSEPP_LIKELY(!slow)) notify = s->enqueue(std::forward<F>(frame), wake);
    }
    if (SSEPP_UNLIKELY(slow)) return send_slow(std::forward<F>(frame));
    if (notify) s->notify(false);
    if (wake && *wake) (*wake)();
    return true;
  }

  // A ring block owned outside the lock: a bigger one allocated before it is taken, or the old
  // one, freed after it is released.
  struct Ring {
    Frame* slots = nullptr;
    std::uint32_t cap = 0;
    Ring() noexcept = default;
    Ring(Frame* p, std::uint32_t n) noexcept : slots(p), cap(n) {}
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;
    ~Ring() { State::deallocate(slots, cap); }
    void reset(std::uint32_t n) {
      State::deallocate(std::exchange(slots, nullptr), std::exchange(cap, 0));
      slots = State::allocate(n);
      cap = n;
    }
  };

  // Frames evicted by Overflow::drop_oldest, destroyed after the lock is released (the last
  // reference to a frame frees it). At most `room` per locked round.
  struct Evicted {
    static constexpr std::uint32_t room = 16;
    Frame frames[room];
    std::uint32_t count = 0;
  };

  // `send` when the frame does not fit or the ring is full. Loops until done, taking the lock
  // once per round; between rounds, without the lock, it frees what it took out and allocates
  // the bigger ring the queue needs (used only if the ring is still full when it comes back).
  template <class F>
  bool send_slow(F&& frame) {
    State& s = *state_;
    Ring spare;
    for (;;) {
      Ring old;          // a replaced ring: freed after the lock
      Evicted evicted;   // dropped frames: destroyed after the lock
      Wake wake;
      bool notify = false;
      bool accepted = true;
      std::uint32_t want = 0;  // > 0: come back with a ring this big
      bool again = false;
      {
        std::lock_guard<detail::SpinLock> lock(s.lock);
        if (s.closed) return false;
        const std::size_t n = frame.size();
        if (n == 0) return true;
        bool queue = false;
        if (s.fits(n)) {
          queue = true;
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
          while (!s.fits(n) && evicted.count < Evicted::room)
            evicted.frames[evicted.count++] = s.drop_front();
          queue = s.fits(n);
          again = !queue;
        }
        if (queue && s.count == s.cap) {
          if (spare.cap > s.count) {
            s.install(spare, old);
          } else {
            want = s.next_capacity();
            queue = false;
            again = true;
          }
        }
        if (queue) notify = s.enqueue(std::forward<F>(frame), wake);
      }
      if (again) {
        if (want != 0) spare.reset(want);
        continue;
      }
      if (notify) s.notify(!accepted);
      if (wake && *wake) (*wake)();
      return accepted;
    }
  }

  // take_all with the lock held: makes room in `out` first, without the lock (the queue may grow
  // meanwhile: then again), so that moving the frames in allocates nothing.
  std::size_t take_locked(std::unique_lock<detail::SpinLock>& lock, std::vector<Frame>& out) {
    State& s = *state_;
    for (;;) {
      const std::size_t n = s.count;
      if (n == 0) return 0;
      if (out.capacity() - out.size() >= n) return s.take_all(out);
      lock.unlock();
      out.reserve(out.size() + n + n / 4);
      lock.lock();
    }
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

    /// Queues f; the ring has a free slot (`count < cap`).
    template <class F>
    void push_back(F&& f) noexcept {
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

    /// Evicts the oldest frame (Overflow::drop_oldest) and returns it, to be destroyed after
    /// the lock.
    Frame drop_front() noexcept {
      Frame f = pop_front();
      ++evicted_frames;
      dropped_bytes += f.size();
      return f;
    }

    /// Moves every queued frame to `out`, which has room for them (no allocation).
    std::size_t take_all(std::vector<Frame>& out) noexcept {
      const std::uint32_t n = count;
      if (n == 0) return 0;
      end_replay_room();
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

    /// The ring size to grow to: doubling, up to the frame limit.
    std::uint32_t next_capacity() const noexcept {
      std::uint32_t next = cap == 0 ? 8 : (cap > most / 2 ? most : cap * 2);
      if (next > frame_limit) next = std::max(frame_limit, count + 1);
      return next;
    }

    /// Moves the queue into `fresh` (allocated without the lock, larger than `count`) and hands
    /// the old ring to `old`, to be freed after the lock. Moving a Frame allocates nothing.
    void install(Ring& fresh, Ring& old) noexcept {
      for (std::uint32_t i = 0; i < count; ++i) {
        Frame* p = slots + slot(i);
        new (fresh.slots + i) Frame(std::move(*p));
        p->~Frame();
      }
      old.slots = std::exchange(slots, std::exchange(fresh.slots, nullptr));
      old.cap = std::exchange(cap, std::exchange(fresh.cap, 0));
      head = 0;
      set_next_slot();
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
static_assert(detail::has_prefetch<Mailbox>::value, "Mailbox takes the broadcaster's cache hint");

SSEPP_END_NAMESPACE
