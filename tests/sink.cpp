#include <ssepp/sink.hpp>
#include <ssepp/mailbox.hpp>

#include "support/catch.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Recorder {
  std::vector<std::string>* out;
  bool send(const ssepp::Frame& f) {
    out->emplace_back(f.view());
    return true;
  }
};

struct Closable {
  int* closes;
  bool send(const ssepp::Frame&) { return true; }
  void close() { ++*closes; }
};

struct MoveOnly {
  std::unique_ptr<int> p;
  bool send(const ssepp::Frame&) { return true; }
};

struct ReturnsInt {
  int send(const ssepp::Frame&) { return 0; }
};

struct ReturnsVoid {
  void send(const ssepp::Frame&) {}
};

struct TakesString {
  bool send(std::string&) { return true; }
};

struct NoSend {
  bool write(const ssepp::Frame&) { return true; }
};

struct Hinted {  // a user sink with the optional public cache hint
  mutable std::vector<int>* stages;
  bool send(const ssepp::Frame&) { return true; }
  void prefetch(int stage) const noexcept { stages->push_back(stage); }
};

struct Throws {
  bool send(const ssepp::Frame&) { throw std::runtime_error("boom"); }
  void close() { throw std::runtime_error("boom"); }
};

}  // namespace

TEST_CASE("is_sink_v accepts handles with bool send(const Frame&)") {
  STATIC_REQUIRE(ssepp::is_sink_v<Recorder>);
  STATIC_REQUIRE(ssepp::is_sink_v<Closable>);
  STATIC_REQUIRE(ssepp::is_sink_v<MoveOnly>);     // copying is not required
  STATIC_REQUIRE(ssepp::is_sink_v<ReturnsInt>);   // convertible to bool is enough
  STATIC_REQUIRE(ssepp::is_sink_v<ssepp::Mailbox>);
}

TEST_CASE("is_sink_v rejects what cannot report whether the connection is usable") {
  STATIC_REQUIRE_FALSE(ssepp::is_sink_v<ReturnsVoid>);
  STATIC_REQUIRE_FALSE(ssepp::is_sink_v<TakesString>);
  STATIC_REQUIRE_FALSE(ssepp::is_sink_v<NoSend>);
  STATIC_REQUIRE_FALSE(ssepp::is_sink_v<int>);
  STATIC_REQUIRE_FALSE(ssepp::is_sink_v<Recorder&>);
  STATIC_REQUIRE_FALSE(ssepp::is_sink_v<const Recorder>);
}

TEST_CASE("sink_has_close_v detects the optional close()") {
  STATIC_REQUIRE(ssepp::sink_has_close_v<Closable>);
  STATIC_REQUIRE(ssepp::sink_has_close_v<ssepp::Mailbox>);
  STATIC_REQUIRE_FALSE(ssepp::sink_has_close_v<Recorder>);
}

#if SSEPP_HAS_CONCEPTS
TEST_CASE("the Sink concept agrees with is_sink_v") {
  STATIC_REQUIRE(ssepp::Sink<Recorder>);
  STATIC_REQUIRE(ssepp::Sink<MoveOnly>);
  STATIC_REQUIRE(ssepp::Sink<ssepp::Mailbox>);
  STATIC_REQUIRE_FALSE(ssepp::Sink<ReturnsVoid>);
  STATIC_REQUIRE_FALSE(ssepp::Sink<NoSend>);
  STATIC_REQUIRE_FALSE(ssepp::Sink<int>);
}
#endif

TEST_CASE("sink_send passes the frame and its answer through; a throw counts as failure") {
  std::vector<std::string> got;
  Recorder r{&got};
  CHECK(ssepp::detail::sink_send(r, ssepp::Frame("data: x\n\n")));
  REQUIRE(got.size() == 1);
  CHECK(got[0] == "data: x\n\n");
  ReturnsInt zero;
  CHECK_FALSE(ssepp::detail::sink_send(zero, ssepp::Frame("a")));
#if SSEPP_HAS_EXCEPTIONS
  Throws t;
  CHECK_FALSE(ssepp::detail::sink_send(t, ssepp::Frame("a")));
  CHECK_NOTHROW(ssepp::detail::sink_close(t));
#endif
}

TEST_CASE("sink_close calls close() when present and nothing otherwise") {
  int closes = 0;
  Closable c{&closes};
  ssepp::detail::sink_close(c);
  CHECK(closes == 1);
  // Without close(): detected as such, and sink_close still compiles for it.
  static_assert(ssepp::sink_has_close_v<Closable>);
  static_assert(!ssepp::sink_has_close_v<Recorder>);
  std::vector<std::string> got;
  Recorder r{&got};
  ssepp::detail::sink_close(r);
}

TEST_CASE("the optional cache hint: a public prefetch(int), or Mailbox's internal hook") {
  STATIC_REQUIRE(ssepp::detail::has_prefetch<Hinted>::value);
  STATIC_REQUIRE(ssepp::detail::has_prefetch<ssepp::Mailbox>::value);
  STATIC_REQUIRE_FALSE(ssepp::detail::has_prefetch<Recorder>::value);
  std::vector<int> stages;
  Hinted h{&stages};
  ssepp::detail::sink_prefetch(h, 2);
  ssepp::detail::sink_prefetch(h, 1);
  CHECK(stages == std::vector<int>{2, 1});
  std::vector<std::string> got;
  Recorder r{&got};
  ssepp::detail::sink_prefetch(r, 1);  // no hint: nothing happens
  CHECK(got.empty());
}
