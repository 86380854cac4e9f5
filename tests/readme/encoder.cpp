// docs/encoder.md: statements, with the host's own sending and logging.
#include <string>
#include <string_view>
// @includes

void send_everywhere(const ssepp::Frame& frame);
void log(const std::string& line);

void snippet(const std::string& user_supplied_type) {
// @snippet
}
