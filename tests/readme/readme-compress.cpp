// README, compression: one option turns it on in the Asio adapter.
#include <ssepp/asio.hpp>
#include <ssepp/compress.hpp>
#include <ssepp/ssepp.hpp>

void snippet(ssepp::Broadcaster<ssepp::Mailbox>& hub) {
// @snippet
}
