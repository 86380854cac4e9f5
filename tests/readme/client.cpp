// docs/client.md: a made-up blocking HTTP library around it (the client does no I/O).
#include <ssepp/ssepp.hpp>

#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using Clock = std::chrono::steady_clock;
struct Response {
  int status;
  std::string content_type;
  std::optional<std::string> read_some();
};
struct Http {
  Response get(const std::string& url, const std::vector<std::pair<std::string, std::string>>& headers);
};

void snippet(Http& http, const std::string& url, const std::string& key) {
// @snippet
}
