// docs/parser.md: what a reading loop does with each chunk and at disconnect.
#include <chrono>
#include <iostream>
#include <optional>
#include <string_view>
// @includes

void reconnect(std::string_view last_event_id, std::optional<std::chrono::milliseconds> retry);

void snippet(std::string_view chunk) {
// @snippet
}
