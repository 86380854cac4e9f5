#include "api.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>

namespace demo {

namespace {

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

}  // namespace

bool valid_user(std::string_view s) {
  return !s.empty() && s.size() <= 32 && std::all_of(s.begin(), s.end(), name_char);
}

bool valid_channel(std::string_view s) {
  return !s.empty() && s.size() <= 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return name_char(c) || c == ':'; });
}

std::variant<json, Response> parse_object(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return error(400, "body is not valid JSON");
  if (!j.is_object()) return error(400, "body must be a JSON object");
  return j;
}

std::optional<std::string> string_member(const json& j, const char* name, bool& bad) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) {
    bad = true;
    return std::nullopt;
  }
  return it->get<std::string>();
}

std::optional<std::string> client_member(const json& j, const char* name, bool& bad) {
  auto it = j.find(name);
  if (it != j.end() && it->is_number_unsigned())
    return std::to_string(it->get<std::uint64_t>());
  if (it != j.end() && it->is_number()) {  // negative or fractional: no stream has that id
    bad = true;
    return std::nullopt;
  }
  return string_member(j, name, bad);
}

std::optional<ssepp::ClientId> parse_client_id(std::string_view s) {
  ssepp::ClientId id = 0;
  if (s.empty() || s.size() > 20) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
  if (ec != std::errc() || end != s.data() + s.size() || id == 0) return std::nullopt;
  return id;
}

}  // namespace demo
