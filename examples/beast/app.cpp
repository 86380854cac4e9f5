#include "app.hpp"

#include "page.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace demo {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t max_sessions = 10000;
constexpr std::size_t max_channels_per_stream = 32;
constexpr std::size_t max_jobs_per_user = 3;
constexpr std::size_t max_jobs = 1000;
constexpr int job_step_percent = 5;
constexpr auto job_step = 150ms;
constexpr std::string_view cookie_name = "ssepp_session";

Response json_response(unsigned status, const json& body) {
  Response r;
  r.status = status;
  r.body = body.dump();
  return r;
}

Response error(unsigned status, std::string_view message) {
  return json_response(status, json{{"error", message}});
}

/// 1..32 of [A-Za-z0-9_.-]: user names end up in channel names, pools and JSON.
bool valid_user(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

/// 1..64 of [A-Za-z0-9_.:-].
bool valid_channel(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || c == ':';
  });
}

/// The JSON object of a request body, or the 400 to answer.
std::variant<json, Response> parse_object(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return error(400, "body is not valid JSON");
  if (!j.is_object()) return error(400, "body must be a JSON object");
  return j;
}

/// A string member: nullopt when absent; `bad` set when present but not a string.
std::optional<std::string> string_member(const json& j, const char* name, bool& bad) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) {
    bad = true;
    return std::nullopt;
  }
  return it->get<std::string>();
}

std::optional<ssepp::ClientId> parse_client_id(std::string_view s) {
  ssepp::ClientId id = 0;
  if (s.empty() || s.size() > 20) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
  if (ec != std::errc() || end != s.data() + s.size() || id == 0) return std::nullopt;
  return id;
}

std::string random_token() {
  std::random_device rd;
  std::string out;
  out.reserve(64);
  static constexpr char hex[] = "0123456789abcdef";
  for (int i = 0; i < 8; ++i) {
    auto v = static_cast<std::uint32_t>(rd());
    for (int b = 0; b < 8; ++b) {
      out += hex[v & 0xf];
      v >>= 4;
    }
  }
  return out;
}

/// The value of cookie `name` in a Cookie header ("a=1; ssepp_session=...").
std::string_view cookie_value(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    std::size_t semi = header.find(';');
    std::string_view part = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.size() > name.size() && part.substr(0, name.size()) == name &&
        part[name.size()] == '=')
      return part.substr(name.size() + 1);
  }
  return {};
}

}  // namespace

App::App(Options opts)
    : opts_(std::move(opts)),
      cors_(ssepp::CorsOptions{opts_.cors_origins, true}),
      hub_([&] {
        ssepp::BroadcasterOptions b;
        b.history_size = opts_.history;
        b.heartbeat = std::chrono::duration_cast<std::chrono::milliseconds>(opts_.heartbeat);
#if SSEPP_DEMO_REDIS
        if (opts_.redis_host) {
          b.id_order = ssepp::shard_position_order;             // ids: positions per shard
          b.first_client_id = ssepp::cluster_client_id_base();  // unique in the cluster
        }
#endif
        return b;
      }()),
      rng_(std::random_device{}()) {
  for (auto [symbol, price] : {std::pair{"AAPL", 189.5},
                               {"MSFT", 415.2},
                               {"GOOG", 152.8},
                               {"AMZN", 178.3},
                               {"NVDA", 880.1},
                               {"TSLA", 175.6}})
    quotes_.push_back({symbol, price});
  // Defence in depth: the broadcaster refuses a `user:<name>` channel to anyone but <name>.
  hub_.set_authorizer([](const ssepp::ClientInfo& who, std::string_view channel) {
    return may_join(who.user, channel);
  });
#if SSEPP_DEMO_REDIS
  if (opts_.redis_host) {
    ssepp::RedisOptions r;
    r.host = *opts_.redis_host;
    r.port = opts_.redis_port;
    r.on_log = [](std::string_view line) {
      std::fprintf(stderr, "ssepp-demo: %.*s\n", static_cast<int>(line.size()), line.data());
    };
    bus_ = std::make_unique<ssepp::RedisStreamBus<ssepp::Mailbox>>(hub_, std::move(r));
    bus_->start();
  }
#endif
}

