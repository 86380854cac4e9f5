// docs/asio.md: an EventStreams beside the broadcaster, with its options.
#include <ssepp/asio.hpp>
#include <ssepp/ssepp.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <system_error>

void setup() {
// @snippet
}
