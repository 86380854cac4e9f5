// docs/compression.md: compression in the adapters (ssepp::asio, ssepp::httplib).
#include <chrono>
// @includes
#include <ssepp/asio.hpp>
#include <ssepp/compress.hpp>
#include <ssepp/httplib.hpp>
#include <ssepp/ssepp.hpp>

void snippet(ssepp::Broadcaster<ssepp::Mailbox>& hub) {
// @snippet
}