App::~App() {
#if SSEPP_DEMO_REDIS
  if (bus_) bus_->stop();
#endif
}

ssepp::SendResult App::send(const ssepp::Target& target, ssepp::Event ev) {
#if SSEPP_DEMO_REDIS
  if (bus_) return bus_->send(target, std::move(ev));
#endif
  return hub_.send(target, std::move(ev));
}

bool App::may_join(std::string_view user, std::string_view channel) {
  constexpr std::string_view prefix = "user:";
  if (channel.substr(0, prefix.size()) != prefix) return true;
  return !user.empty() && channel.substr(prefix.size()) == user;
}

bool App::is_stream(const Request& req) const {
  return req.method == "GET" && ssepp::target_path(req.target) == "/events";
}

Response App::handle(const Request& req) {
  Response res = [&]() -> Response {
    const std::string_view path = ssepp::target_path(req.target);
    const std::string_view m = req.method;
    if (m == "OPTIONS") {
      Response r;
      r.status = 204;
      r.content_type.clear();
      if (req.preflight)
        for (const auto& h : cors_.preflight_headers(req.origin))
          r.headers.emplace_back(h.name, h.value);
      return r;
    }
    auto only = [&](std::string_view method) { return m == method; };
    if (path == "/") {
      if (!only("GET")) return error(405, "use GET");
      Response r;
      r.content_type = "text/html; charset=utf-8";
      r.body.assign(page_html());
      r.headers.emplace_back("Cache-Control", "no-store");
      return r;
    }
    if (path == "/health") {
      if (!only("GET")) return error(405, "use GET");
      return json_response(200, json{{"status", "ok"}});
    }
    if (path == "/metrics") {
      if (!only("GET")) return error(405, "use GET");
      return metrics();
    }
    if (path == "/me") {
      if (!only("GET")) return error(405, "use GET");
      return me(req);
    }
    if (path == "/favicon.ico") {
      Response r;
      r.status = 204;
      r.content_type.clear();
      return r;
    }
    if (path == "/events") return error(405, "use GET");
    if (path == "/login") return only("POST") ? login(req) : error(405, "use POST");
    if (path == "/subscribe")
      return only("POST") ? change_subscription(req, true) : error(405, "use POST");
    if (path == "/unsubscribe")
      return only("POST") ? change_subscription(req, false) : error(405, "use POST");
    if (path == "/disconnect") return only("POST") ? disconnect(req) : error(405, "use POST");
    if (path == "/publish") return only("POST") ? publish(req) : error(405, "use POST");
    if (path == "/jobs") return only("POST") ? start_job(req) : error(405, "use POST");
    return error(404, "no such endpoint");
  }();
  if (res.status >= 400) counters_.bad_requests.fetch_add(1, std::memory_order_relaxed);
  if (!req.preflight)
    for (const auto& h : cors_.headers(req.origin)) res.headers.emplace_back(h.name, h.value);
  return res;
}

std::optional<std::pair<std::string, App::Session>> App::session_of(const Request& req) {
  std::string_view token;
  constexpr std::string_view bearer = "Bearer ";
  if (req.authorization.substr(0, bearer.size()) == bearer)
    token = req.authorization.substr(bearer.size());
  else
    token = cookie_value(req.cookie, cookie_name);
  if (token.empty() || token.size() > 128) return std::nullopt;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = sessions_.find(std::string(token));
  if (it == sessions_.end()) return std::nullopt;
  return std::pair{it->first, it->second};
}

Response App::login(const Request& req) {
  auto parsed = parse_object(req.body);
  if (auto* r = std::get_if<Response>(&parsed)) return std::move(*r);
  const json& j = std::get<json>(parsed);
  bool bad = false;
  auto user = string_member(j, "user", bad);
  if (bad || !user || !valid_user(*user))
    return error(400, "user must be 1 to 32 characters of A-Z a-z 0-9 _ . -");
  std::string token = random_token();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (sessions_.size() >= max_sessions && !session_order_.empty()) {
      sessions_.erase(session_order_.front());
      session_order_.pop_front();
    }
    sessions_[token] = Session{*user};
    session_order_.push_back(token);
  }
  Response r = json_response(200, json{{"user", *user}, {"token", token}});
  r.headers.emplace_back("Set-Cookie", std::string(cookie_name) + "=" + token +
                                           "; Path=/; HttpOnly; SameSite=Strict; Max-Age=86400");
  return r;
}

