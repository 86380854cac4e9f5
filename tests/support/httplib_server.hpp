// Test support for ssepp::httplib: a cpp-httplib server with an EventEndpoint at /events on a
// free loopback port, and a raw HTTP/1.1 client that reads the head and the chunked body.
#pragma once

#include <ssepp/httplib.hpp>
#include <ssepp/testing.hpp>

#include "catch.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Hub = ssepp::Broadcaster<ssepp::Mailbox>;

namespace httplib_test {

// Waits up to `limit` for `cond`, checking every few milliseconds.
template <class F>
bool eventually(F cond, std::chrono::milliseconds limit = 3s) {
  const auto end = Clock::now() + limit;
  while (!cond()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// A cpp-httplib server on a free loopback port with an EventEndpoint at /events.
struct TestServer {
  Hub hub;
  ssepp::httplib::EventEndpoint endpoint;
  ::httplib::Server server;
  std::thread thread;
  int port = -1;
  std::mutex mutex;
  std::vector<std::pair<ssepp::ClientId, ssepp::httplib::EndReason>> ends;

  explicit TestServer(ssepp::httplib::EndpointOptions options = {},
                      ssepp::BroadcasterOptions hub_options = {})
      : hub(hub_options), endpoint(hub, with_end_log(std::move(options))) {
    server.new_task_queue = [] { return new ::httplib::ThreadPool(16); };
    server.Get("/events", endpoint);
    port = server.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    thread = std::thread([this] { server.listen_after_bind(); });
  }
  ~TestServer() { stop(); }
  void stop() {
    server.stop();
    if (thread.joinable()) thread.join();
  }
  std::vector<std::pair<ssepp::ClientId, ssepp::httplib::EndReason>> ended() {
    std::lock_guard<std::mutex> lock(mutex);
    return ends;
  }

 private:
  ssepp::httplib::EndpointOptions with_end_log(ssepp::httplib::EndpointOptions o) {
    auto chained = o.on_end;
    o.on_end = [this, chained](ssepp::ClientId id, ssepp::httplib::EndReason why) {
      if (chained) chained(id, why);
      std::lock_guard<std::mutex> lock(mutex);
      ends.emplace_back(id, why);
    };
    return o;
  }
};

// A raw HTTP/1.1 client: sends a request, reads the head and the chunked body as it comes.
struct RawClient {
  int fd = -1;
  std::string in;   // everything received
  bool eof = false;

  RawClient(int port, const std::string& target, const std::string& extra_headers = "",
            const std::string& method = "GET") {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    std::string req = method + " " + target +
                      " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n" +
                      extra_headers + "\r\n";
    REQUIRE(::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
  }
  ~RawClient() { close(); }
  void close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }

  // Reads what is there, waiting up to `wait` for something.
  void read_some(std::chrono::milliseconds wait) {
    if (eof || fd < 0) return;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return;
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) eof = true;
    else in.append(buf, static_cast<std::size_t>(n));
  }
  template <class F>
  bool read_until(F cond, std::chrono::milliseconds limit = 3s) {
    const auto end = Clock::now() + limit;
    while (!cond()) {
      if (eof || Clock::now() > end) return cond();
      read_some(20ms);
    }
    return true;
  }

  bool has_head() const { return in.find("\r\n\r\n") != std::string::npos; }
  std::string head() const { return in.substr(0, in.find("\r\n\r\n") + 2); }
  int status() const { return has_head() ? std::atoi(in.c_str() + 9) : 0; }
  // The value of response header `name` (exact case as cpp-httplib writes it), "" when absent.
  std::string header(const std::string& name) const {
    std::string h = head();
    std::size_t at = h.find("\r\n" + name + ": ");
    if (at == std::string::npos) return "";
    at += name.size() + 4;
    return h.substr(at, h.find("\r\n", at) - at);
  }
  // The chunked body received so far, de-chunked; `complete` is set at the final chunk.
  std::string body(bool* complete = nullptr) const {
    if (complete) *complete = false;
    std::string out;
    std::size_t at = in.find("\r\n\r\n");
    if (at == std::string::npos) return out;
    at += 4;
    for (;;) {
      std::size_t eol = in.find("\r\n", at);
      if (eol == std::string::npos) break;
      std::size_t size = std::stoul(in.substr(at, eol - at), nullptr, 16);
      if (size == 0) {
        if (complete) *complete = true;
        break;
      }
      if (eol + 2 + size + 2 > in.size()) break;
      out.append(in, eol + 2, size);
      at = eol + 2 + size + 2;
    }
    return out;
  }
  std::vector<ssepp::Event> events() const { return ssepp::parse_events(body()).value().events; }
  std::size_t count() const { return events().size(); }
};

ssepp::Event ev(std::string data, std::string type = "") {
  ssepp::Event e;
  e.data = std::move(data);
  e.type = std::move(type);
  return e;
}

std::vector<std::string> datas(const std::vector<ssepp::Event>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.data);
  return out;
}

}  // namespace httplib_test
