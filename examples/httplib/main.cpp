// ssepp on cpp-httplib: GET /events and POST /publish, thread per connection.
//
// Each stream is a Mailbox the broadcaster fills; httplib's chunked content provider runs on the
// connection's own thread and blocks in Mailbox::pop(timeout) until a frame arrives.
//
//   ssepp-httplib-example [--port N]        (port 0 picks a free one; default 8081)
//   curl -N 'http://127.0.0.1:8081/events?channel=news'
//   curl -d '{"channel":"news","event":"note","data":"hello"}' http://127.0.0.1:8081/publish
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <ssepp/broadcaster.hpp>
#include <ssepp/http.hpp>
#include <ssepp/mailbox.hpp>

#include <csignal>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
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
  std::atomic<bool> stopping{false};  // streams end within a second once set

  ssepp::Broadcaster<ssepp::Mailbox> hub;  // history for Last-Event-ID, heartbeats every 15 s
  httplib::Server server;
  // Every open stream holds a thread: size the pool for the streams you expect.
  server.new_task_queue = [] { return new httplib::ThreadPool(64); };

  server.Get("/events", [&](const httplib::Request& req, httplib::Response& res) {
    // Last-Event-ID: the header of a reconnecting EventSource, else ?lastEventId=.
    std::string header = req.get_header_value("Last-Event-ID");
    auto last_id = ssepp::last_event_id(header, req.target);
    if (!last_id) {
      res.status = 400;
      res.set_content(R"({"error":"invalid Last-Event-ID"})", "application/json");
      return;
    }
    ssepp::ConnectOptions who;
    who.channels = ssepp::query_parameters(req.target, "channel").values;
    who.last_event_id = *last_id;
    ssepp::Mailbox mailbox;  // bounded; a client that stops reading is cut and replays later
    auto connected = hub.connect(mailbox, who);
    if (!connected) {  // e.g. the replay did not fit the mailbox
      res.status = 503;
      res.set_content(json{{"error", connected.error().message()}}.dump(), "application/json");
      return;
    }
    ssepp::ClientId id = connected->id;

    for (const auto& h : ssepp::response_headers(ssepp::http_version(req.version)))
      if (h.name != "Content-Type") res.set_header(std::string(h.name), std::string(h.value));
    std::string preamble = ssepp::preamble({2000ms, 0, {}});  // retry hint
    // cpp-httplib gzips every text/* response whose type is not exactly "text/event-stream", and a
    // compressor holds small frames back: use the bare type here, not event_stream_content_type.
    res.set_chunked_content_provider(
        "text/event-stream",
        [mailbox, preamble, &stopping](std::size_t, httplib::DataSink& sink) mutable {
          if (stopping) return false;  // shutting down: the client reconnects elsewhere
          if (!preamble.empty()) {
            if (!sink.write(preamble.data(), preamble.size())) return false;
            preamble.clear();
          }
          if (auto frame = mailbox.pop(1s)) return sink.write(frame->data(), frame->size());
          return !mailbox.closed() && sink.is_writable();  // false ends the response
        },
        [&hub, id](bool) { (void)hub.disconnect(id); });
  });

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

  // A stop signal: no new connections, every stream ends (the pool's threads are free again),
  // then listen_after_bind() returns and main exits 0.
  std::thread signals([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    stopping = true;
    server.stop();
  });
  auto shutdown = [&] {
    if (!stopping) kill(getpid(), SIGTERM);  // wakes the signal thread (pending until sigwait)
    signals.join();
    running = false;
    ticker.join();
  };

  port = port == 0 ? server.bind_to_any_port("127.0.0.1")
                   : (server.bind_to_port("127.0.0.1", port) ? port : -1);
  if (port < 0) {
    std::fprintf(stderr, "cannot listen\n");
    shutdown();
    return 1;
  }
  std::printf("ssepp-httplib-example listening on http://127.0.0.1:%d/\n", port);
  std::fflush(stdout);
  server.listen_after_bind();
  shutdown();
  return 0;
}