Response App::me(const Request& req) {
  auto s = session_of(req);
  return json_response(200, json{{"user", s ? json(s->second.user) : json(nullptr)}});
}

std::optional<Response> App::check_owner(const Request& req, std::string_view client_field,
                                         ssepp::ClientId& id, std::string& user) {
  auto s = session_of(req);
  if (!s)
    return error(401, "log in first (POST /login): only a stream's own session may change it");
  auto parsed = parse_client_id(client_field);
  if (!parsed) return error(400, "client must be the id from the connected event");
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = owners_.find(*parsed);
  // Unknown and someone else's look the same: a guessed id learns nothing.
  if (it == owners_.end() || it->second != s->first)
    return error(404, "no such client in this session");
  id = *parsed;
  user = s->second.user;
  return std::nullopt;
}

Response App::change_subscription(const Request& req, bool join) {
  auto parsed = parse_object(req.body);
  if (auto* r = std::get_if<Response>(&parsed)) return std::move(*r);
  const json& j = std::get<json>(parsed);
  bool bad = false;
  auto client = string_member(j, "client", bad);
  auto channel = string_member(j, "channel", bad);
  if (bad || !client || !channel)
    return error(400, "need {\"client\": \"<id>\", \"channel\": \"<name>\"}");
  if (!valid_channel(*channel))
    return error(400, "channel must be 1 to 64 characters of A-Z a-z 0-9 _ . : -");
  ssepp::ClientId id = 0;
  std::string user;
  if (auto refused = check_owner(req, *client, id, user)) return std::move(*refused);
  if (join && !may_join(user, *channel)) return error(403, "channel " + *channel + " is not yours");
  if (join) {
    auto info = hub_.client(id);
    if (info && info->channels.size() >= max_channels_per_stream &&
        std::find(info->channels.begin(), info->channels.end(), *channel) == info->channels.end())
      return error(400, "too many channels on this stream");
  }
#if SSEPP_DEMO_REDIS
  // Through the bus, so that this node reads the channel's stream while a client is on it.
  std::error_code ec = (bus_ ? (join ? bus_->join(id, *channel) : bus_->leave(id, *channel))
                             : (join ? hub_.join(id, *channel) : hub_.leave(id, *channel)))
                           .error();
#else
  std::error_code ec = (join ? hub_.join(id, *channel) : hub_.leave(id, *channel)).error();
#endif
  if (ec == ssepp::errc::join_refused) return error(403, "channel " + *channel + " is not yours");
  if (ec == ssepp::errc::unknown_client) return error(404, "no such client in this session");
  if (ec) return error(400, ec.message());
  auto info = hub_.client(id);
  return json_response(
      200, json{{"client", *client}, {"channels", info ? json(info->channels) : json::array()}});
}

Response App::disconnect(const Request& req) {
  auto parsed = parse_object(req.body);
  if (auto* r = std::get_if<Response>(&parsed)) return std::move(*r);
  bool bad = false;
  auto client = string_member(std::get<json>(parsed), "client", bad);
  if (bad || !client) return error(400, "need {\"client\": \"<id>\"}");
  ssepp::ClientId id = 0;
  std::string user;
  if (auto refused = check_owner(req, *client, id, user)) return std::move(*refused);
  (void)hub_.disconnect(id);  // closes the mailbox: the connection ends, the client reconnects
  return json_response(200, json{{"client", *client}, {"disconnected", true}});
}

