// examples/client/sse-client end to end: the real executable (its path is SSEPP_SSE_CLIENT)
// against scripted loopback servers over HTTPS (a test CA), a CONNECT proxy, and failures.
#include "client_support.hpp"

#include "../support/catch.hpp"

#if defined(SSEPP_TEST_COMPRESS)
#  include <ssepp/compress.hpp>
#endif

#include <fstream>
#include <sstream>
#include <sys/wait.h>

using namespace client_test;

namespace {

struct Run {
  int status = -1;
  std::string out, err;
  std::vector<std::string> lines() const {
    std::vector<std::string> v;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);) v.push_back(l);
    return v;
  }
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Runs sse-client with `args` (no proxy variables), waits for it (killed after 60 s).
Run sse_client(const std::vector<std::string>& args) {
  const std::string dir = Pki::get().dir;
  std::string cmd = "env -u https_proxy -u http_proxy -u HTTPS_PROXY timeout 60 " +
                    quote(SSEPP_SSE_CLIENT);
  for (const auto& a : args) cmd += " " + quote(a);
  cmd += " >" + dir + "/out 2>" + dir + "/err </dev/null";
  Run r;
  const int st = std::system(cmd.c_str());
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(dir + "/out");
  r.err = slurp(dir + "/err");
  return r;
}

}  // namespace

TEST_CASE("sse-client: an HTTPS POST with headers and --no-reconnect prints the events as JSON",
          "[asio][client][tool]") {
  ScriptServer server(
      [](Exchange& x) {
        if (x.req.method != "POST" || x.req.body != R"({"n":1})" ||
            x.req.header("content-type") != "application/json" ||
            x.req.header("authorization") != "Bearer k" || x.req.header("last-event-id") != "7") {
          x.write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
          return;
        }
        x.stream_head();
        x.chunk("retry: 500\n\nevent: token\ndata: He\nid: 8\n\ndata: \"llo\"\n\n");
        x.last_chunk();
      },
      ScriptServer::Tls::good);
  Run r = sse_client({server.url("/v1"), "-X", "POST", "-d", R"({"n":1})", "-H",
                      "Authorization: Bearer k", "--cacert", Pki::get().ca, "--no-reconnect",
                      "--last-event-id", "7", "--policy", "api"});
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(r.lines() == std::vector<std::string>{
                         R"({"retry":500})",
                         R"({"event":"token","data":"He","id":"8"})",
                         R"({"event":"message","data":"\"llo\"","id":"8"})",
                     });
  CHECK(server.requests().size() == 1);
}

TEST_CASE("sse-client: --max-events stops an endless stream; --proxy tunnels",
          "[asio][client][tool]") {
  std::atomic<bool> stop{false};
  ScriptServer server(
      [&](Exchange& x) {
        x.stream_head();
        for (int i = 0; !stop && x.chunk(event_text(i)); ++i) std::this_thread::sleep_for(2ms);
      },
      ScriptServer::Tls::good);
  Proxy proxy;
  Run r = sse_client({server.url(), "--cacert", Pki::get().ca, "--max-events", "3", "--proxy",
                      proxy.url()});
  stop = true;
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(r.lines() == std::vector<std::string>{R"({"event":"message","data":"0","id":"0"})",
                                              R"({"event":"message","data":"1","id":"1"})",
                                              R"({"event":"message","data":"2","id":"2"})"});
  CHECK(proxy.targets().size() == 1);
}

