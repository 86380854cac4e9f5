// The HTTP API: which path does what, and the handlers that change streams or send events.
#include "api.hpp"
#include "page.hpp"

#include <algorithm>

namespace demo {

namespace {

constexpr std::size_t max_channels_per_stream = 32;
constexpr std::size_t max_jobs_per_user = 3;
constexpr std::size_t max_jobs = 1000;
constexpr auto job_step = std::chrono::milliseconds(150);

}  // namespace

bool App::is_stream(const Request& req) const {
  return req.method == "GET" && ssepp::target_path(req.target) == "/events";
}

Response App::handle(const Request& req) {
  Response res = route(req);
  if (res.status >= 400) counters_.bad_requests.fetch_add(1, std::memory_order_relaxed);
  if (!req.preflight)
    for (const auto& h : cors_.headers(req.origin)) res.headers.emplace_back(h.name, h.value);
  return res;
}

Response App::route(const Request& req) {
  const std::string_view path = ssepp::target_path(req.target);
  const std::string_view m = req.method;
  if (m == "OPTIONS") {
    Response r;
    r.status = 204;
    r.content_type.clear();
    if (req.preflight)
      for (const auto& h : cors_.preflight_headers(req.origin)) r.headers.emplace_back(h.name, h.value);
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
  if (path == "/logout") return only("POST") ? logout(req) : error(405, "use POST");
  if (path == "/subscribe")
    return only("POST") ? change_subscription(req, true) : error(405, "use POST");
  if (path == "/unsubscribe")
    return only("POST") ? change_subscription(req, false) : error(405, "use POST");
  if (path == "/disconnect") return only("POST") ? disconnect(req) : error(405, "use POST");
  if (path == "/publish") return only("POST") ? publish(req) : error(405, "use POST");
  if (path == "/jobs") return only("POST") ? start_job(req) : error(405, "use POST");
  return error(404, "no such endpoint");
}

std::variant<Response, Admission> App::admit(const Request& req) {
  auto refuse = [&](Response r) {
    counters_.bad_requests.fetch_add(1, std::memory_order_relaxed);
    for (const auto& h : cors_.headers(req.origin)) r.headers.emplace_back(h.name, h.value);
    return r;
  };
  auto last_id = ssepp::last_event_id(req.last_event_id, req.target);
  if (!last_id) return refuse(error(400, "invalid Last-Event-ID"));
  auto [channels, too_many] =
      ssepp::query_parameters(req.target, "channel", max_channels_per_stream);
  if (too_many) return refuse(error(400, "too many channels"));
  for (const auto& c : channels)
    if (!valid_channel(c))
      return refuse(error(400, "channel must be 1 to 64 characters of A-Z a-z 0-9 _ . : -"));
  std::sort(channels.begin(), channels.end());
  channels.erase(std::unique(channels.begin(), channels.end()), channels.end());

  auto session = session_of(req);
  std::string user = session ? session->second.user : std::string();
  for (const auto& c : channels)
    if (!may_join(user, c)) return refuse(refuse_join(c));

  Admission a;
  a.who.user = user;
  a.who.pools = {session ? "users" : "guests"};
  a.who.channels = std::move(channels);
  a.who.last_event_id = std::move(*last_id);
  // Runs once connected, before anything is written: the owner is known before the client can
  // learn its id, and the connected event goes first.
  a.on_open = [this, token = session ? session->first : std::string(),
               user = session ? json(user) : json(nullptr)](ssepp::asio::StreamStart& s) {
    if (!token.empty()) {
      std::lock_guard<std::mutex> lock(mutex_);
      owners_[s.id] = token;
    }
    json hello{{"client", std::to_string(s.id)},
               {"user", user},
               {"replay", std::string(ssepp::to_string(s.replay))},
               {"replayed", s.replayed}};
    ssepp::encode_to(s.first, ssepp::Event{}.with_type("connected").with_data(hello.dump()))
        .value();  // a valid event: cannot fail
  };
  return a;
}

Response App::change_subscription(const Request& req, bool join) {
  auto parsed = parse_object(req.body);
  if (auto* r = std::get_if<Response>(&parsed)) return std::move(*r);
  const json& j = std::get<json>(parsed);
  bool bad = false;
  auto client = client_member(j, "client", bad);
  auto channel = string_member(j, "channel", bad);
  if (bad || !client || !channel)
    return error(400, "need {\"client\": \"<id>\", \"channel\": \"<name>\"}");
  if (!valid_channel(*channel))
    return error(400, "channel must be 1 to 64 characters of A-Z a-z 0-9 _ . : -");
  ssepp::ClientId id = 0;
  std::string user;
  if (auto refused = check_owner(req, *client, id, user)) return std::move(*refused);
  if (join && !may_join(user, *channel)) return refuse_join(*channel);
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
  // The broadcaster's authoriser counts this one itself (ssepp_refused_joins_total sums both).
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
  auto client = client_member(std::get<json>(parsed), "client", bad);
  if (bad || !client) return error(400, "need {\"client\": \"<id>\"}");
  ssepp::ClientId id = 0;
  std::string user;
  if (auto refused = check_owner(req, *client, id, user)) return std::move(*refused);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    owners_.erase(id);  // ending: no more changes to it, and a second disconnect finds nothing
  }
  // A graceful end: what is queued, then the final chunk. The client reconnects (EventSource
  // does after any end) and resumes from its Last-Event-ID.
  if (!streams_.end(id)) return error(404, "no such client in this session");
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
  // Clients send the id back as Last-Event-ID, which admit refuses past 1 KiB: a longer id
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

}  // namespace demo
