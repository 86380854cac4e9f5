// ssepp::asio with compression (ServeOptions::compression = ssepp::compression()) on real
// loopback sockets: what the client receives is de-chunked, inflated with ssepp::Decompressor
// and parsed, as the bytes arrive. Every batch must decode as it arrives: an event is published,
// then the client reads until it decodes, before the next one is published.
#include "support.hpp"

#include "../support/catch.hpp"

#include <ssepp/compress.hpp>
#include <ssepp/testing.hpp>

using namespace asio_test;
using ssepp::asio::EndReason;
using ssepp::asio::EventStreams;
using ssepp::asio::ServeOptions;

namespace {

ssepp::Event ev(std::string type, std::string data) {
  return ssepp::Event{}.with_type(std::move(type)).with_data(std::move(data));
}

/// A body received so far, inflated in one go (every batch ends in a sync flush, so all of it
/// decodes) and parsed.
struct Inflated {
  bool ok = false;    // inflated without error and parsed
  bool done = false;  // the compressed stream's end and trailer were read and checked
  std::string plain;
  std::vector<ssepp::Event> events;
  std::vector<std::string> comments;
};

Inflated inflate(std::string_view body, ssepp::Format format = ssepp::Format::auto_detect) {
  Inflated r;
  ssepp::Decompressor z(format);
  while (!body.empty()) {
    auto step = z.decompress_to(r.plain, body);
    if (!step) {
      UNSCOPED_INFO("inflate: " << step.error().message() << " after " << r.plain.size());
      return r;
    }
    body.remove_prefix(step->consumed);
    if (step->consumed == 0 && !step->more) break;
  }
  auto parsed = ssepp::parse_events(r.plain);
  if (!parsed) {
    UNSCOPED_INFO("parse: " << parsed.error().message() << " in " << r.plain);
    return r;
  }
  r.ok = true;
  r.done = z.done();
  r.events = parsed->events;
  r.comments = parsed->comments;
  return r;
}

/// Waits until what `c` received inflates to at least `n` events.
bool wait_inflated(Client& c, std::size_t n, std::chrono::milliseconds limit = 20s) {
  return c.wait([n](const Seen& s) {
    Inflated i = inflate(s.body);
    return i.ok && i.events.size() >= n;
  }, limit);
}

ServeOptions compressed(ssepp::CompressOptions co = {}) {
  ServeOptions o;
  o.compression = ssepp::compression(co);
  return o;
}

struct Fixture {
  explicit Fixture(ServeOptions o = compressed(), std::shared_ptr<ssl::context> tls = nullptr)
      : sse(hub, with_endings(std::move(o))), server(server_loop.ioc(), sse, std::move(tls)) {}

  ServeOptions with_endings(ServeOptions o) {
    o.on_end = endings.hook();
    return o;
  }

  Endings endings;
  ssepp::Broadcaster<ssepp::Mailbox> hub;
  EventStreams sse;
  Loop server_loop;
  Server server;
  Loop client_loop;
};

/// Starts reading and waits for the response head: the client is connected to the hub.
void open(Client& c) {
  c.read();
  REQUIRE(c.wait([](const Seen& s) { return s.head_done; }));
}

/// Publishes `n` events one at a time, each decoded by the client before the next goes out.
void one_by_one(Fixture& f, Client& c, int n, std::size_t already = 0) {
  for (int i = 0; i < n; ++i) {
    INFO("event " << i);
    (void)f.hub.broadcast(ev("price", R"({"symbol":"ACME","price":)" + std::to_string(100 + i) +
                                      R"(,"currency":"EUR"})"));
    const bool decoded = wait_inflated(c, already + static_cast<std::size_t>(i) + 1);
    if (!decoded) {
      Seen s = c.seen();
      Inflated got = inflate(s.body);
      UNSCOPED_INFO("head: " << s.head << "body: " << s.body.size() << " bytes, inflated "
                    << got.ok << ": " << got.plain);
    }
    REQUIRE(decoded);
  }
}

}  // namespace

