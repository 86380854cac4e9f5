// ssepp::httplib from an outside project: it compiles and links with the machine's cpp-httplib,
// and a stream served on loopback starts with the preamble before any event is sent.
#include <ssepp/httplib.hpp>
#include <ssepp/ssepp.hpp>

#include <httplib.h>

#include <cstdio>
#include <string>
#include <thread>

int main() {
  ssepp::Broadcaster<ssepp::Mailbox> hub;
  ssepp::httplib::EventEndpoint events(hub);
  httplib::Server server;
  server.Get("/events", events);
  const int port = server.bind_to_any_port("127.0.0.1");
  if (port <= 0) {
    std::fprintf(stderr, "cannot listen\n");
    return 1;
  }
  std::thread listener([&] { server.listen_after_bind(); });

  httplib::Client client("127.0.0.1", port);
  std::string body;
  std::string type;
  auto res = client.Get(
      "/events",
      [&](const httplib::Response& r) {
        type = r.get_header_value("Content-Type");
        return true;
      },
      [&](const char* data, std::size_t n) {
        body.append(data, n);
        return false;  // the preamble is enough: hang up
      });
  (void)res;
  server.stop();
  listener.join();
  if (type != "text/event-stream" || body != ":\n\n") {
    std::fprintf(stderr, "expected the bare type and \":\\n\\n\", got [%s] [%s]\n", type.c_str(),
                 body.c_str());
    return 1;
  }
  std::printf("httplib consumer: %s preamble %zu bytes\n", type.c_str(), body.size());
  return 0;
}