Response App::publish(const Request& req) {
  auto parsed = parse_object(req.body);
  if (auto* r = std::get_if<Response>(&parsed)) return std::move(*r);
  const json& j = std::get<json>(parsed);
  bool bad = false;
  auto channel = string_member(j, "channel", bad);
  auto user = string_member(j, "user", bad);
  auto pool = string_member(j, "pool", bad);
  auto client = string_member(j, "client", bad);
  auto type = string_member(j, "event", bad);
  auto id = string_member(j, "id", bad);
  if (bad) return error(400, "channel, user, pool, client, event and id must be strings");
  int targets = !!channel + !!user + !!pool + !!client;
  if (targets > 1) return error(400, "give at most one of channel, user, pool, client");

  ssepp::Event ev;
  auto data = j.find("data");
  if (data == j.end()) return error(400, "data is required (a string, or any JSON value)");
  ev.data = data->is_string() ? data->get<std::string>() : data->dump();
  if (type) ev.type = *type;
  if (id) ev.id = *id;
  if (auto valid = ssepp::validate(ev); !valid)
    return error(400, "invalid event: " + valid.error().message());
  // Clients send the id back as Last-Event-ID, which open_stream refuses past 1 KiB: a longer id
  // would leave every client that received it unable to reconnect.
  if (ev.id && ev.id->size() > ssepp::default_max_last_event_id)
    return error(400, "invalid event: id longer than 1024 bytes");

  ssepp::Target target = ssepp::Target::all();
  if (channel) {
    if (!valid_channel(*channel)) return error(400, "invalid channel name");
    target = ssepp::Target::channel(*channel);
  } else if (user) {
    if (!valid_user(*user)) return error(400, "invalid user name");
    target = ssepp::Target::user(*user);
  } else if (pool) {
    if (!valid_channel(*pool)) return error(400, "invalid pool name");
    target = ssepp::Target::pool(*pool);
  } else if (client) {
    auto cid = parse_client_id(*client);
    if (!cid) return error(400, "client must be a stream id");
    target = ssepp::Target::client(*cid);
  }
  ssepp::SendResult sent = send(target, std::move(ev));
  if (sent.error() == ssepp::errc::bus_unavailable)
    return error(503, "not sent: " + sent.error().message());
  if (!sent) return error(400, "not sent: " + sent.error().message());
  // With --redis, delivery happens when each node reads the entry back: "delivered" is 0 here.
  return json_response(202, json{{"id", sent->id.empty() ? json(nullptr) : json(sent->id)},
                                 {"delivered", sent->delivered}});
}

Response App::start_job(const Request& req) {
  auto s = session_of(req);
  if (!s) return error(401, "log in first (POST /login): job progress goes to your user");
  std::lock_guard<std::mutex> lock(mutex_);
  auto mine = std::count_if(jobs_.begin(), jobs_.end(),
                            [&](const Job& job) { return job.user == s->second.user; });
  if (static_cast<std::size_t>(mine) >= max_jobs_per_user || jobs_.size() >= max_jobs)
    return error(429, "too many jobs running");
  Job job{"job-" + std::to_string(next_job_++), s->second.user, 0, Clock::now() + job_step};
  json body{{"job", job.id}};
  jobs_.push_back(std::move(job));
  return json_response(202, body);
}

std::variant<Response, StreamStart> App::open_stream(const Request& req,
                                                     const ssepp::Mailbox& mailbox) {
  auto refuse = [&](unsigned status, std::string_view message) {
    counters_.bad_requests.fetch_add(1, std::memory_order_relaxed);
    Response r = error(status, message);
    for (const auto& h : cors_.headers(req.origin)) r.headers.emplace_back(h.name, h.value);
    return r;
  };
  auto last_id = ssepp::last_event_id(req.last_event_id, req.target);
  if (!last_id) return refuse(400, "invalid Last-Event-ID");
  auto [channels, too_many] =
      ssepp::query_parameters(req.target, "channel", max_channels_per_stream);
  if (too_many) return refuse(400, "too many channels");
  for (const auto& c : channels)
    if (!valid_channel(c))
      return refuse(400, "channel must be 1 to 64 characters of A-Z a-z 0-9 _ . : -");
  std::sort(channels.begin(), channels.end());
  channels.erase(std::unique(channels.begin(), channels.end()), channels.end());

  auto session = session_of(req);
  std::string user = session ? session->second.user : std::string();
  for (const auto& c : channels)
    if (!may_join(user, c)) return refuse(403, "channel " + c + " is not yours");

  ssepp::ConnectOptions co;
  co.user = user;
  co.pools = {session ? "users" : "guests"};
  co.channels = std::move(channels);
  co.last_event_id = std::move(*last_id);
#if SSEPP_DEMO_REDIS
  // Through the bus, a Last-Event-ID older than this node's history is replayed from Redis.
  ssepp::ConnectResult result =
      bus_ ? bus_->connect(mailbox, std::move(co)) : hub_.connect(mailbox, std::move(co));
#else
  ssepp::ConnectResult result = hub_.connect(mailbox, std::move(co));
#endif
  if (!result)
    return refuse(503, result.error() == ssepp::errc::sink_failed
                           ? "the replay does not fit this stream's queue; reconnect without "
                             "Last-Event-ID"
                           : "not connected: " + result.error().message());
  if (session) {
    std::lock_guard<std::mutex> lock(mutex_);
    owners_[result->id] = session->first;
  }

  StreamStart start;
  start.client = result->id;
  for (const auto& h : cors_.headers(req.origin)) start.headers.emplace_back(h.name, h.value);
  ssepp::PreambleOptions pre;
  pre.retry = opts_.retry;
  ssepp::preamble_to(start.first_bytes, pre);
  json hello{{"client", std::to_string(result->id)},
             {"user", session ? json(user) : json(nullptr)},
             {"replay", std::string(ssepp::to_string(result->replay))},
             {"replayed", result->replayed}};
  ssepp::encode_to(start.first_bytes,
                   ssepp::Event{}.with_type("connected").with_data(hello.dump()))
      .value();  // a valid event: cannot fail
  counters_.streams_open.fetch_add(1, std::memory_order_relaxed);
  return start;
}

