// docs/client.md: a made-up blocking HTTP library around it (the client does no I/O).
#include <ssepp/ssepp.hpp>

#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

using Clock = std::chrono::steady_clock;
struct Response {
  int status;
  std::string content_type, location, retry_after;
  std::optional<std::string> read_some();  // nothing at the end of the body or on an error
  bool complete() const;                   // the body ended cleanly (not cut)
};
struct Http {
  std::optional<Response> send(const std::string& method, const std::string& url,
                               const std::vector<std::pair<std::string, std::string>>& headers,
                               std::string_view body);
};

void snippet(Http& http, const std::string& key) {
// @snippet
}
