// README, cpp-httplib: the /events endpoint through ssepp::httplib.
#include <ssepp/httplib.hpp>
#include <ssepp/ssepp.hpp>

#include <httplib.h>

#include <optional>

void routes(httplib::Server& server, ssepp::Broadcaster<ssepp::Mailbox>& hub) {
// @snippet
}
