#include <ssepp/mailbox.hpp>

#include "support/catch.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using ssepp::Frame;
using ssepp::Mailbox;
using ssepp::MailboxOptions;
using ssepp::Overflow;

namespace {
Frame frame_of(std::size_t n, char c = 'x') { return Frame(std::string(n, c)); }

std::vector<std::string> drain(Mailbox& box) {
  std::vector<Frame> out;
  box.take_all(out);
  std::vector<std::string> s;
  for (auto& f : out) s.emplace_back(f.view());
  return s;
}
}  // namespace

TEST_CASE("Mailbox queues shared frames in order") {
  Mailbox box;
  Frame a("a"), b("bb"), c("ccc");
  CHECK(box.send(a));
  CHECK(box.send(b));
  CHECK(box.send(c));
  CHECK(a.use_count() == 2);  // queued by reference count, not copied
  auto st = box.stats();
  CHECK(st.queued_frames == 3);
  CHECK(st.queued_bytes == 6);
  CHECK(st.accepted_frames == 3);
  auto first = box.try_pop();
  REQUIRE(first);
  CHECK(first->view() == "a");
  CHECK(first->data() == a.data());
  CHECK(drain(box) == std::vector<std::string>{"bb", "ccc"});
  CHECK_FALSE(box.try_pop());
  st = box.stats();
  CHECK(st.queued_frames == 0);
  CHECK(st.queued_bytes == 0);
  CHECK(st.taken_frames == 3);
}

TEST_CASE("Mailbox copies share one queue") {
  Mailbox box;
  Mailbox other = box;
  CHECK(other == box);
  CHECK(other != Mailbox());
  other.send(Frame("x"));
  CHECK(box.stats().queued_frames == 1);
  box.close();
  CHECK(other.closed());
  CHECK_FALSE(other.send(Frame("y")));
}

TEST_CASE("Mailbox::send(Frame&&) moves a frame it queues and leaves one it does not") {
  Mailbox box(MailboxOptions{1, 0, Overflow::close});
  Frame a("a");
  Frame moved = a;
  CHECK(box.send(std::move(moved)));
  CHECK(moved.empty());       // NOLINT(bugprone-use-after-move): moved into the queue
  CHECK(a.use_count() == 2);  // the queue holds the reference the moved frame had
  Frame b("b");
  Frame kept = b;
  CHECK_FALSE(box.send(std::move(kept)));  // overflow: not queued
  CHECK(kept.view() == "b");               // NOLINT(bugprone-use-after-move): left as it was
  CHECK(b.use_count() == 2);
  CHECK(drain(box) == std::vector<std::string>{"a"});
  CHECK(a.use_count() == 1);
}

namespace {
template <class S, class = void>
struct has_public_prefetch : std::false_type {};
template <class S>
struct has_public_prefetch<S, std::void_t<decltype(std::declval<const S&>().prefetch(0))>>
    : std::true_type {};
}  // namespace

TEST_CASE("Mailbox's cache hint is internal, and only a hint") {
  STATIC_REQUIRE_FALSE(has_public_prefetch<Mailbox>::value);  // no public member
  STATIC_REQUIRE(ssepp::detail::has_prefetch<Mailbox>::value);  // the broadcaster finds it
  Mailbox box(MailboxOptions{2, 0, Overflow::close});
  for (int stage : {2, 1}) ssepp::detail::sink_prefetch(box, stage);
  CHECK(box.send(Frame("1")));
  CHECK(box.send(Frame("2")));
  for (int stage : {2, 1}) ssepp::detail::sink_prefetch(box, stage);  // full: no slot
  CHECK(drain(box) == std::vector<std::string>{"1", "2"});
  ssepp::detail::sink_prefetch(box, 1);
  CHECK(box.stats().queued_frames == 0);
  Mailbox gone = std::move(box);
  for (int stage : {2, 1}) ssepp::detail::sink_prefetch(box, stage);  // NOLINT: moved-from
}

