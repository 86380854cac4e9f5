// ssepp::asio::EventClient against scripted servers on loopback (HTTP and HTTPS with a test CA
// made by the openssl command): requests as the server saw them, reconnection with
// Last-Event-ID, timeouts, redirects, a CONNECT proxy, TLS failures, hostile responses, pull mode.
#include "client_support.hpp"

#if defined(SSEPP_TEST_COMPRESS)
#  include <ssepp/asio/decompress.hpp>
#endif

#include "../support/catch.hpp"

#include <boost/asio/use_future.hpp>
#if defined(BOOST_ASIO_HAS_CO_AWAIT)
#  include <boost/asio/co_spawn.hpp>
#  include <boost/asio/detached.hpp>
#endif

#include <future>

using namespace client_test;
using ssepp::asio::EventClient;

TEST_CASE("HTTPS POST: the server sees method, body and headers; a one-shot stream ends once",
          "[asio][client]") {
  ScriptServer server(
      [](Exchange& x) {
        const bool ok = x.req.method == "POST" && x.req.target == "/v1/chat?stream=1" &&
                        x.req.body == R"({"q":"hi"})" &&
                        x.req.header("content-type") == "application/json" &&
                        x.req.header("authorization") == "Bearer token-1" &&
                        x.req.header("accept") == "text/event-stream" &&
                        x.req.header("content-length") == "10" && x.req.header("x-extra") == "yes";
        if (!ok) {
          x.write("HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad");
          return;
        }
        x.stream_head();
        x.chunk(event("one") + event("tw"));
        x.chunk("data: o\n");  // an event split across chunks
        x.chunk("\n");
        x.chunk(event("[DONE]"));
        x.last_chunk();
        x.wait_closed(2s);
      },
      ScriptServer::Tls::good);
  auto o = options(server.url("/v1/chat?stream=1"));
  o.client.method = "POST";
  o.client.body = R"({"q":"hi"})";
  o.client.headers = {{"Content-Type", "application/json"}};
  o.client.policy = ssepp::RetryPolicy::api;
  o.client.reconnect_on_end = false;
  int hooks = 0;
  o.before_request = [&](ssepp::Request& r) {
    ++hooks;
    r.headers.emplace_back("Authorization", "Bearer token-" + std::to_string(hooks));
    r.headers.emplace_back("X-Extra", "yes");
  };
  Record rec;
  {
    Loop loop;
    auto c = make(loop.ioc(), o);
    c->start(rec.handlers());
    REQUIRE(rec.wait_closed());
  }
  CHECK_FALSE(rec.close_error);
  REQUIRE(rec.events.size() == 4);
  CHECK(rec.events[0].data == "one");
  CHECK(rec.events[1].data == "tw");
  CHECK(rec.events[2].data == "o");
  CHECK(rec.events[3].data == "[DONE]");
  CHECK(rec.events[0].type == "message");
  CHECK(hooks == 1);
  CHECK(server.requests().size() == 1);
  CHECK(server.connections() == 1);
}

TEST_CASE("browser policy: a cleanly ended stream reconnects with Last-Event-ID", "[asio][client]") {
  ScriptServer server([](Exchange& x) {
    if (x.index == 0) {
      x.stream_head(false);  // body delimited by the close
      x.write(event("a", "1") + event("b", "2") + ": bye\n\n");
    } else {
      x.stream_head();
      x.chunk(event("c", "3"));
      x.wait_closed(5s);
    }
  });
  Record rec;
  Loop loop;
  auto c = make(loop.ioc(), options(server.url()));
  c->start(rec.handlers());
  REQUIRE(rec.wait_events(3));
  c->close();
  REQUIRE(rec.wait_closed());
  CHECK_FALSE(rec.close_error);
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].header("last-event-id").empty());
  CHECK(reqs[1].header("last-event-id") == "2");
  CHECK(rec.events[2].id == "3");
  REQUIRE(rec.reconnects.size() == 1);
  CHECK_FALSE(rec.reconnects[0]);  // a clean end
  CHECK(rec.comments == std::vector<std::string>{"bye"});
}

