// docs/http.md: the helpers on a host's own request and response types.
#include <ssepp/ssepp.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

struct Request {
  std::string target;
  unsigned version;
  std::optional<std::string_view> header(std::string_view name) const;
};
struct Response {
  void reject(int status);
  void set_header(std::string_view name, std::string_view value);
  bool write(std::string_view bytes);
};

void snippet(const Request& req, Response& res, const ssepp::Cors& cors) {
// @snippet
}