TEST_CASE("a moved-from Mailbox behaves closed and empty, and is safe to use") {
  Mailbox box(MailboxOptions{4, 0, Overflow::close});
  REQUIRE(box.send(Frame("queued")));
  Mailbox moved = std::move(box);
  // NOLINTBEGIN(bugprone-use-after-move): the moved-from state is what is tested
  CHECK(box.closed());
  CHECK_FALSE(box.send(Frame("x")));
  Frame kept("y");
  CHECK_FALSE(box.send(std::move(kept)));
  CHECK(kept.view() == "y");
  CHECK(box.send(Frame()) == false);
  auto st = box.stats();
  CHECK(st.closed);
  CHECK_FALSE(st.overflowed);
  CHECK(st.queued_frames == 0);
  CHECK(st.queued_bytes == 0);
  CHECK(st.accepted_frames == 0);
  std::vector<Frame> out;
  CHECK(box.take_all(out) == 0);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(box.take_all(out, 60s) == 0);  // at once, not after the timeout
  CHECK_FALSE(box.pop(60s));
  CHECK(std::chrono::steady_clock::now() - t0 < 30s);
  CHECK_FALSE(box.try_pop());
  CHECK(out.empty());
  int wakes = 0;
  box.on_wake([&] { ++wakes; });
  box.close();
  CHECK(wakes == 0);
  CHECK(box.options().max_frames == MailboxOptions{}.max_frames);
  CHECK(box != moved);
  Mailbox copy = box;  // copies of it are moved-from-like too
  CHECK(copy == box);
  CHECK(copy.closed());
  Mailbox assigned;
  assigned = box;
  CHECK(assigned.closed());
  box = moved;  // and it can be given a queue again
  CHECK(box == moved);
  CHECK(drain(box) == std::vector<std::string>{"queued"});
  // NOLINTEND(bugprone-use-after-move)
  CHECK_FALSE(moved.closed());
  CHECK(moved.stats().taken_frames == 1);
}

TEST_CASE("to_string(Overflow) names the policy") {
  STATIC_REQUIRE(ssepp::to_string(Overflow::close) == "close");
  CHECK(ssepp::to_string(Overflow::drop_oldest) == "drop_oldest");
  CHECK(ssepp::to_string(static_cast<Overflow>(7)).empty());
}

TEST_CASE("Mailbox ignores empty frames") {
  Mailbox box;
  CHECK(box.send(Frame()));
  CHECK(box.stats().queued_frames == 0);
}

TEST_CASE("Mailbox keeps order across ring growth and wrap-around") {
  Mailbox box(MailboxOptions{1000, 0, Overflow::close});
  int next_in = 0, next_out = 0;
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 7 + round % 13; ++i) REQUIRE(box.send(Frame(std::to_string(next_in++))));
    for (int i = 0; i < 5 + round % 11; ++i) {
      auto f = box.try_pop();
      if (!f) break;
      REQUIRE(f->view() == std::to_string(next_out++));
    }
  }
  for (auto& s : drain(box)) REQUIRE(s == std::to_string(next_out++));
  CHECK(next_out == next_in);
}

TEST_CASE("Overflow::close: a frame that does not fit closes the mailbox") {
  SECTION("bounded in frames") {
    Mailbox box(MailboxOptions{2, 0, Overflow::close});
    CHECK(box.send(Frame("1")));
    CHECK(box.send(Frame("2")));
    CHECK_FALSE(box.send(Frame("3")));
    CHECK(box.closed());
    auto st = box.stats();
    CHECK(st.overflowed);
    CHECK(st.dropped_frames == 0);
    CHECK_FALSE(box.send(Frame("4")));
    // What was queued can still be written before the connection ends.
    CHECK(drain(box) == std::vector<std::string>{"1", "2"});
  }
  SECTION("bounded in bytes") {
    Mailbox box(MailboxOptions{0, 10, Overflow::close});
    CHECK(box.send(frame_of(6)));
    CHECK(box.send(frame_of(4)));
    CHECK_FALSE(box.send(frame_of(1)));
    CHECK(box.stats().overflowed);
  }
}

