// The demo's application: sessions, the HTTP API, the simulated feeds and the metrics. It writes
// no socket: server.cpp hands it requests and gets responses back, and hands event streams to the
// `ssepp::asio::EventStreams` this class owns (configured by `serve_options()`, in app.cpp).
#pragma once

#include <ssepp/asio/serve.hpp>
#include <ssepp/broadcaster.hpp>
#include <ssepp/cors.hpp>
#include <ssepp/http.hpp>
#include <ssepp/mailbox.hpp>
#include <ssepp/redis/options.hpp>  // RedisEndpoint (needs no hiredis)
#if SSEPP_DEMO_REDIS
#include <ssepp/redis.hpp>
#endif

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace demo {

using Clock = std::chrono::steady_clock;

/// Command-line settings.
struct Options {
  std::string host = "127.0.0.1";
  unsigned short port = 8080;
  unsigned threads = 1;
  std::size_t history = 1024;                // events kept for Last-Event-ID replay
  std::chrono::seconds heartbeat{15};        // comment to connections idle this long
  std::chrono::milliseconds retry{2000};     // reconnection hint sent to every stream
  std::chrono::milliseconds ticker{1000};    // simulated price feed period (0: off)
  std::size_t max_connections = 10000;       // sockets open at once (HTTP and streams)
  std::size_t queue_frames = 1024;           // per stream, then the client is cut
  std::size_t queue_bytes = 1u << 20;        // per stream, then the client is cut
  std::chrono::seconds write_timeout{30};    // a write pending this long cuts the client
  std::chrono::seconds request_timeout{30};  // to receive a whole request
  std::size_t body_limit = 64 * 1024;
  std::size_t header_limit = 8 * 1024;
  std::vector<std::string> cors_origins;  // --cors ORIGIN (repeatable), "*" for any
  // --redis HOST:PORT, repeatable: several nodes as one over Redis, one endpoint per shard, in
  // the order given (every node lists the same shards in the same order). Empty: no Redis.
  std::vector<ssepp::RedisEndpoint> redis;
  std::string tls_cert;  // --tls-cert FILE and --tls-key FILE: HTTPS instead of HTTP
  std::string tls_key;
  bool compress = false;  // --compress: gzip/deflate streams (ssepp::compress)
};

/// A request as the HTTP layer parsed it; views into its buffers.
struct Request {
  std::string_view method;
  std::string_view target;
  std::string_view body;
  std::string_view cookie;
  std::string_view authorization;
  std::string_view origin;
  std::optional<std::string_view> last_event_id;
  bool preflight = false;  // OPTIONS with Access-Control-Request-Method
  unsigned version = 11;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

/// A complete response.
struct Response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  Headers headers;
};

/// A stream request the application accepts: whom to connect (user, pools, channels,
/// Last-Event-ID) and what to write first (the `connected` event). The HTTP layer passes both to
/// `EventStreams::serve`.
struct Admission {
  ssepp::ConnectOptions who;
  std::function<void(ssepp::asio::StreamStart&)> on_open;
};

/// Counters of the HTTP layer (shown by /metrics with those of the streams).
struct ServerCounters {
  std::atomic<std::uint64_t> http_open{0};  // connections not (yet) streams
  std::atomic<std::uint64_t> connections_accepted{0};
  std::atomic<std::uint64_t> connections_refused{0};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> bad_requests{0};
};

class App {
 public:
  explicit App(Options opts);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  const Options& options() const noexcept { return opts_; }
  ServerCounters& counters() noexcept { return counters_; }
  /// Every event stream of this process.
  ssepp::asio::EventStreams& streams() noexcept { return streams_; }
  /// Connections open: HTTP ones plus streams.
  std::size_t connections_open() const;

  /// True for a request that opens a stream (GET /events).
  bool is_stream(const Request& req) const;
  /// Every other request.
  Response handle(const Request& req);
  /// Decides on a stream request: whom to connect, or the refusal to answer.
  std::variant<Response, Admission> admit(const Request& req);
  /// Heartbeats, history expiry, the price feed and job progress; call often (every 100 ms).
  void tick(Clock::time_point now);

 private:
  struct Session {
    std::string user;
  };
  struct Job {
    std::string id;
    std::string user;
    int percent = 0;
    Clock::time_point next;
  };
  struct Quote {
    std::string symbol;
    double price;
  };

  /// Every stream setting, in one place.
  ssepp::asio::ServeOptions serve_options();

  // auth.cpp
  Response login(const Request& req);
  Response logout(const Request& req);
  Response me(const Request& req);
  /// The session of the request (Bearer token, else cookie), if any.
  std::optional<std::pair<std::string, Session>> session_of(const Request& req);
  /// Checks that the request's session owns stream `client`; the error response otherwise.
  std::optional<Response> check_owner(const Request& req, std::string_view client_field,
                                      ssepp::ClientId& id, std::string& user);
  /// Whether `user` ("" when anonymous) may join `channel`.
  static bool may_join(std::string_view user, std::string_view channel);
  /// The 403 for a `user:` channel that is not the caller's (counted as a refused join).
  Response refuse_join(std::string_view channel);

  // routes.cpp
  Response route(const Request& req);
  Response change_subscription(const Request& req, bool join);
  Response disconnect(const Request& req);
  Response publish(const Request& req);
  Response start_job(const Request& req);

  /// Every send goes through here: to the local broadcaster, or to the Redis bus (which
  /// delivers on every node, this one included).
  ssepp::SendResult send(const ssepp::Target& target, ssepp::Event ev);

  // feeds.cpp
  void run_feed(Clock::time_point now);
  void run_jobs(Clock::time_point now);

  // metrics.cpp
  Response metrics();

  Options opts_;
  ssepp::Cors cors_;
  ssepp::Broadcaster<ssepp::Mailbox> hub_;
#if SSEPP_DEMO_REDIS
  std::unique_ptr<ssepp::RedisStreamBus<ssepp::Mailbox>> bus_;  // with --redis; before hub_ dies
#endif
  ssepp::asio::EventStreams streams_;
  ServerCounters counters_;
  std::atomic<std::uint64_t> refused_joins_{0};  // 403s for someone else's user: channel

  std::mutex mutex_;  // everything below; never held while calling hub_ or streams_
  std::unordered_map<std::string, Session> sessions_;
  std::deque<std::string> session_order_;
  std::unordered_map<ssepp::ClientId, std::string> owners_;  // stream -> session token
  std::vector<Job> jobs_;
  std::uint64_t next_job_ = 1;
  std::vector<Quote> quotes_;
  Clock::time_point next_quote_{};
  std::mt19937_64 rng_;
};

}  // namespace demo
