// README, client: an LLM completion streamed with ssepp::asio::EventClient.
#include <ssepp/asio/client.hpp>

#include <boost/asio/io_context.hpp>

#include <iostream>
#include <string>
#include <system_error>
#include <utility>

void snippet(const std::string& key) {
// @snippet
}