TEST_CASE("Overflow::drop_oldest: evicts the oldest frames until the new one fits, counted") {
  SECTION("bounded in frames") {
    Mailbox box(MailboxOptions{3, 0, Overflow::drop_oldest});
    for (int i = 1; i <= 5; ++i) CHECK(box.send(Frame(std::to_string(i))));
    CHECK_FALSE(box.closed());
    auto st = box.stats();
    CHECK(st.dropped_frames == 2);
    CHECK(st.dropped_bytes == 2);
    CHECK(st.accepted_frames == 5);
    CHECK(drain(box) == std::vector<std::string>{"3", "4", "5"});
    st = box.stats();
    CHECK(st.accepted_frames == 5);
    CHECK(st.taken_frames == 3);
  }
  SECTION("bounded in bytes") {
    Mailbox box(MailboxOptions{0, 10, Overflow::drop_oldest});
    CHECK(box.send(frame_of(4, 'a')));
    CHECK(box.send(frame_of(4, 'b')));
    CHECK(box.send(frame_of(5, 'c')));  // 8 + 5 > 10: the oldest (4 bytes) goes, 9 fit
    auto st = box.stats();
    CHECK(st.dropped_frames == 1);
    CHECK(st.queued_bytes == 9);
    CHECK(drain(box) == std::vector<std::string>{"bbbb", "ccccc"});
  }
  SECTION("one large frame evicts many small ones, in several rounds") {
    Mailbox box(MailboxOptions{0, 100, Overflow::drop_oldest});
    for (int i = 0; i < 100; ++i) REQUIRE(box.send(frame_of(1, 'a')));
    CHECK(box.send(frame_of(60, 'b')));  // 60 of the 1-byte frames must go
    auto st = box.stats();
    CHECK(st.dropped_frames == 60);
    CHECK(st.dropped_bytes == 60);
    CHECK(st.queued_frames == 41);
    CHECK(st.queued_bytes == 100);
    auto rest = drain(box);
    REQUIRE(rest.size() == 41);
    CHECK(rest.back() == std::string(60, 'b'));
    CHECK(rest.front() == "a");
  }
  SECTION("a frame larger than the byte bound is dropped itself") {
    Mailbox box(MailboxOptions{0, 10, Overflow::drop_oldest});
    CHECK(box.send(frame_of(3)));
    CHECK(box.send(frame_of(11)));
    auto st = box.stats();
    CHECK(st.dropped_frames == 1);
    CHECK(st.dropped_bytes == 11);
    CHECK(st.queued_frames == 1);
    CHECK(st.accepted_frames == 1);  // dropped on arrival: never queued
  }
}

TEST_CASE("replay room: more than the bounds until frames are first taken") {
  SECTION("frames, ended by take_all") {
    Mailbox box(MailboxOptions{2, 0, Overflow::close, 3, 0});
    for (int i = 1; i <= 5; ++i) CHECK(box.send(Frame(std::to_string(i))));
    CHECK(drain(box) == std::vector<std::string>{"1", "2", "3", "4", "5"});
    CHECK(box.send(Frame("6")));
    CHECK(box.send(Frame("7")));
    CHECK_FALSE(box.send(Frame("8")));  // taken once: the live bound applies
    CHECK(box.stats().overflowed);
  }
  SECTION("bytes, ended by pop") {
    Mailbox box(MailboxOptions{0, 10, Overflow::close, 0, 10});
    CHECK(box.send(frame_of(8)));
    CHECK(box.send(frame_of(8)));
    CHECK(box.send(frame_of(4)));
    CHECK_FALSE(box.send(frame_of(1)));  // 21 > 10 + 10
  }
  SECTION("ended by try_pop, with a room larger than the ring") {
    Mailbox box(MailboxOptions{4, 0, Overflow::close, 10000, 0});
    for (int i = 0; i < 10004; ++i) REQUIRE(box.send(Frame(std::to_string(i))));
    CHECK_FALSE(box.send(Frame("x")));
    box.close();
    Mailbox again(MailboxOptions{4, 0, Overflow::close, 10000, 0});
    again.send(Frame("a"));
    REQUIRE(again.try_pop());
    for (int i = 0; i < 4; ++i) CHECK(again.send(Frame("b")));
    CHECK_FALSE(again.send(Frame("c")));
  }
  SECTION("no room by default") {
    Mailbox box(MailboxOptions{1, 0, Overflow::close});
    CHECK(box.send(Frame("1")));
    CHECK_FALSE(box.send(Frame("2")));
  }
}

TEST_CASE("Mailbox::pop waits for a frame, times out, and is woken by close") {
  Mailbox box;
  SECTION("timeout") {
    auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(box.pop(20ms));
    CHECK(std::chrono::steady_clock::now() - t0 >= 20ms);
    CHECK_FALSE(box.closed());
  }
  SECTION("a frame sent from another thread") {
    std::thread producer([box]() mutable { box.send(Frame("hello")); });
    auto f = box.pop(60s);
    producer.join();
    REQUIRE(f);
    CHECK(f->view() == "hello");
  }
  SECTION("close wakes a blocked pop long before its timeout") {
    auto t0 = std::chrono::steady_clock::now();
    std::thread closer([box]() mutable {
    std::this_thread::sleep_for(50ms);  // so that the wait below has most likely begun
    box.close();
  });
    CHECK_FALSE(box.pop(60s));
    closer.join();
    CHECK(std::chrono::steady_clock::now() - t0 < 30s);
    CHECK(box.closed());
  }
  SECTION("after close, queued frames are still handed out, then nullopt") {
    box.send(Frame("last"));
    box.close();
    auto f = box.pop(60s);
    REQUIRE(f);
    CHECK(f->view() == "last");
    CHECK_FALSE(box.pop(60s));
  }
}

