// sse-client URL [--header K:V]... [--last-event-id ID] [--max-events N] [--idle-timeout S]
//
// Connects to an SSE endpoint over HTTP/1.1 (chunked or not), prints one JSON line per event
// ({"event":…,"data":…,"id":…}) and per retry field ({"retry":N}) like sse-dump, and reconnects
// as a browser's EventSource does (the stream's retry, backoff with jitter, Last-Event-ID) until
// interrupted, closed by a 204, failed by a non-stream response, or --max-events is reached.
// Redirects (301, 302, 303, 307, 308) are followed, up to 5 in a row. Status goes to stderr.
#include <ssepp/client.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

struct Url {
  std::string host, port = "80", target = "/";
};

// http://host[:port][/path?query]; https is not supported by this example.
std::optional<Url> parse_url(std::string_view s) {
  constexpr std::string_view scheme = "http://";
  if (s.substr(0, scheme.size()) != scheme) return std::nullopt;
  s.remove_prefix(scheme.size());
  Url u;
  auto slash = s.find('/');
  std::string_view authority = s.substr(0, slash);
  if (slash != std::string_view::npos) u.target = std::string(s.substr(slash));
  auto colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
    u.port = std::string(authority.substr(colon + 1));
    authority = authority.substr(0, colon);
  }
  if (authority.size() > 1 && authority.front() == '[' && authority.back() == ']')
    authority = authority.substr(1, authority.size() - 2);
  u.host = std::string(authority);
  if (u.host.empty() || u.port.empty()) return std::nullopt;
  return u;
}