TEST_CASE("gzip: each event decodes as it arrives; the stream parses to exactly what was sent",
          "[asio][compress]") {
  Fixture f;
  Client c(f.client_loop.ioc(), f.server.port(),
           Client::get("/events", "Accept-Encoding: gzip, deflate, br\r\n"));
  open(c);
  // The preamble is flushed on its own: the stream shows it is open before any event.
  REQUIRE(c.wait([](const Seen& s) {
    Inflated i = inflate(s.body);
    return i.ok && !i.comments.empty();
  }));
  one_by_one(f, c, 20);

  Seen s = c.seen();
  CHECK(s.status == 200);
  CHECK(s.has_header("Content-Encoding: gzip\r\n"));
  CHECK(s.has_header("Vary: Accept-Encoding\r\n"));
  CHECK(s.has_header("Transfer-Encoding: chunked\r\n"));
  REQUIRE(s.body.size() > 2);
  CHECK(static_cast<unsigned char>(s.body[0]) == 0x1f);  // a gzip member
  CHECK(static_cast<unsigned char>(s.body[1]) == 0x8b);
  Inflated i = inflate(s.body, ssepp::Format::gzip);
  REQUIRE(i.ok);
  REQUIRE(i.events.size() == 20);
  for (int k = 0; k < 20; ++k) {
    CHECK(i.events[static_cast<std::size_t>(k)].type == "price");
    CHECK(i.events[static_cast<std::size_t>(k)].id == std::to_string(k + 1));
  }
  CHECK(i.events[19].data == R"({"symbol":"ACME","price":119,"currency":"EUR"})");
  CHECK(i.comments == std::vector<std::string>{""});  // the bare ":\n\n" preamble
  CHECK_FALSE(i.done);  // still open: no trailer yet

  // The counters: the coded body's bytes before and after coding.
  auto st = f.sse.stats();
  CHECK(st.compressed == 1);
  CHECK(st.uncompressed_bytes == i.plain.size());
  CHECK(st.compressed_bytes == s.body.size());
  CHECK(st.compressed_bytes < st.uncompressed_bytes);
  CHECK(st.frames == 20);
}

TEST_CASE("deflate (zlib format) when the client prefers it; a graceful end writes the trailer",
          "[asio][compress]") {
  Fixture f;
  Client c(f.client_loop.ioc(), f.server.port(),
           Client::get("/events", "Accept-Encoding: gzip;q=0.5, deflate\r\n"));
  open(c);
  one_by_one(f, c, 10);
  const ssepp::ClientId id = f.server.client();
  REQUIRE(f.sse.end(id, ev("bye", "over")));
  REQUIRE(c.wait_closed());

  Seen s = c.seen();
  CHECK(s.has_header("Content-Encoding: deflate\r\n"));
  CHECK(s.final_chunk);
  Inflated i = inflate(s.body, ssepp::Format::zlib);
  REQUIRE(i.ok);
  CHECK(i.done);  // end and Adler-32 trailer read and checked
  REQUIRE(i.events.size() == 11);
  CHECK(i.events.back().type == "bye");
  CHECK(i.events.back().data == "over");
  auto e = f.endings.wait(id);
  REQUIRE(e);
  CHECK(e->reason == EndReason::ended);
  // Ended streams' counters are kept in the totals.
  auto st = f.sse.stats();
  CHECK(st.open == 0);
  CHECK(st.uncompressed_bytes == i.plain.size());
  CHECK(st.compressed_bytes == s.body.size());
}

TEST_CASE("identity, no Accept-Encoding, or a malformed one: a plain stream", "[asio][compress]") {
  const char* requests[] = {
      "Accept-Encoding: identity\r\n",
      "",
      "Accept-Encoding: gzip;q=2\r\n",       // a qvalue above 1
      "Accept-Encoding: gzip;q=\"1\"\r\n",   // quoted
      ("Accept-Encoding: gzip\r\n" "Accept-Encoding: @\r\n"),  // two lines, one malformed
      "Accept-Encoding: gzip;q=0, deflate;q=0\r\n",  // refuses both
  };
  for (const char* h : requests) {
    INFO("headers: " << h);
    Fixture f;
    Client c(f.client_loop.ioc(), f.server.port(), Client::get("/events", h));
    open(c);
    REQUIRE(c.wait([](const Seen& s) { return s.head_done; }));
    (void)f.hub.broadcast(ev("m", "plain"));
    REQUIRE(c.wait_events(1));  // the test client parses the body as it is
    Seen s = c.seen();
    CHECK_FALSE(s.has_header("Content-Encoding"));
    CHECK(s.has_header("Vary: Accept-Encoding\r\n"));
    CHECK(s.body == ":\n\nevent: m\nid: 1\ndata: plain\n\n");
    auto st = f.sse.stats();
    CHECK(st.compressed == 0);
    CHECK(st.uncompressed_bytes == 0);
    CHECK(st.compressed_bytes == 0);
  }
}

TEST_CASE("without ServeOptions::compression, gzip clients get a plain stream and no Vary",
          "[asio][compress]") {
  Fixture f(ServeOptions{});
  Client c(f.client_loop.ioc(), f.server.port(),
           Client::get("/events", "Accept-Encoding: gzip\r\n"));
  open(c);
  (void)f.hub.broadcast(ev("m", "plain"));
  REQUIRE(c.wait_events(1));
  Seen s = c.seen();
  CHECK_FALSE(s.has_header("Content-Encoding"));
  CHECK_FALSE(s.has_header("Vary"));
}

