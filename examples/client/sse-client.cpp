// sse-client URL [-X METHOD] [-d BODY | --data-file F] [-H 'Name: value']... [--cacert FILE]
//            [--insecure] [--proxy URL] [--connect-timeout S] [--read-timeout S] [--no-reconnect]
//            [--policy browser|api] [--last-event-id ID] [--max-events N] [--compressed]
//
// A curl-like SSE client on ssepp::asio::EventClient: http:// and https:// (verified against the
// system store and --cacert), any method and body, redirects, an HTTP proxy (--proxy, or the
// https_proxy / http_proxy / no_proxy variables), reconnection as EventSource does (the stream's
// retry, backoff with jitter, Last-Event-ID) unless --no-reconnect. Prints one JSON line per
// event ({"event":…,"data":…,"id":…}) and per retry field ({"retry":N}) like sse-dump; status
// lines and the final error go to stderr. Exit status: 0 for a normal end (204, the end of a
// stream with --no-reconnect, --max-events reached, SIGINT/SIGTERM), 1 for an error, 2 for usage.
// --compressed asks for gzip or deflate and inflates the body (built with zlib only).
#include <ssepp/asio/client.hpp>
#if defined(SSE_CLIENT_COMPRESSED)
#  include <ssepp/asio/decompress.hpp>
#endif

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::string print_json(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int usage() {
  std::fprintf(stderr,
               "usage: sse-client URL [-X METHOD] [-d BODY | --data-file FILE] [-H 'Name: value']...\n"
               "                  [--cacert FILE] [--insecure] [--proxy URL] [--connect-timeout S]\n"
               "                  [--read-timeout S] [--no-reconnect] [--policy browser|api]\n"
               "                  [--last-event-id ID] [--max-events N] [--compressed]\n");
  return 2;
}

std::optional<std::chrono::milliseconds> seconds(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0' || !(v >= 0) || v > 1e6) return std::nullopt;
  return std::chrono::milliseconds(static_cast<long long>(v * 1000));
}

}  // namespace

