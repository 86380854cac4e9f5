// docs/compression.md: a thread-per-connection /events handler that compresses its stream.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
// @includes
#include <ssepp/ssepp.hpp>

using namespace std::chrono_literals;

struct Request {
  std::optional<std::string_view> header(std::string_view name) const;
};
struct Response {
  void set_header(std::string_view name, std::string_view value);
  bool write(std::string_view bytes);
};

void snippet(const Request& req, Response& res, ssepp::Mailbox box) {
// @snippet
}