TEST_CASE("read timeout: a silent connection reconnects, one with heartbeats does not",
          "[asio][client]") {
  std::atomic<bool> heartbeats{false};
  std::atomic<bool> stop{false};
  ScriptServer server([&](Exchange& x) {
    x.stream_head();
    x.chunk(event("hello"));
    if (heartbeats) {
      while (!stop && x.chunk(":\n\n")) std::this_thread::sleep_for(50ms);
    } else {
      x.wait_closed(10s);
    }
  });
  auto o = options(server.url());
  o.read_timeout = 400ms;
  Record rec;
  Loop loop;
  SECTION("silent") {
    auto c = make(loop.ioc(), o);
    c->start(rec.handlers());
    REQUIRE(server.wait_requests(2, 10s));
    REQUIRE(rec.wait([&] { return !rec.reconnects.empty(); }));
    CHECK(rec.reconnects[0] == code(boost::beast::error::timeout));
    c->close();
    REQUIRE(rec.wait_closed());
  }
  SECTION("heartbeats") {
    heartbeats = true;
    auto c = make(loop.ioc(), o);
    c->start(rec.handlers());
    // Three read timeouts long, the heartbeats keep the one connection alive.
    REQUIRE(rec.wait([&] { return rec.comments.size() >= 24; }, 10s));
    CHECK(server.requests().size() == 1);
    CHECK(rec.reconnects.empty());
    c->close();
    REQUIRE(rec.wait_closed());
    stop = true;
  }
  CHECK_FALSE(rec.close_error);
  CHECK(rec.closes == 1);
}

TEST_CASE("redirects: a 307 keeps method and body; https to http is refused", "[asio][client]") {
  SECTION("followed") {
    ScriptServer server([](Exchange& x) {
      if (x.req.target == "/old") {  // a body that does not end: the client goes on at once
        x.write("HTTP/1.1 307 Temporary Redirect\r\nLocation: /new\r\n"
                "Transfer-Encoding: chunked\r\n\r\n5\r\nmoved\r\n");
        x.wait_closed(20s);
        return;
      }
      if (x.req.method != "POST" || x.req.body != "payload") return;
      x.stream_head();
      x.chunk(event("at new"));
      x.last_chunk();
    });
    auto o = options(server.url("/old"));
    o.client.method = "POST";
    o.client.body = "payload";
    o.reconnect = false;
    o.read_timeout = 10s;
    Record rec;
    Loop loop;
    auto c = make(loop.ioc(), o);
    const auto t0 = Clock::now();
    c->start(rec.handlers());
    REQUIRE(rec.wait_closed());
    CHECK(Clock::now() - t0 < 5s);
    CHECK_FALSE(rec.close_error);
    REQUIRE(rec.events.size() == 1);
    CHECK(rec.events[0].data == "at new");
    auto reqs = server.requests();
    REQUIRE(reqs.size() == 2);
    CHECK(reqs[1].target == "/new");
    CHECK(reqs[1].method == "POST");
  }
  SECTION("https to http refused") {
    ScriptServer plain([](Exchange& x) {
      x.stream_head();
      x.chunk(event("must not arrive"));
    });
    const std::string to = plain.url();
    ScriptServer server(
        [&](Exchange& x) {
          x.write("HTTP/1.1 302 Found\r\nLocation: " + to + "\r\nContent-Length: 0\r\n\r\n");
        },
        ScriptServer::Tls::good);
    Record rec;
    Loop loop;
    auto c = make(loop.ioc(), options(server.url()));
    c->start(rec.handlers());
    REQUIRE(rec.wait_closed());
    CHECK(rec.close_error == ssepp::errc::insecure_redirect);
    CHECK(rec.events.empty());
    CHECK(plain.requests().empty());
  }
}