void App::close_stream(ssepp::ClientId id) {
  (void)hub_.disconnect(id);
  std::lock_guard<std::mutex> lock(mutex_);
  owners_.erase(id);
  counters_.streams_open.fetch_sub(1, std::memory_order_relaxed);
}

void App::tick(Clock::time_point now) {
  hub_.tick(now);
  run_feed(now);
  run_jobs(now);
}

void App::run_feed(Clock::time_point now) {
  if (opts_.ticker.count() <= 0) return;
  std::vector<std::pair<std::string, std::string>> updates;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (now < next_quote_) return;
    next_quote_ =
        next_quote_ == Clock::time_point{} ? now + opts_.ticker : next_quote_ + opts_.ticker;
    if (next_quote_ < now) next_quote_ = now + opts_.ticker;
    std::normal_distribution<double> step(0.0, 0.004);
    for (auto& q : quotes_) {
      double before = q.price;
      q.price = std::max(1.0, std::round(q.price * (1.0 + step(rng_)) * 100.0) / 100.0);
      json data{{"symbol", q.symbol},
                {"price", q.price},
                {"change", std::round((q.price - before) * 100.0) / 100.0}};
      updates.emplace_back("ticker:" + q.symbol, data.dump());
    }
  }
  for (auto& [channel, data] : updates)
    (void)send(ssepp::Target::channel(std::move(channel)),
         ssepp::Event{}.with_type("price").with_data(std::move(data)));
}

void App::run_jobs(Clock::time_point now) {
  std::vector<std::pair<std::string, std::string>> updates;  // user, data
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& job : jobs_) {
      if (now < job.next) continue;
      job.percent = std::min(100, job.percent + job_step_percent);
      job.next = now + job_step;
      json data{{"job", job.id}, {"percent", job.percent}, {"done", job.percent >= 100}};
      updates.emplace_back(job.user, data.dump());
    }
    jobs_.erase(std::remove_if(jobs_.begin(), jobs_.end(),
                               [](const Job& job) { return job.percent >= 100; }),
                jobs_.end());
  }
  for (auto& [user, data] : updates)
    (void)send(ssepp::Target::user(user),
         ssepp::Event{}.with_type("progress").with_data(std::move(data)));
}