TEST_CASE("an idle stream releases its deflater; later events still decode", "[asio][compress]") {
  ssepp::CompressOptions co;
  co.idle_release = 50ms;
  Fixture f(compressed(co));
  Client c(f.client_loop.ioc(), f.server.port(),
           Client::get("/events", "Accept-Encoding: gzip\r\n"));
  open(c);
  REQUIRE(eventually([&] { return f.sse.stats().coder_releases == 1; }, 5s));  // opened quiet
  one_by_one(f, c, 3);
  REQUIRE(eventually([&] { return f.sse.stats().coder_releases >= 2; }, 5s));
  one_by_one(f, c, 3, 3);  // a new deflater primed with the kept history: the same gzip stream
  REQUIRE(eventually([&] { return f.sse.stats().coder_releases >= 3; }, 5s));
  one_by_one(f, c, 2, 6);
  Inflated i = inflate(c.seen().body, ssepp::Format::gzip);
  REQUIRE(i.ok);
  CHECK(i.events.size() == 8);
  CHECK(i.events[7].id == "8");
}

TEST_CASE("a stream that opens on a quiet channel holds no deflater; events still decode",
          "[asio][compress]") {
  SECTION("released after the first bytes") {
    Fixture f;  // idle release after 30 s: only the opening release can count
    Client c(f.client_loop.ioc(), f.server.port(),
             Client::get("/events", "Accept-Encoding: gzip\r\n"));
    open(c);
    REQUIRE(eventually([&] { return f.sse.stats().coder_releases == 1; }, 5s));
    one_by_one(f, c, 3);  // a new deflater primed with the kept history: the same gzip stream
    CHECK(f.sse.stats().coder_releases == 1);
    Inflated i = inflate(c.seen().body, ssepp::Format::gzip);
    REQUIRE(i.ok);
    CHECK(i.events.size() == 3);
  }
  SECTION("kept when a replay is queued behind the first bytes") {
    Fixture f;
    for (int i = 0; i < 3; ++i) (void)f.hub.broadcast(ev("m", std::to_string(i)));  // ids 1..3
    Client c(f.client_loop.ioc(), f.server.port(),
             Client::get("/events", "Accept-Encoding: gzip\r\nLast-Event-ID: 1\r\n"));
    open(c);
    REQUIRE(wait_inflated(c, 2));
    CHECK(f.sse.stats().coder_releases == 0);
  }
  SECTION("never released when idle_release is zero") {
    ssepp::CompressOptions co;
    co.idle_release = 0ms;
    Fixture f(compressed(co));
    Client c(f.client_loop.ioc(), f.server.port(),
             Client::get("/events", "Accept-Encoding: gzip\r\n"));
    open(c);
    one_by_one(f, c, 2);
    CHECK(f.sse.stats().coder_releases == 0);
  }
}

TEST_CASE("a burst leaves as one compressed batch, decodable at once", "[asio][compress]") {
  Fixture f;
  Client c(f.client_loop.ioc(), f.server.port(),
           Client::get("/events", "Accept-Encoding: gzip\r\n"));
  open(c);
  REQUIRE(c.wait([](const Seen& s) { return s.head_done && !s.body.empty(); }));
  f.server_loop.sync([&] {  // published while the stream's executor is busy: one batch
    for (int i = 0; i < 50; ++i) (void)f.hub.broadcast(ev("m", "burst " + std::to_string(i)));
  });
  REQUIRE(wait_inflated(c, 50));
  auto st = f.sse.stats();
  CHECK(st.batches == 1);
  CHECK(st.frames == 50);
}

TEST_CASE("HTTP/1.0 and TLS: compressed, each batch decodable", "[asio][compress][tls]") {
  SECTION("HTTP/1.0: the body ends with the close, the trailer before it") {
    Fixture f;
    Client c(f.client_loop.ioc(), f.server.port(),
             Client::get("/events", "Accept-Encoding: gzip\r\n", "HTTP/1.0"));
    open(c);
    one_by_one(f, c, 3);
    REQUIRE(f.sse.end(f.server.client()));
    REQUIRE(c.wait_closed());
    Seen s = c.seen();
    CHECK_FALSE(s.chunked);
    Inflated i = inflate(s.body);
    REQUIRE(i.ok);
    CHECK(i.done);
    CHECK(i.events.size() == 3);
  }
  SECTION("TLS") {
    Fixture f(compressed(), server_tls());
    Client c(f.client_loop.ioc(), f.server.port(),
             Client::get("/events", "Accept-Encoding: deflate\r\n"), client_tls());
    open(c);
    one_by_one(f, c, 5);
    CHECK(c.seen().has_header("Content-Encoding: deflate\r\n"));
  }
}

TEST_CASE("first events from on_open are compressed with the preamble", "[asio][compress]") {
  Fixture f;
  f.server.on_open = [](ssepp::asio::StreamStart& s) { s.first += ssepp::encode(ev("hello", "1")); };
  Client c(f.client_loop.ioc(), f.server.port(),
           Client::get("/events", "Accept-Encoding: gzip\r\n"));
  open(c);
  REQUIRE(wait_inflated(c, 1));
  CHECK(inflate(c.seen().body).events[0].type == "hello");
}