TEST_CASE("a CONNECT proxy, from the option and from https_proxy", "[asio][client]") {
  ScriptServer server(
      [](Exchange& x) {
        x.stream_head();
        x.chunk(event("through " + x.req.header("host")));
        x.last_chunk();
      },
      ScriptServer::Tls::good);
  Proxy proxy;
  auto o = options(server.url());
  o.reconnect = false;
  const std::string target = "CONNECT 127.0.0.1:" + std::to_string(server.port());
  SECTION("option") { o.proxy = proxy.url(); }
  SECTION("environment") {
    o.proxy_from_env = true;
    ::setenv("https_proxy", proxy.url().c_str(), 1);
    ::unsetenv("no_proxy");
    ::unsetenv("NO_PROXY");
  }
  Record rec;
  {
    Loop loop;
    auto c = make(loop.ioc(), o);
    c->start(rec.handlers());
    REQUIRE(rec.wait_closed());
  }
  ::unsetenv("https_proxy");
  CHECK_FALSE(rec.close_error);
  REQUIRE(rec.events.size() == 1);
  CHECK(rec.events[0].data == "through 127.0.0.1:" + std::to_string(server.port()));
  CHECK(proxy.targets() == std::vector<std::string>{target});
}

TEST_CASE("proxy_for: the option, the environment, no_proxy", "[asio][client]") {
  auto https = *ssepp::Url::parse("https://api.example.com/x");
  auto http = *ssepp::Url::parse("http://127.0.0.1:8080/x");
  ssepp::asio::EventClientOptions o;
  ::setenv("https_proxy", "proxy.local:3128", 1);
  ::setenv("http_proxy", "http://p2:8080", 1);
  ::setenv("no_proxy", "localhost, .internal,127.0.0.1", 1);
  auto p = EventClient::proxy_for(https, o);
  REQUIRE(p);
  CHECK(p->host == "proxy.local");
  CHECK(p->port == 3128);
  CHECK_FALSE(EventClient::proxy_for(http, o));  // in no_proxy
  CHECK_FALSE(EventClient::proxy_for(*ssepp::Url::parse("https://db.internal/"), o));
  CHECK(EventClient::proxy_for(*ssepp::Url::parse("https://notinternal/"), o));
  ::setenv("no_proxy", "*", 1);
  CHECK_FALSE(EventClient::proxy_for(https, o));
  o.proxy = "http://explicit:1";
  CHECK(EventClient::proxy_for(https, o)->host == "explicit");
  o.proxy.clear();
  o.proxy_from_env = false;
  ::unsetenv("no_proxy");
  CHECK_FALSE(EventClient::proxy_for(https, o));
  ::unsetenv("https_proxy");
  ::unsetenv("http_proxy");

  ssepp::asio::EventClientOptions bad;
  bad.client.url = "https://x/";
  bad.proxy = "https://tls-proxy:443";
  net::io_context ioc;
  CHECK(EventClient::create(ioc.get_executor(), bad).error() == ssepp::errc::invalid_url);
  bad.proxy.clear();
  bad.client.url = "ftp://x/";
  CHECK(EventClient::create(ioc.get_executor(), bad).error() == ssepp::errc::invalid_url);
  bad.client.url = "https://x/";
  bad.ca_file = "/nonexistent/ca.pem";
  CHECK_FALSE(EventClient::create(ioc.get_executor(), bad));
}

TEST_CASE("TLS failures stop for good with the TLS error", "[asio][client]") {
  SECTION("unknown CA") {
    ScriptServer server([](Exchange& x) { x.stream_head(); }, ScriptServer::Tls::good);
    auto o = options(server.url());
    o.ca_file.clear();  // the system store does not know the test CA
    Record rec;
    Loop loop;
    auto c = make(loop.ioc(), o);
    c->start(rec.handlers());
    REQUIRE(rec.wait_closed());
    CHECK(rec.close_error.category().name() == std::string("asio.ssl"));
    CHECK(rec.close_error.message().find("certificate verify failed") != std::string::npos);
    CHECK(server.requests().empty());
    CHECK(c->attempts() == 1);  // not retried
  }
  SECTION("a certificate for another name") {
    ScriptServer server([](Exchange& x) { x.stream_head(); }, ScriptServer::Tls::other_name);
    Record rec;
    Loop loop;
    auto c = make(loop.ioc(), options(server.url()));
    c->start(rec.handlers());
    REQUIRE(rec.wait_closed());
    CHECK(rec.close_error.category().name() == std::string("asio.ssl"));
    CHECK(server.requests().empty());
  }
  SECTION("insecure accepts it") {
    ScriptServer server(
        [](Exchange& x) {
          x.stream_head();
          x.chunk(event("unverified"));
          x.last_chunk();
        },
        ScriptServer::Tls::other_name);
    auto o = options(server.url());
    o.ca_file.clear();
    o.insecure = true;
    o.reconnect = false;
    Record rec;
    Loop loop;
    auto c = make(loop.ioc(), o);
    c->start(rec.handlers());
    REQUIRE(rec.wait_closed());
    CHECK_FALSE(rec.close_error);
    CHECK(rec.events.size() == 1);
  }
}

