// ssepp::httplib with compression (EndpointOptions::compression = ssepp::compression()) on a
// real cpp-httplib server, read by raw loopback sockets: the body is de-chunked, inflated with
// ssepp::Decompressor and parsed as it arrives. Every event must decode before the next is sent.
#include <ssepp/compress.hpp>
#include <ssepp/httplib.hpp>
#include <ssepp/testing.hpp>

#include "support/catch.hpp"
#include "support/httplib_server.hpp"

using namespace httplib_test;

namespace {

struct Inflated {
  bool ok = false;
  bool done = false;  // end and trailer read and checked
  std::string plain;
  std::vector<ssepp::Event> events;
};

Inflated inflate(std::string_view body, ssepp::Format format = ssepp::Format::auto_detect) {
  Inflated r;
  ssepp::Decompressor z(format);
  while (!body.empty()) {
    auto step = z.decompress_to(r.plain, body);
    if (!step) return r;
    body.remove_prefix(step->consumed);
    if (step->consumed == 0 && !step->more) break;
  }
  auto parsed = ssepp::parse_events(r.plain);
  if (!parsed) return r;
  r.ok = true;
  r.done = z.done();
  r.events = parsed->events;
  return r;
}

ssepp::httplib::EndpointOptions compressed(ssepp::CompressOptions co = {}) {
  ssepp::httplib::EndpointOptions o;
  o.compression = ssepp::compression(co);
  o.wake_interval = 20ms;
  return o;
}

/// Sends `n` events one at a time; each must decode on the client before the next is sent.
void one_by_one(TestServer& s, RawClient& c, int n, std::size_t already = 0) {
  for (int i = 0; i < n; ++i) {
    INFO("event " << i);
    (void)s.hub.broadcast(ev(R"({"symbol":"ACME","price":)" + std::to_string(100 + i) + "}", "price"));
    const std::size_t want = already + static_cast<std::size_t>(i) + 1;
    REQUIRE(c.read_until([&] {
      Inflated got = inflate(c.body());
      return got.ok && got.events.size() >= want;
    }));
  }
}

}  // namespace

TEST_CASE("httplib gzip: each event decodes as it arrives; counters; a graceful end",
          "[httplib][compress]") {
  TestServer s(compressed());
  RawClient c(s.port, "/events", "Accept-Encoding: gzip, deflate\r\n");
  REQUIRE(c.read_until([&] { return !c.body().empty(); }));  // the preamble, flushed
  CHECK(c.header("Content-Encoding") == "gzip");
  CHECK(c.header("Vary") == "Accept-Encoding");
  one_by_one(s, c, 15);
  const std::string so_far = c.body();
  CHECK(static_cast<unsigned char>(so_far[0]) == 0x1f);

  REQUIRE(s.endpoint.shutdown(ev("bye")));
  bool complete = false;
  REQUIRE(c.read_until([&] {
    (void)c.body(&complete);
    return complete;
  }));
  Inflated i = inflate(c.body(), ssepp::Format::gzip);
  REQUIRE(i.ok);
  CHECK(i.done);  // trailer (CRC-32, length) checked
  REQUIRE(i.events.size() == 16);
  CHECK(i.events[14].data == R"({"symbol":"ACME","price":114})");
  CHECK(i.events[15].data == "bye");
  auto st = s.endpoint.stats();
  CHECK(st.compressed == 1);
  CHECK(st.uncompressed_bytes == i.plain.size());
  CHECK(st.compressed_bytes == c.body().size());
  CHECK(st.bytes == c.body().size());
}

TEST_CASE("httplib deflate; identity, none or malformed: plain", "[httplib][compress]") {
  {
    TestServer s(compressed());
    RawClient c(s.port, "/events", "Accept-Encoding: deflate\r\n");
    REQUIRE(c.read_until([&] { return !c.body().empty(); }));
    CHECK(c.header("Content-Encoding") == "deflate");
    one_by_one(s, c, 5);
    CHECK(inflate(c.body(), ssepp::Format::zlib).ok);
  }
  for (std::string h : {"Accept-Encoding: identity\r\n", "", "Accept-Encoding: gzip;q=x\r\n"}) {
    INFO(h);
    TestServer s(compressed());
    RawClient c(s.port, "/events", h);
    REQUIRE(c.read_until([&] { return !c.body().empty(); }));
    CHECK(c.header("Content-Encoding").empty());
    CHECK(c.header("Vary") == "Accept-Encoding");
    (void)s.hub.broadcast(ev("plain"));
    REQUIRE(c.read_until([&] { return c.count() == 1; }));
    CHECK(c.body() == ":\n\nid: 1\ndata: plain\n\n");
    CHECK(s.endpoint.stats().compressed == 0);
  }
}

TEST_CASE("httplib: an idle stream releases its deflater; later events still decode",
          "[httplib][compress]") {
  ssepp::CompressOptions co;
  co.idle_release = 50ms;
  TestServer s(compressed(co));
  RawClient c(s.port, "/events", "Accept-Encoding: gzip\r\n");
  REQUIRE(c.read_until([&] { return !c.body().empty(); }));
  REQUIRE(eventually([&] { return s.endpoint.stats().coder_releases == 1; }, 5s));  // opened
  one_by_one(s, c, 3);
  REQUIRE(eventually([&] { return s.endpoint.stats().coder_releases >= 2; }, 5s));  // idle
  one_by_one(s, c, 3, 3);
  Inflated i = inflate(c.body(), ssepp::Format::gzip);
  REQUIRE(i.ok);
  CHECK(i.events.size() == 6);
}

TEST_CASE("httplib: a stream that opens on a quiet channel holds no deflater; events still decode",
          "[httplib][compress]") {
  SECTION("released after its first write") {
    TestServer s(compressed());  // idle release after 30 s: only the opening release can count
    RawClient c(s.port, "/events", "Accept-Encoding: gzip\r\n");
    REQUIRE(c.read_until([&] { return !c.body().empty(); }));
    REQUIRE(eventually([&] { return s.endpoint.stats().coder_releases == 1; }, 5s));
    one_by_one(s, c, 3);  // a new deflater primed with the kept history: the same gzip stream
    CHECK(s.endpoint.stats().coder_releases == 1);
    Inflated i = inflate(c.body(), ssepp::Format::gzip);
    REQUIRE(i.ok);
    CHECK(i.events.size() == 3);
  }
  SECTION("never released when idle_release is zero") {
    ssepp::CompressOptions co;
    co.idle_release = 0ms;
    TestServer s(compressed(co));
    RawClient c(s.port, "/events", "Accept-Encoding: gzip\r\n");
    REQUIRE(c.read_until([&] { return !c.body().empty(); }));
    one_by_one(s, c, 2);
    CHECK(s.endpoint.stats().coder_releases == 0);
  }
}
