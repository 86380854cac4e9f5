// ssepp on cpp-httplib: GET /events and POST /publish, thread per connection.
//
// ssepp::httplib::EventEndpoint answers GET /events: Last-Event-ID replay, the bare
// text/event-stream type, the preamble at once, one write per batch of queued events.
//
//   ssepp-httplib-example [--port N]        (port 0 picks a free one; default 8081)
//   curl -N 'http://127.0.0.1:8081/events?channel=news'
//   curl -d '{"channel":"news","event":"note","data":"hello"}' http://127.0.0.1:8081/publish
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <ssepp/broadcaster.hpp>
#include <ssepp/httplib.hpp>

#include <csignal>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using json = nlohmann::json;

int main(int argc, char** argv) {
  int port = 8081;
  if (argc == 3 && std::string(argv[1]) == "--port") port = std::atoi(argv[2]);

  // SIGINT and SIGTERM are taken by one thread (sigwait), blocked in every other: set before any
  // thread starts, so that they all inherit the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  ssepp::Broadcaster<ssepp::Mailbox> hub;  // history for Last-Event-ID, heartbeats every 15 s
  ssepp::httplib::EndpointOptions options;
  options.preamble.retry = 2000ms;  // channels come from ?channel= (the default)
  ssepp::httplib::EventEndpoint events(hub, options);

  httplib::Server server;
  // Every open stream holds a thread: size the pool for the streams you expect.
  server.new_task_queue = [] { return new httplib::ThreadPool(64); };
  server.Get("/events", events);

  server.Post("/publish", [&](const httplib::Request& req, httplib::Response& res) {
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object() || !body.contains("data")) {
      res.status = 400;
      res.set_content(R"({"error":"need a JSON object with data"})", "application/json");
      return;
    }
    ssepp::Event ev;
    ev.data = body["data"].is_string() ? body["data"].get<std::string>() : body["data"].dump();
    ev.type = body.value("event", "");
    std::string channel = body.value("channel", "");
    auto sent =
        channel.empty() ? hub.broadcast(std::move(ev)) : hub.publish(channel, std::move(ev));
    if (!sent) {  // e.g. a line break in the event name: nothing was sent
      res.status = 400;
      res.set_content(json{{"error", sent.error().message()}}.dump(), "application/json");
      return;
    }
    res.status = 202;
    res.set_content(json{{"id", sent->id}, {"delivered", sent->delivered}}.dump(),
                    "application/json");
  });

  // Heartbeats and history expiry.
  std::atomic<bool> running{true};
  std::thread ticker([&] {
    while (running) {
      std::this_thread::sleep_for(1s);
      hub.tick(ssepp::Broadcaster<ssepp::Mailbox>::Clock::now());
    }
  });

  // A stop signal: every stream ends (what is queued, then the final chunk), the server stops,
  // listen_after_bind() returns and main exits 0.
  std::thread signals([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    (void)events.shutdown();
    server.stop();
  });

  port = port == 0 ? server.bind_to_any_port("127.0.0.1")
                   : (server.bind_to_port("127.0.0.1", port) ? port : -1);
  if (port >= 0) {
    std::printf("ssepp-httplib-example listening on http://127.0.0.1:%d/\n", port);
    std::fflush(stdout);
    server.listen_after_bind();
  }
  // listen failed, or returned without a signal: wake the signal thread so it can be joined
  if (!hub.closed()) pthread_kill(signals.native_handle(), SIGTERM);
  signals.join();
  running = false;
  ticker.join();
  if (port < 0) std::fprintf(stderr, "cannot listen\n");
  return port < 0 ? 1 : 0;
}