TEST_CASE("hostile responses end with a clear error, never unbounded memory", "[asio][client]") {
  std::string response;
  std::atomic<std::size_t> written{0};
  std::size_t flood = 0;
  ScriptServer server([&](Exchange& x) {
    x.write(response);
    if (flood) {
      const std::string block(64 * 1024, 'x');
      for (std::size_t i = 0; i < flood && x.write(block); ++i) {
      }
    }
    written = x.written();
  });
  auto o = options(server.url());
  o.reconnect = false;
  std::error_code want;
  SECTION("garbage instead of HTTP") {
    response = "SSH-2.0-OpenSSH\r\n\r\n";
    want = code(boost::beast::http::error::bad_version);
  }
  SECTION("a response head larger than max_header") {
    o.max_header = 1024;
    response = "HTTP/1.1 200 OK\r\nX-Big: " + std::string(4096, 'b') + "\r\n\r\n";
    want = code(boost::beast::http::error::header_limit);
  }
  SECTION("a wrong content type (its body kept as the error body)") {
    response = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\n\r\n<html>";
    want = ssepp::errc::bad_content_type;
  }
  SECTION("a 500 under the api policy, with reconnection off") {
    o.client.policy = ssepp::RetryPolicy::api;
    response = "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n";
    want = ssepp::errc::bad_status;
  }
  SECTION("the connection closed mid-chunk") {
    response = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked"
               "\r\n\r\n20\r\ndata: cut short";
    want = code(boost::beast::http::error::partial_message);
  }
  SECTION("a bad chunk size") {
    response = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked"
               "\r\n\r\nzz\r\n";
    want = code(boost::beast::http::error::bad_chunk);
  }
  SECTION("an endless line: the parser limit stops the read early") {
    o.client.parser.limits.max_line = 64 * 1024;
    response = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: ";
    flood = 1024;  // 64 MiB offered
    want = ssepp::errc::line_too_long;
  }
  Record rec;
  Loop loop;
  auto c = make(loop.ioc(), o);
  c->start(rec.handlers());
  REQUIRE(rec.wait_closed());
  CHECK(rec.close_error == want);
  INFO(rec.close_error.message());
  CHECK(rec.events.empty());
  if (flood) {
    const auto deadline = Clock::now() + 20s;  // the server's script sees the client gone
    while (written == 0 && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
    REQUIRE(written != 0);
    CHECK(written < 16u * 1024 * 1024);  // the client stopped reading long before the end
  }
  if (want == ssepp::errc::bad_content_type) CHECK(c->client().error_body() == "<html>");
}

TEST_CASE("connection refused: reconnects with backoff until max_retries", "[asio][client]") {
  unsigned short port = 0;
  {
    net::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }
  auto o = options("http://127.0.0.1:" + std::to_string(port) + "/");
  o.client.max_retries = 3;
  o.client.retry = 1ms;
  Record rec;
  Loop loop;
  auto c = make(loop.ioc(), o);
  c->start(rec.handlers());
  REQUIRE(rec.wait_closed());
  CHECK(rec.close_error == ssepp::errc::retries_exhausted);
  CHECK(c->last_error() == code(net::error::connection_refused));
  CHECK(rec.reconnects.size() == 3);
  CHECK(c->attempts() == 4);
}

TEST_CASE("pull mode: async_next hands events over one by one, then errc::closed",
          "[asio][client]") {
  ScriptServer server([](Exchange& x) {
    x.stream_head();
    std::string all;
    for (int i = 0; i < 200; ++i) all += event(std::to_string(i), std::to_string(i));
    x.chunk(all);
    x.last_chunk();
  });
  auto o = options(server.url());
  o.reconnect = false;
  o.max_queued_events = 4;
  Loop loop;
  auto c = make(loop.ioc(), o);
  c->start();
  for (int i = 0; i < 200; ++i) {
    auto r = c->async_next(net::use_future).get();
    REQUIRE(r);
    CHECK(r->data == std::to_string(i));
    CHECK(r->id == std::to_string(i));
  }
  auto end = c->async_next(net::use_future).get();
  CHECK(end.error() == ssepp::errc::closed);
}

#if defined(BOOST_ASIO_HAS_CO_AWAIT)
TEST_CASE("coroutines: co_await client->next()", "[asio][client]") {
  ScriptServer server([](Exchange& x) {
    x.stream_head();
    x.chunk(event("a") + event("b"));
    x.last_chunk();
  });
  auto o = options(server.url());
  o.reconnect = false;
  Loop loop;
  auto c = make(loop.ioc(), o);
  c->start();
  std::promise<std::vector<std::string>> got;
  net::co_spawn(
      loop.ioc(),
      [&]() -> net::awaitable<void> {
        std::vector<std::string> seen;
        for (;;) {
          auto ev = co_await c->next();
          if (!ev) {
            seen.push_back(std::string(to_string(static_cast<ssepp::errc>(ev.error().value()))));
            break;
          }
          seen.push_back(ev->data);
        }
        got.set_value(seen);
      },
      net::detached);
  CHECK(got.get_future().get() == std::vector<std::string>{"a", "b", "closed"});
}
#endif

TEST_CASE("Content-Encoding: unasked is a clear error; gzip decoded with accept_compressed",
          "[asio][client]") {
  std::string body;
  ScriptServer server([&](Exchange& x) {
    x.write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: " +
            std::string(x.req.header("accept-encoding").empty() ? "br" : "gzip") +
            "\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (std::size_t i = 0; i < body.size(); i += 7) x.chunk(body.substr(i, 7));  // split anywhere
    x.last_chunk();
  });
  auto o = options(server.url());
  o.reconnect = false;
  Record rec;
  Loop loop;
#if defined(SSEPP_TEST_COMPRESS)
  SECTION("gzip") {
    ssepp::Compressor gz(ssepp::negotiate_encoding("gzip"));
    std::vector<ssepp::Frame> batch;
    for (int i = 0; i < 50; ++i) batch.push_back(ssepp::Frame(event(std::to_string(i))));
    REQUIRE(gz.compress_to(body, batch));
    REQUIRE(gz.end_to(body));
    ssepp::asio::accept_compressed(o);
    auto c = make(loop.ioc(), o);
    c->start(rec.handlers());
    REQUIRE(rec.wait_closed());
    CHECK_FALSE(rec.close_error);
    REQUIRE(rec.events.size() == 50);
    CHECK(rec.events[49].data == "49");
    CHECK(server.requests()[0].header("accept-encoding") == "gzip, deflate");
  }
  SECTION("corrupt gzip") {
    body = std::string("\x1f\x8b\x08\x00garbage-garbage-garbage", 27);
    ssepp::asio::accept_compressed(o);
    auto c = make(loop.ioc(), o);
    c->start(rec.handlers());
    REQUIRE(rec.wait_closed());
    CHECK(rec.close_error == ssepp::errc::invalid_compressed_data);
  }
#endif
  SECTION("a coding that was not asked for") {
    body = event("x");
    auto c = make(loop.ioc(), o);
    c->start(rec.handlers());
    REQUIRE(rec.wait_closed());
    CHECK(rec.close_error == ssepp::errc::unsupported_encoding);
    CHECK(rec.events.empty());
    CHECK(c->attempts() == 1);
  }
}