TEST_CASE("Mailbox::take_all with a timeout batches what is queued") {
  Mailbox box;
  std::vector<Frame> out;
  CHECK(box.take_all(out, 10ms) == 0);
  box.send(Frame("a"));
  box.send(Frame("b"));
  CHECK(box.take_all(out, 60s) == 2);
  REQUIRE(out.size() == 2);
  CHECK(out[1].view() == "b");
  std::thread closer([box]() mutable {
    std::this_thread::sleep_for(50ms);  // so that the wait below has most likely begun
    box.close();
  });
  CHECK(box.take_all(out, 60s) == 0);
  closer.join();
  CHECK(box.closed());
}

TEST_CASE("a writer blocked in take_all is woken by every send: no lost wake-ups") {
  // Ping-pong: the writer blocks with a long timeout, the sender sends one frame and waits for
  // it to be taken. A lost wake-up would stall one round for the whole timeout.
  Mailbox box;
  constexpr int rounds = 2000;
  std::atomic<int> taken{0};
  std::thread writer([box, &taken]() mutable {
    std::vector<Frame> out;
    while (taken < rounds) {
      out.clear();
      if (box.take_all(out, 60s) == 0 && box.closed()) return;
      taken += static_cast<int>(out.size());
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < rounds; ++i) {
    REQUIRE(box.send(Frame("f")));
    while (taken <= i) std::this_thread::yield();
  }
  writer.join();
  CHECK(taken == rounds);
  CHECK(std::chrono::steady_clock::now() - t0 < 30s);
}

TEST_CASE("Mailbox waits accept timeouts longer than the clock can count") {
  Mailbox box;
  box.send(Frame("ready"));
  auto f = box.pop(std::chrono::hours::max());
  REQUIRE(f);
  CHECK(f->view() == "ready");
  std::thread closer([box]() mutable {
    std::this_thread::sleep_for(50ms);  // so that the wait below has most likely begun
    box.close();
  });
  std::vector<Frame> out;
  CHECK(box.take_all(out, std::chrono::nanoseconds::max()) == 0);
  closer.join();
  CHECK(box.closed());
}

TEST_CASE("on_wake fires on the empty to non-empty transition and on close, without the lock") {
  Mailbox box;
  int wakes = 0;
  std::vector<Frame> batch;
  // Taking frames from inside the callback would deadlock if the lock were held.
  box.on_wake([&] {
    ++wakes;
    box.take_all(batch);
  });
  box.send(Frame("1"));
  CHECK(wakes == 1);
  CHECK(batch.size() == 1);  // taken in the callback: the queue is empty again
  box.send(Frame("2"));
  CHECK(wakes == 2);

  // Without taking, the queue stays non-empty: one wake-up per batch.
  box.on_wake([&] { ++wakes; });
  box.send(Frame("3"));
  box.send(Frame("4"));
  box.send(Frame("5"));
  CHECK(wakes == 3);
  CHECK(box.stats().queued_frames == 3);
  box.close();
  CHECK(wakes == 4);
  box.close();  // idempotent: no second wake
  CHECK(wakes == 4);
}

TEST_CASE("on_wake set while frames are queued fires at once") {
  Mailbox box;
  box.send(Frame("x"));
  int wakes = 0;
  box.on_wake([&] { ++wakes; });
  CHECK(wakes == 1);
  box.send(Frame("y"));  // still non-empty: no new wake
  CHECK(wakes == 1);
}

TEST_CASE("overflow closing a mailbox wakes its event loop") {
  Mailbox box(MailboxOptions{1, 0, Overflow::close});
  int wakes = 0;
  box.on_wake([&] { ++wakes; });
  box.send(Frame("a"));
  CHECK(wakes == 1);
  CHECK_FALSE(box.send(Frame("b")));
  CHECK(wakes == 2);
}

TEST_CASE("Mailbox under concurrent producers keeps each producer's order") {
  Mailbox box(MailboxOptions{0, 0, Overflow::close});
  constexpr int producers = 4, per = 2000;
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([box, p]() mutable {
      for (int i = 0; i < per; ++i) box.send(Frame(std::to_string(p) + ":" + std::to_string(i)));
    });
  std::vector<int> next(producers, 0);
  int received = 0;
  std::vector<Frame> batch;
  while (received < producers * per) {
    batch.clear();
    box.take_all(batch, 60s);
    for (auto& f : batch) {
      auto s = std::string(f.view());
      auto colon = s.find(':');
      int p = std::stoi(s.substr(0, colon));
      int i = std::stoi(s.substr(colon + 1));
      REQUIRE(i == next[static_cast<std::size_t>(p)]);
      ++next[static_cast<std::size_t>(p)];
      ++received;
    }
  }
  for (auto& t : threads) t.join();
  CHECK(box.stats().accepted_frames == producers * per);
}

TEST_CASE("drop_oldest under concurrent producers: order kept, every frame accounted for") {
  // Evictions and ring growth happen in rounds that release the lock in between (nothing is
  // freed or allocated under it): producers interleave there, and nothing may be lost or reordered.
  Mailbox box(MailboxOptions{8, 0, Overflow::drop_oldest});
  constexpr int producers = 4, per = 3000;
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([box, p, &refused]() mutable {
      for (int i = 0; i < per; ++i) {
        // Every 100th frame is big enough to evict most of the queue at once.
        std::string body = std::to_string(p) + ":" + std::to_string(i);
        if (i % 100 == 0) body += std::string(200, '.');
        if (!box.send(Frame(body))) ++refused;
      }
    });
  std::vector<int> last(producers, -1);
  std::uint64_t taken = 0;
  std::vector<Frame> batch;
  auto take = [&] {
    batch.clear();
    box.take_all(batch);
    for (auto& f : batch) {
      auto s = std::string(f.view());
      auto colon = s.find(':');
      int p = std::stoi(s.substr(0, colon));
      int i = std::stoi(s.substr(colon + 1));
      REQUIRE(i > last[static_cast<std::size_t>(p)]);  // gaps (drops) allowed, no reordering
      last[static_cast<std::size_t>(p)] = i;
      ++taken;
    }
  };
  while (box.stats().accepted_frames < producers * per) take();
  for (auto& t : threads) t.join();
  take();
  CHECK(refused == 0);
  const auto st = box.stats();
  CHECK(st.queued_frames == 0);
  CHECK(st.taken_frames == taken);
  CHECK(st.accepted_frames == taken + st.dropped_frames);
  CHECK(st.accepted_frames == static_cast<std::uint64_t>(producers * per));
  CHECK(taken > 0);
}

TEST_CASE("one consumer per frame with several blocked poppers") {
  Mailbox box;
  std::atomic<int> got{0};
  std::vector<std::thread> poppers;
  for (int i = 0; i < 3; ++i)
    poppers.emplace_back([box, &got]() mutable {
      while (box.pop(60s)) ++got;
    });
  for (int i = 0; i < 300; ++i) box.send(Frame("f"));
  // Wait (on a condition, not a sleep) until every frame has been taken, then release them all.
  while (box.stats().taken_frames < 300) std::this_thread::yield();
  box.close();
  for (auto& t : poppers) t.join();
  CHECK(got == 300);
}

TEST_CASE("close() releases the wake-up function: what it holds is freed, once it has run") {
  // A stream that hands itself to its loop from on_wake holds a reference in the function; the
  // mailbox must let go of it at close, or the stream lives as long as the mailbox.
  Mailbox box;
  auto held = std::make_shared<int>(0);
  std::weak_ptr<int> watch = held;
  box.on_wake([held] { ++*held; });
  held.reset();
  REQUIRE_FALSE(watch.expired());
  box.send(Frame("x"));
  CHECK(*watch.lock() == 1);
  box.close();
  CHECK(watch.expired());  // called once more on close, then released
  // Set after close: called once at once (the mailbox is closed), and not kept either.
  auto late = std::make_shared<int>(0);
  std::weak_ptr<int> watch_late = late;
  int calls = 0;
  box.on_wake([late, &calls] { ++calls; });
  late.reset();
  CHECK(calls == 1);
  CHECK(watch_late.expired());
}
