// docs/errors.md: Result in a host's handler.
#include <ssepp/ssepp.hpp>

#include <string>

void log(const std::string& line);
void reply(int status, const std::string& body);
void use(ssepp::ClientId id, ssepp::Replay replay);

void snippet(ssepp::Broadcaster<ssepp::Mailbox>& hub, ssepp::ClientId id, ssepp::Mailbox box,
             ssepp::ConnectOptions who) {
// @snippet
}
