// README, "Plug it into any server": the host's own request and response types.
#include <ssepp/ssepp.hpp>

#include <optional>
#include <string>
#include <string_view>

struct Request {
  std::string user() const;
  std::string tenant() const;
  std::optional<std::string> header(const char* name) const;
};
struct Response {
  void set_header(std::string_view name, std::string_view value);
  bool write(std::string_view bytes);
};
ssepp::Event snapshot_event();

// @snippet