int main(int argc, char** argv) {
  ssepp::asio::EventClientOptions opt;
  opt.user_agent = "ssepp-sse-client";
  long max_events = -1;
  std::optional<std::string> url;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc) return std::nullopt;
      return std::string(argv[++i]);
    };
    std::optional<std::string> v;
    if (a == "-H" || a == "--header") {
      if (!(v = value())) return usage();
      const auto colon = v->find(':');
      if (colon == std::string::npos || colon == 0) return usage();
      std::string val = v->substr(colon + 1);
      while (!val.empty() && (val.front() == ' ' || val.front() == '\t')) val.erase(0, 1);
      opt.client.headers.emplace_back(v->substr(0, colon), val);
    } else if (a == "-X" || a == "--request") {
      if (!(v = value())) return usage();
      opt.client.method = *v;
    } else if (a == "-d" || a == "--data") {
      if (!(v = value())) return usage();
      opt.client.body = *v;
      if (opt.client.method == "GET") opt.client.method = "POST";
    } else if (a == "--data-file") {
      if (!(v = value())) return usage();
      std::ifstream in(*v, std::ios::binary);
      if (!in) {
        std::fprintf(stderr, "sse-client: cannot read %s\n", v->c_str());
        return 2;
      }
      opt.client.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (opt.client.method == "GET") opt.client.method = "POST";
    } else if (a == "--cacert") {
      if (!(v = value())) return usage();
      opt.ca_file = *v;
    } else if (a == "-k" || a == "--insecure") {
      opt.insecure = true;
    } else if (a == "--proxy") {
      if (!(v = value())) return usage();
      opt.proxy = *v;
    } else if (a == "--connect-timeout" || a == "--read-timeout" || a == "--idle-timeout") {
      std::optional<std::chrono::milliseconds> t;
      if (!(v = value()) || !(t = seconds(*v))) return usage();
      (a == "--connect-timeout" ? opt.connect_timeout : opt.read_timeout) = *t;
    } else if (a == "--no-reconnect") {
      opt.reconnect = false;
      opt.client.reconnect_on_end = false;
    } else if (a == "--policy") {
      if (!(v = value())) return usage();
      if (*v == "browser") opt.client.policy = ssepp::RetryPolicy::browser;
      else if (*v == "api") opt.client.policy = ssepp::RetryPolicy::api;
      else return usage();
    } else if (a == "--compressed") {
#if defined(SSE_CLIENT_COMPRESSED)
      ssepp::asio::accept_compressed(opt);
#else
      std::fprintf(stderr, "sse-client: built without zlib: --compressed is not available\n");
      return 2;
#endif
    } else if (a == "--last-event-id") {
      if (!(v = value())) return usage();
      opt.client.last_event_id = *v;
    } else if (a == "--max-events") {
      if (!(v = value())) return usage();
      char* end = nullptr;
      max_events = std::strtol(v->c_str(), &end, 10);
      if (end == v->c_str() || *end != '\0' || max_events < 0) return usage();
    } else if (!url && (a.empty() || a.front() != '-')) {
      url = a;
    } else {
      return usage();
    }
  }
  if (!url) return usage();
  // A body without a Content-Type is sent as JSON (what SSE APIs take), as curl's --json does.
  if (!opt.client.body.empty()) {
    bool typed = false;
    for (const auto& h : opt.client.headers)
      typed = typed || ssepp::detail::ascii_iequals(h.first, "Content-Type");
    if (!typed) opt.client.headers.emplace_back("Content-Type", "application/json");
  }
  opt.client.url = *url;

  boost::asio::io_context ioc;
  auto made = ssepp::asio::EventClient::create(ioc.get_executor(), opt);
  if (!made) {
    std::fprintf(stderr, "sse-client: %s: %s\n",
                 made.error() == ssepp::errc::invalid_url ? "invalid URL" : "cannot start",
                 made.error().message().c_str());
    return 2;
  }
  auto client = *made;
  if (max_events == 0) return 0;

  long events = 0;
  int status = 0;
  ssepp::asio::EventHandlers h;
  h.on_event = [&](const ssepp::EventView& ev) {
    nlohmann::ordered_json j;
    j["event"] = std::string(ev.type);
    j["data"] = std::string(ev.data);
    j["id"] = std::string(ev.id);
    std::printf("%s\n", print_json(j).c_str());
    std::fflush(stdout);
    if (max_events >= 0 && ++events >= max_events) client->close();
  };
  h.on_retry = [](std::chrono::milliseconds ms) {
    nlohmann::ordered_json j;
    j["retry"] = ms.count();
    std::printf("%s\n", print_json(j).c_str());
    std::fflush(stdout);
  };
  h.on_open = [](const ssepp::Url& u) {
    std::fprintf(stderr, "sse-client: connected to %s\n", u.str().c_str());
  };
  h.on_reconnect = [&](std::chrono::milliseconds delay, std::error_code why) {
    std::fprintf(stderr, "sse-client: %s; reconnecting in %lld ms (Last-Event-ID: %s)\n",
                 why ? why.message().c_str() : "disconnected", static_cast<long long>(delay.count()),
                 std::string(client->client().last_event_id()).c_str());
  };
  h.on_close = [&](std::error_code ec) {
    if (!ec) return;
    status = 1;
    const ssepp::Client& c = client->client();
    std::string why = ec.message();
    if (ec == ssepp::errc::retries_exhausted && client->last_error())
      why += " (last: " + client->last_error().message() + ")";
    if (c.status() != 0 && c.status() != 200 &&
        (ec == ssepp::errc::bad_status || ec == ssepp::errc::bad_content_type))
      why = "HTTP " + std::to_string(c.status()) + ": " + why;
    else if (ec == ssepp::errc::bad_content_type)
      why = "HTTP 200: " + why;
    std::fprintf(stderr, "sse-client: %s\n", why.c_str());
    if (!c.error_body().empty())
      std::fprintf(stderr, "%.*s%s\n", static_cast<int>(c.error_body().size()), c.error_body().data(),
                   c.error_body_truncated() ? "…" : "");
  };

  boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) client->close();
  });
  h.on_close = [inner = std::move(h.on_close), &signals](std::error_code ec) {
    inner(ec);
    boost::system::error_code ignored;
    signals.cancel(ignored);
  };
  client->start(std::move(h));
  ioc.run();
  return status;
}
