// docs/broadcaster.md: registries, a send to a union of targets, logging out, shutdown.
#include <ssepp/ssepp.hpp>

#include <cstddef>
#include <string>

void log(const std::string& line);

void snippet(ssepp::Broadcaster<ssepp::Mailbox>& hub, ssepp::Mailbox box) {
// @snippet
}
