// Helpers of the demo's JSON API, shared by its routes: responses, request bodies, names.
#pragma once

#include "app.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace demo {

using nlohmann::json;

inline Response json_response(unsigned status, const json& body) {
  Response r;
  r.status = status;
  r.body = body.dump();
  return r;
}

inline Response error(unsigned status, std::string_view message) {
  return json_response(status, json{{"error", message}});
}

/// 1..32 of [A-Za-z0-9_.-]: user names end up in channel names, pools and JSON.
bool valid_user(std::string_view s);
/// 1..64 of [A-Za-z0-9_.:-].
bool valid_channel(std::string_view s);
/// The JSON object of a request body, or the 400 to answer.
std::variant<json, Response> parse_object(std::string_view body);
/// A string member: nullopt when absent; `bad` set when present but not a string.
std::optional<std::string> string_member(const json& j, const char* name, bool& bad);
/// A stream id member, as the `connected` event gives it (a string of digits) or as a JSON
/// number: its decimal text; nullopt when absent; `bad` set when neither.
std::optional<std::string> client_member(const json& j, const char* name, bool& bad);
/// A stream id: 1..2^64-1 in plain decimal digits.
std::optional<ssepp::ClientId> parse_client_id(std::string_view s);

}  // namespace demo
