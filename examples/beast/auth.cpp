// Sessions: log in, log out, who is asking, who owns a stream, who may join a channel.
#include "api.hpp"

#include <algorithm>

namespace demo {

namespace {

constexpr std::size_t max_sessions = 10000;
constexpr std::string_view cookie_name = "ssepp_session";

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

bool App::may_join(std::string_view user, std::string_view channel) {
  constexpr std::string_view prefix = "user:";
  if (channel.substr(0, prefix.size()) != prefix) return true;
  return !user.empty() && channel.substr(prefix.size()) == user;
}

Response App::refuse_join(std::string_view channel) {
  refused_joins_.fetch_add(1, std::memory_order_relaxed);
  return error(403, "channel " + std::string(channel) + " is not yours");
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

Response App::logout(const Request& req) {
  // The cookie goes whatever the session's state: a browser that signs out is signed out.
  auto clear = [](Response r) {
    r.headers.emplace_back("Set-Cookie", std::string(cookie_name) +
                                             "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    return r;
  };
  auto s = session_of(req);
  if (!s) return clear(json_response(200, json{{"user", nullptr}, {"streams_ended", 0}}));
  std::vector<ssepp::ClientId> streams;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    sessions_.erase(s->first);
    session_order_.erase(std::remove(session_order_.begin(), session_order_.end(), s->first),
                         session_order_.end());
    for (const auto& [id, token] : owners_)
      if (token == s->first) streams.push_back(id);
    for (auto id : streams) owners_.erase(id);
  }
  // Each ends gracefully: its queue, then the final chunk.
  std::size_t ended = 0;
  for (auto id : streams)
    if (streams_.end(id)) ++ended;
  return clear(json_response(200, json{{"user", nullptr}, {"streams_ended", ended}}));
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

}  // namespace demo