TEST_CASE("sse-client: failures are a message on stderr and exit status 1", "[asio][client][tool]") {
  SECTION("an API error: the status and the error body") {
    ScriptServer server([](Exchange& x) {
      x.write("HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 21\r\n"
              "\r\n{\"error\":\"bad key\"}\r\n");
    });
    Run r = sse_client({server.url(), "--policy", "api"});
    CHECK(r.status == 1);
    CHECK(r.out.empty());
    CHECK(r.err.find("HTTP 401") != std::string::npos);
    CHECK(r.err.find(R"({"error":"bad key"})") != std::string::npos);
  }
  SECTION("an unknown CA") {
    ScriptServer server([](Exchange& x) { x.stream_head(); }, ScriptServer::Tls::good);
    Run r = sse_client({server.url()});
    CHECK(r.status == 1);
    CHECK(r.err.find("certificate verify failed") != std::string::npos);
    CHECK(server.requests().empty());
  }
  SECTION("a silent server with --read-timeout and --no-reconnect") {
    ScriptServer server([](Exchange& x) {
      x.stream_head();
      x.wait_closed(20s);
    });
    Run r = sse_client({server.url(), "--read-timeout", "0.3", "--no-reconnect"});
    CHECK(r.status == 1);
    CHECK(r.err.find("timeout") != std::string::npos);
  }
  SECTION("usage") {
    CHECK(sse_client({}).status == 2);
    CHECK(sse_client({"http://x/", "--policy", "nope"}).status == 2);
    CHECK(sse_client({"ftp://x/"}).status == 2);
  }
}

#ifdef SSEPP_LLM
TEST_CASE("ssepp-llm: tokens as they arrive, the end at [DONE], one request", "[asio][client][tool]") {
  ScriptServer server(
      [](Exchange& x) {
        if (x.req.method != "POST" || x.req.header("authorization") != "Bearer sk-test" ||
            x.req.body.find(R"("stream":true)") == std::string::npos ||
            x.req.body.find(R"("content":"say hi")") == std::string::npos) {
          x.write("HTTP/1.1 400 Bad Request\r\nContent-Length: 7\r\n\r\nrequest");
          return;
        }
        x.stream_head();
        auto delta = [](const std::string& d) {
          return "data: {\"choices\":[{\"index\":0,\"delta\":" + d + "}]}\n\n";
        };
        x.chunk(delta(R"({"role":"assistant"})"));
        x.chunk(delta(R"({"content":"Hel"})") + delta(R"({"content":"lo"})"));
        x.chunk(": keep-alive\n\n" + delta(R"({"content":" \"you\""})"));
        x.chunk("data: [DONE]\n\n");
        x.wait_closed(20s);  // the connection stays open: the client ends on [DONE]
      },
      ScriptServer::Tls::good);
  const std::string dir = Pki::get().dir;
  const std::string cmd = "OPENAI_API_KEY=sk-test timeout 60 " + quote(SSEPP_LLM) + " --url " +
                          quote(server.url("/v1/chat/completions")) + " --cacert " +
                          quote(Pki::get().ca) + " say hi >" + dir + "/llm.out 2>" + dir + "/llm.err";
  const int st = std::system(cmd.c_str());
  INFO(slurp(dir + "/llm.err"));
  CHECK((WIFEXITED(st) ? WEXITSTATUS(st) : -1) == 0);
  CHECK(slurp(dir + "/llm.out") == "Hello \"you\"\n");
  CHECK(server.requests().size() == 1);
}
#endif

#if defined(SSEPP_TEST_COMPRESS)
TEST_CASE("sse-client --compressed: asks for gzip and inflates it", "[asio][client][tool]") {
  ssepp::Compressor gz(ssepp::negotiate_encoding("gzip"));
  std::vector<ssepp::Frame> batch{ssepp::Frame("data: squeezed\n\n")};
  std::string body;
  REQUIRE(gz.compress_to(body, batch));
  REQUIRE(gz.end_to(body));
  ScriptServer server([&](Exchange& x) {
    if (x.req.header("accept-encoding") != "gzip, deflate") return;
    x.write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
            "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  });
  Run r = sse_client({server.url(), "--compressed", "--no-reconnect"});
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(r.out == "{\"event\":\"message\",\"data\":\"squeezed\",\"id\":\"\"}\n");
}
#endif
