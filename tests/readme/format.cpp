// docs/format.md: statements, with the host's own broadcaster, values and logging.
#include <cstdint>
#include <string>
// @includes
#include <ssepp/ssepp.hpp>

void log(const std::string& line);

void snippet(ssepp::Broadcaster<ssepp::Mailbox>& hub, std::uint64_t& seq, const std::string& sym,
             double px, const std::string& user_type, const std::string& user,
             const std::string& text, const ssepp::Event& ev) {
// @snippet
}
