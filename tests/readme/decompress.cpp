// docs/compression.md: a client transport inflating a body chunk before the sans-IO client.
#include <ssepp/compress.hpp>
#include <ssepp/ssepp.hpp>

#include <string>
#include <string_view>
#include <system_error>

void fail(std::error_code ec);
void on_event(const ssepp::EventView& ev);

void snippet(std::string_view chunk, ssepp::Decompressor& inflater, ssepp::Client& client,
             std::string& plain) {
// @snippet
}
