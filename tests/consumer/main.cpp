// The README's quick start, built by an outside project (FetchContent, find_package, pkg-config)
// with its own -Wall -Wextra -Wpedantic -Werror: if this stops compiling, the README is wrong.
#include <ssepp/ssepp.hpp>

#include <cstdio>
#include <string>
#include <vector>

// A sink: anything with `bool send(const ssepp::Frame&)`. Real servers use ssepp::Mailbox.
struct Stdout {
  bool send(const ssepp::Frame& f) {
    std::fwrite(f.data(), 1, f.size(), stdout);
    return true;
  }
};

int main() {
  // Encode one event: injection-proof, the same bytes every client gets.
  ssepp::Event ev;
  ev.type = "price";
  ev.data = R"({"symbol":"ACME","price":12.5})";
  std::string bytes = ssepp::encode(ev);

  // Fan out: registries, ids, history, replay.
  ssepp::Broadcaster<Stdout> hub;
  ssepp::ConnectOptions who;
  who.user = "alice";
  who.channels = {"ticker:ACME"};
  ssepp::ConnectResult client = hub.connect(Stdout{}, who);
  ssepp::SendResult sent = hub.publish("ticker:ACME", ev);  // id "1", delivered to 1 client
  (void)hub.send_to_user("alice", ssepp::Event{}.with_type("notify").with_data("hi"));

  // Parse a stream, however it is chunked.
  ssepp::Parser parser;
  std::vector<std::string> seen;
  (void)parser.feed(bytes, [&](const ssepp::EventView& e) { seen.emplace_back(e.data); });

  if (!client || !sent) return 1;  // Result: true on success, else .error() says why
  std::printf("client %llu got event %s; parsed %zu event(s)\n",
              static_cast<unsigned long long>(client->id), sent->id.c_str(), seen.size());
  return sent->delivered == 1 && seen.size() == 1 ? 0 : 1;
}
