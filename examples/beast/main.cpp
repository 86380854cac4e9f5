// ssepp-demo: a Server-Sent Events demo server on Boost.Beast and ssepp::asio. See docs/demo.md for its
// endpoints, and `ssepp-demo --help` for its flags.
#include "app.hpp"
#include "server.hpp"

#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace {

const char* usage =
    "usage: ssepp-demo [options]\n"
    "  --host ADDR            address to listen on (default 127.0.0.1)\n"
    "  --port N               port (default 8080; 0 picks a free one)\n"
    "  --threads N            io_context threads (default 1)\n"
    "  --history N            events kept for Last-Event-ID replay (default 1024)\n"
    "  --heartbeat S          comment to streams idle S seconds (default 15)\n"
    "  --retry MS             reconnection delay hint sent to clients (default 2000)\n"
    "  --ticker MS            simulated price feed period, 0 for none (default 1000)\n"
    "  --max-connections N    sockets open at once (default 10000)\n"
    "  --queue-bytes N        bytes queued per stream before it is cut (default 1048576)\n"
    "  --queue-frames N       frames queued per stream before it is cut (default 1024)\n"
    "  --write-timeout S      a stream write pending S seconds cuts it (default 30)\n"
    "  --request-timeout S    time to receive a whole request (default 30)\n"
    "  --cors ORIGIN          allow cross-origin requests from ORIGIN (repeatable; * for any,\n"
    "                         without credentials)\n"
    "  --redis HOST:PORT      share events with other nodes through Redis; repeat it to spread\n"
    "                         the streams over several Redis instances (shards): every node must\n"
    "                         list the same shards in the same order\n"
    "  --tls-cert FILE        serve HTTPS: the certificate chain (PEM); needs --tls-key\n"
    "  --tls-key FILE         the private key (PEM) of --tls-cert\n"
    "  --compress             gzip/deflate each stream whose client accepts it (one flush per\n"
    "                         batch: nothing held back)\n";

template <class T>
bool number(std::string_view s, T& out, T min, T max) {
  T v{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < min || v > max) return false;
  out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  demo::Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::fputs(usage, stdout);
      return 0;
    }
    if (flag == "--compress") {
#if SSEPP_DEMO_COMPRESS
      o.compress = true;
      continue;
#else
      std::fprintf(stderr, "ssepp-demo: built without zlib, --compress is not available\n");
      return 2;
#endif
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "ssepp-demo: %s needs a value\n%s", argv[i], usage);
      return 2;
    }
    std::string_view v = argv[++i];
    bool ok = true;
    unsigned long long n = 0;
    if (flag == "--host") {
      o.host = std::string(v);
    } else if (flag == "--port") {
      ok = number<unsigned long long>(v, n, 0, 65535);
      o.port = static_cast<unsigned short>(n);
    } else if (flag == "--threads") {
      ok = number<unsigned long long>(v, n, 1, 64);
      o.threads = static_cast<unsigned>(n);
    } else if (flag == "--history") {
      ok = number<unsigned long long>(v, n, 0, 10'000'000);
      o.history = static_cast<std::size_t>(n);
    } else if (flag == "--heartbeat") {
      ok = number<unsigned long long>(v, n, 1, 3600);
      o.heartbeat = std::chrono::seconds(n);
    } else if (flag == "--retry") {
      ok = number<unsigned long long>(v, n, 0, 3'600'000);
      o.retry = std::chrono::milliseconds(n);
    } else if (flag == "--ticker") {
      ok = number<unsigned long long>(v, n, 0, 3'600'000);
      o.ticker = std::chrono::milliseconds(n);
    } else if (flag == "--max-connections") {
      ok = number<unsigned long long>(v, n, 1, 1'000'000);
      o.max_connections = static_cast<std::size_t>(n);
    } else if (flag == "--queue-bytes") {
      ok = number<unsigned long long>(v, n, 1024, 1ull << 32);
      o.queue_bytes = static_cast<std::size_t>(n);
    } else if (flag == "--queue-frames") {
      ok = number<unsigned long long>(v, n, 1, 1'000'000);
      o.queue_frames = static_cast<std::size_t>(n);
    } else if (flag == "--write-timeout") {
      ok = number<unsigned long long>(v, n, 1, 3600);
      o.write_timeout = std::chrono::seconds(n);
    } else if (flag == "--request-timeout") {
      ok = number<unsigned long long>(v, n, 1, 3600);
      o.request_timeout = std::chrono::seconds(n);
    } else if (flag == "--cors") {
      o.cors_origins.emplace_back(v);
    } else if (flag == "--tls-cert") {
      o.tls_cert = std::string(v);
      ok = !v.empty();
    } else if (flag == "--tls-key") {
      o.tls_key = std::string(v);
      ok = !v.empty();
    } else if (flag == "--redis") {
      auto colon = v.rfind(':');
      unsigned long long redis_port = 0;
      ok = colon != std::string_view::npos && colon > 0 &&
           number<unsigned long long>(v.substr(colon + 1), redis_port, 1, 65535) &&
           v.substr(0, colon).find_first_of("\"\\ \t\r\n") == std::string_view::npos;
      ssepp::RedisEndpoint shard{std::string(v.substr(0, colon)), static_cast<int>(redis_port)};
      for (const auto& e : o.redis)
        if (e.host == shard.host && e.port == shard.port) ok = false;  // one shard per instance
      if (ok) o.redis.push_back(std::move(shard));
    } else {
      std::fprintf(stderr, "ssepp-demo: unknown option %s\n%s", argv[i - 1], usage);
      return 2;
    }
    if (!ok) {
      std::fprintf(stderr, "ssepp-demo: bad value for %.*s: %.*s\n", static_cast<int>(flag.size()),
                   flag.data(), static_cast<int>(v.size()), v.data());
      return 2;
    }
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    std::fprintf(stderr, "ssepp-demo: --tls-cert and --tls-key go together\n%s", usage);
    return 2;
  }
#if !SSEPP_DEMO_REDIS
  if (!o.redis.empty()) {
    std::fprintf(stderr,
                 "ssepp-demo: --redis needs a build with hiredis (Debian libhiredis-dev)\n");
    return 2;
  }
#endif
  demo::App app(std::move(o));
  return demo::serve(app);
}
