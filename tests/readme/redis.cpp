// docs/redis.md: setting a node up.
#include <ssepp/redis.hpp>
#include <ssepp/ssepp.hpp>

void snippet(ssepp::Mailbox mailbox, ssepp::ConnectOptions who, ssepp::Event ev) {
// @snippet
}