std::string print_json(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Prints events and retry changes as JSON lines; counts events.
struct Printer {
  long events = 0;
  long max_events = -1;  // stop printing after this many (-1: no limit)
  bool full() const { return max_events >= 0 && events >= max_events; }
  void on_event(const ssepp::EventView& ev) {
    if (full()) return;
    nlohmann::ordered_json j;
    j["event"] = std::string(ev.type);
    j["data"] = std::string(ev.data);
    j["id"] = std::string(ev.id);
    std::printf("%s\n", print_json(j).c_str());
    std::fflush(stdout);
    ++events;
  }
  void on_retry(std::chrono::milliseconds ms) {
    if (full()) return;
    nlohmann::ordered_json j;
    j["retry"] = ms.count();
    std::printf("%s\n", print_json(j).c_str());
    std::fflush(stdout);
  }
};

struct Options {
  Url url;
  std::vector<ssepp::Header> headers;
  long max_events = -1;
  std::chrono::seconds idle_timeout{60};
};

enum class Outcome { reconnect, stop_ok, stop_failed };

// One connection: request, response, body until it ends. Follows redirects.
Outcome run_connection(Options& opt, ssepp::Client& client, Printer& printer) {
  for (int redirects = 0;; ++redirects) {
    net::io_context ioc;
    tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    beast::error_code ec;
    stream.expires_after(std::chrono::seconds(10));
    auto endpoints = resolver.resolve(opt.url.host, opt.url.port, ec);
    if (!ec) stream.connect(endpoints, ec);
    if (ec) {
      std::fprintf(stderr, "sse-client: cannot connect to %s:%s: %s\n", opt.url.host.c_str(),
                   opt.url.port.c_str(), ec.message().c_str());
      return Outcome::reconnect;
    }
    http::request<http::empty_body> req{http::verb::get, opt.url.target, 11};
    req.set(http::field::host, opt.url.host + ":" + opt.url.port);
    req.set(http::field::user_agent, "ssepp-sse-client");
    for (const auto& [name, value] : client.request_headers(opt.headers)) req.set(name, value);
    http::write(stream, req, ec);

    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    // A stream has no end; the SSE parser bounds each event. (Not boost::none: Boost 1.74's
    // parser then rejects every body with a Content-Length.)
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    if (!ec) http::read_header(stream, buffer, parser, ec);
    if (ec) {
      std::fprintf(stderr, "sse-client: no response: %s\n", ec.message().c_str());
      return Outcome::reconnect;
    }
    const auto& res = parser.get();
    const int status = static_cast<int>(res.result_int());
    if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
      auto next = parse_url(std::string(res[http::field::location]));
      if (!next || redirects >= 5) {
        std::fprintf(stderr, "sse-client: unusable redirect (%d)\n", status);
        return Outcome::stop_failed;
      }
      opt.url = *next;
      continue;
    }
    auto verdict = client.on_response(status, res[http::field::content_type],
                                      ssepp::Client::Clock::now());
    if (verdict == ssepp::Verdict::closed) {
      std::fprintf(stderr, "sse-client: server closed the stream for good (204)\n");
      return Outcome::stop_ok;
    }
    if (verdict == ssepp::Verdict::failed) {
      std::fprintf(stderr, "sse-client: %d %s: %s\n", status, std::string(res.reason()).c_str(),
                   client.error().message().c_str());
      return Outcome::stop_failed;
    }
    std::fprintf(stderr, "sse-client: connected to %s:%s%s\n", opt.url.host.c_str(),
                 opt.url.port.c_str(), opt.url.target.c_str());

    char chunk[16384];
    while (!parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      stream.expires_after(opt.idle_timeout);  // heartbeats keep a live stream under this
      http::read_some(stream, buffer, parser, ec);
      if (ec == http::error::need_buffer) ec = {};
      const std::size_t n = sizeof chunk - parser.get().body().size;
      if (!client.feed(std::string_view(chunk, n), printer)) {
        std::fprintf(stderr, "sse-client: %s\n", client.parser().error_message().c_str());
        return Outcome::reconnect;
      }
      if (printer.full()) return Outcome::stop_ok;
      if (ec) break;
    }
    std::fprintf(stderr, "sse-client: disconnected%s%s\n", ec ? ": " : "",
                 ec ? ec.message().c_str() : "");
    return Outcome::reconnect;
  }
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s URL [--header K:V]... [--last-event-id ID] [--max-events N] "
               "[--idle-timeout SECONDS]\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  ssepp::ClientOptions copt;
  std::optional<Url> url;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc) return std::nullopt;
      return std::string(argv[++i]);
    };
    if (a == "--header") {
      auto v = value();
      auto colon = v ? v->find(':') : std::string::npos;
      if (colon == std::string::npos) return usage(argv[0]);
      std::string name = v->substr(0, colon), val = v->substr(colon + 1);
      while (!val.empty() && val.front() == ' ') val.erase(0, 1);
      opt.headers.emplace_back(name, val);
    } else if (a == "--last-event-id") {
      auto v = value();
      if (!v) return usage(argv[0]);
      copt.last_event_id = *v;
    } else if (a == "--max-events") {
      auto v = value();
      if (!v) return usage(argv[0]);
      opt.max_events = std::stol(*v);
    } else if (a == "--idle-timeout") {
      auto v = value();
      if (!v) return usage(argv[0]);
      opt.idle_timeout = std::chrono::seconds(std::stol(*v));
    } else if (!url && a.rfind("--", 0) != 0) {
      url = parse_url(a);
      if (!url) {
        std::fprintf(stderr, "sse-client: not an http:// URL: %s\n", a.c_str());
        return 2;
      }
    } else {
      return usage(argv[0]);
    }
  }
  if (!url) return usage(argv[0]);
  opt.url = *url;

  ssepp::Client client(copt);
  Printer printer;
  printer.max_events = opt.max_events;
  for (;;) {
    switch (run_connection(opt, client, printer)) {
      case Outcome::stop_ok: return 0;
      case Outcome::stop_failed: return 1;
      case Outcome::reconnect: break;
    }
    auto delay = client.on_disconnect(ssepp::Client::Clock::now());
    if (!delay) return 1;
    std::fprintf(stderr, "sse-client: reconnecting in %lld ms (Last-Event-ID: %s)\n",
                 static_cast<long long>(delay->count()), std::string(client.last_event_id()).c_str());
    std::this_thread::sleep_for(*delay);
  }
}
