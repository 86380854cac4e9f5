// README, cpp-httplib: the /events handler.
#include <ssepp/ssepp.hpp>

#include <httplib.h>

#include <chrono>

using namespace std::chrono_literals;

void routes(httplib::Server& server, ssepp::Broadcaster<ssepp::Mailbox>& hub) {
// @snippet
}