Response App::metrics() {
  Response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  // Prometheus text format, built in one stack-first buffer (17 significant digits: every
  // counter below 2^53 prints as the integer it is).
  fmt::memory_buffer out;
  auto metric = [&](std::string_view name, std::string_view type, std::string_view help,
                    double value) {
    fmt::format_to(fmt::appender(out), "# HELP {0} {2}\n# TYPE {0} {1}\n{0} {3:.17g}\n", name, type,
                   help, value);
  };
  const auto st = hub_.stats();
  metric("ssepp_clients", "gauge", "Connected stream clients.", static_cast<double>(st.clients));
  metric("ssepp_pools", "gauge", "Pools with members (user pools included).",
         static_cast<double>(st.pools));
  metric("ssepp_channels", "gauge", "Channels with members.", static_cast<double>(st.channels));
  metric("ssepp_history_events", "gauge", "Events kept for Last-Event-ID replay.",
         static_cast<double>(st.history));
  metric("ssepp_connects_total", "counter", "Clients connected.", static_cast<double>(st.connects));
  metric("ssepp_disconnects_total", "counter", "Clients removed, for any reason.",
         static_cast<double>(st.disconnects));
  metric("ssepp_drops_total", "counter", "Clients removed because their sink failed (queue full).",
         static_cast<double>(st.drops));
  metric("ssepp_sends_total", "counter", "Events sent (each once, whatever its audience).",
         static_cast<double>(st.sends));
  metric("ssepp_frames_total", "counter", "Frames handed to clients.",
         static_cast<double>(st.frames));
  metric("ssepp_bytes_total", "counter", "Bytes of those frames.", static_cast<double>(st.bytes));
  metric("ssepp_heartbeats_total", "counter", "Heartbeat frames sent.",
         static_cast<double>(st.heartbeats));
  metric("ssepp_replays_total", "counter", "Reconnections whose Last-Event-ID was found.",
         static_cast<double>(st.replays));
  metric("ssepp_replayed_frames_total", "counter", "Events replayed to reconnecting clients.",
         static_cast<double>(st.replayed_frames));
  metric("ssepp_replay_misses_total", "counter",
         "Reconnections whose Last-Event-ID was unknown or too old.",
         static_cast<double>(st.replay_misses));
  metric("ssepp_refused_joins_total", "counter", "Channel joins refused.",
         static_cast<double>(st.refused_joins));
#if SSEPP_DEMO_REDIS
  if (bus_) {
    const auto rs = bus_->stats();
    metric("ssepp_redis_connected", "gauge", "1 while the Redis reader is connected.",
           rs.connected ? 1 : 0);
    metric("ssepp_redis_published_total", "counter", "Sends appended to the Redis stream.",
           static_cast<double>(rs.published));
    metric("ssepp_redis_publish_errors_total", "counter", "Sends refused: Redis unreachable.",
           static_cast<double>(rs.publish_errors));
    metric("ssepp_redis_received_total", "counter", "Entries read from the Redis stream.",
           static_cast<double>(rs.received));
    metric("ssepp_redis_reconnects_total", "counter", "Reconnections of the Redis reader.",
           static_cast<double>(rs.reconnects));
    metric("ssepp_redis_replays_total", "counter", "Resumptions replayed from Redis.",
           static_cast<double>(rs.redis_replays));
  }
#endif
  auto& c = counters_;
  auto load = [](const std::atomic<std::uint64_t>& a) { return static_cast<double>(a.load()); };
  metric("ssepp_demo_connections_open", "gauge", "TCP connections open.", load(c.connections_open));
  metric("ssepp_demo_connections_accepted_total", "counter", "TCP connections accepted.",
         load(c.connections_accepted));
  metric("ssepp_demo_connections_refused_total", "counter", "TCP connections refused (limit).",
         load(c.connections_refused));
  metric("ssepp_demo_requests_total", "counter", "HTTP requests handled.", load(c.requests));
  metric("ssepp_demo_bad_requests_total", "counter", "Requests answered with 4xx.",
         load(c.bad_requests));
  metric("ssepp_demo_streams_open", "gauge", "Event streams open.", load(c.streams_open));
  metric("ssepp_demo_streams_cut_total", "counter",
         "Streams cut (queue overflow or write timeout).", load(c.streams_cut));
  metric("ssepp_demo_writes_total", "counter", "Socket writes carrying stream frames.",
         load(c.writes));
  metric("ssepp_demo_frames_written_total", "counter", "Stream frames written to sockets.",
         load(c.frames_written));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    metric("ssepp_demo_sessions", "gauge", "Login sessions.",
           static_cast<double>(sessions_.size()));
    metric("ssepp_demo_jobs_running", "gauge", "Simulated jobs running.",
           static_cast<double>(jobs_.size()));
  }
  r.body = fmt::to_string(out);
  return r;
}

}  // namespace demo
