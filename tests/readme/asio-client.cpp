// docs/client.md: ssepp::asio::EventClient with callbacks, a token refreshed per attempt.
#include <ssepp/asio/client.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <system_error>
#include <utility>

std::string current_token();
int report(std::error_code ec);

int snippet() {
// @snippet
  return 0;
}
