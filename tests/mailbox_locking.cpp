// The Mailbox's lock discipline: nothing is allocated or freed while its spin lock is held (the
// lock is for sections that never block), and `send` allocates nothing in steady state. The
// global operator new and delete below count every call, and those made while the calling thread
// holds a spin lock (SSEPP_TRACK_SPIN_LOCKS makes the lock count its holders).
//
// Not labelled "threads": it replaces operator new, which ThreadSanitizer's runtime owns.
#define SSEPP_TRACK_SPIN_LOCKS 1

#include <ssepp/mailbox.hpp>

#include "support/catch.hpp"

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "support/counting_new.hpp"

namespace {
// Allocations and frees made while the calling thread holds a spin lock count as watched.
[[maybe_unused]] const bool g_watching = (g_watch = [] { return ssepp::detail::SpinLock::held_here() > 0; }, true);
}  // namespace

using namespace std::chrono_literals;
using ssepp::Frame;
using ssepp::Mailbox;
using ssepp::MailboxOptions;
using ssepp::Overflow;

namespace {
struct Counts {
  std::size_t allocations, frees, allocations_locked, frees_locked;
  static Counts now() {
    return {g_allocations.load(), g_frees.load(), g_allocations_watched.load(),
            g_frees_watched.load()};
  }
  Counts operator-(const Counts& o) const {
    return {allocations - o.allocations, frees - o.frees, allocations_locked - o.allocations_locked,
            frees_locked - o.frees_locked};
  }
};
}  // namespace

TEST_CASE("the lock tracking sees a held spin lock") {
  ssepp::detail::SpinLock lock;
  CHECK(ssepp::detail::SpinLock::held_here() == 0);
  lock.lock();
  CHECK(ssepp::detail::SpinLock::held_here() == 1);
  // A call, not a new-expression: an optimiser may drop a new/delete pair, never this.
  void* volatile p = ::operator new(sizeof(int));  // counted as allocated under the lock
  lock.unlock();
  ::operator delete(p);
  CHECK(g_allocations_watched.load() >= 1);
  g_allocations_watched = 0;
}

TEST_CASE("the ring grows without allocating or freeing under the lock") {
  Mailbox box(MailboxOptions{1000, 0, Overflow::close});
  const Frame f("x");
  const Counts before = Counts::now();
  for (int i = 0; i < 1000; ++i) REQUIRE(box.send(f));  // 8, 16, ... 512, 1000 slots
  const Counts d = Counts::now() - before;
  CHECK(d.allocations >= 8);  // the ring grew: it allocated, outside the lock
  CHECK(d.allocations_locked == 0);
  CHECK(d.frees_locked == 0);
  CHECK(box.stats().queued_frames == 1000);
}

TEST_CASE("frames dropped by drop_oldest are freed after the lock") {
  Mailbox box(MailboxOptions{4, 0, Overflow::drop_oldest});
  for (int i = 0; i < 4; ++i) REQUIRE(box.send(Frame(std::string(40, 'a'))));  // queue-only refs
  const Counts before = Counts::now();
  for (int i = 0; i < 40; ++i) REQUIRE(box.send(Frame(std::string(40, 'b'))));
  const Counts d = Counts::now() - before;
  CHECK(d.frees >= 40);  // every evicted frame was the last reference to its bytes
  CHECK(d.frees_locked == 0);
  CHECK(d.allocations_locked == 0);
  CHECK(box.stats().dropped_frames == 40);

  // Bytes: one big frame evicts many small ones (more than one round's worth).
  Mailbox bytes(MailboxOptions{0, 64, Overflow::drop_oldest});
  for (int i = 0; i < 64; ++i) REQUIRE(bytes.send(Frame("s")));
  const Counts before_big = Counts::now();
  REQUIRE(bytes.send(Frame(std::string(60, 'B'))));
  const Counts big = Counts::now() - before_big;
  CHECK(bytes.stats().dropped_frames == 60);
  CHECK(big.frees_locked == 0);
  CHECK(big.allocations_locked == 0);
}

TEST_CASE("take_all makes room in the caller's vector before taking the lock") {
  Mailbox box(MailboxOptions{0, 0, Overflow::close});
  const Frame f("x");
  for (int i = 0; i < 300; ++i) REQUIRE(box.send(f));
  std::vector<Frame> out;
  const Counts before = Counts::now();
  CHECK(box.take_all(out) == 300);
  const Counts d = Counts::now() - before;
  CHECK(d.allocations >= 1);
  CHECK(d.allocations_locked == 0);
  CHECK(d.frees_locked == 0);

  // The waiting form too.
  for (int i = 0; i < 700; ++i) REQUIRE(box.send(f));
  const Counts before_wait = Counts::now();
  CHECK(box.take_all(out, 1s) == 700);
  const Counts w = Counts::now() - before_wait;
  CHECK(w.allocations_locked == 0);
  CHECK(w.frees_locked == 0);
  CHECK(out.size() == 1000);
}

TEST_CASE("close and on_wake release the wake-up function after the lock") {
  Mailbox box;
  auto big = std::make_shared<std::string>(1000, 'w');
  box.on_wake([big] { (void)big->size(); });
  big.reset();
  box.on_wake([] {});  // replaces the first: its capture is freed
  box.on_wake([held = std::make_shared<int>(1)] { (void)*held; });
  const Counts before = Counts::now();
  box.close();  // called once more, then released
  const Counts d = Counts::now() - before;
  CHECK(d.frees >= 1);
  CHECK(d.frees_locked == 0);
  CHECK(d.allocations_locked == 0);
}

TEST_CASE("send allocates nothing in steady state, with a writer taking batches") {
  Mailbox box(MailboxOptions{64, 0, Overflow::close});
  int wakes = 0;
  box.on_wake([&] { ++wakes; });
  const Frame f("data: tick\n\n");
  std::vector<Frame> out;
  out.reserve(64);
  for (int round = 0; round < 4; ++round) {  // warm up: the ring reaches its size
    for (int i = 0; i < 64; ++i) REQUIRE(box.send(f));
    out.clear();
    box.take_all(out);
  }
  const Counts before = Counts::now();
  for (int round = 0; round < 100; ++round) {
    for (int i = 0; i < 16; ++i) {
      REQUIRE(box.send(f));
      Frame copy = f;
      REQUIRE(box.send(std::move(copy)));
    }
    out.clear();
    REQUIRE(box.take_all(out) == 32);
  }
  const Counts d = Counts::now() - before;
  CHECK(d.allocations == 0);
  CHECK(d.frees == 0);
  CHECK(wakes > 0);
}
