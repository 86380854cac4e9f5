// A real redis-server for tests: started on a free loopback port in a temporary directory (with
// append-only persistence, so a restart keeps the data), stopped at the end. Kill and restart it
// to test a Redis that goes away.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

namespace testing_redis {

/// A free TCP port on 127.0.0.1 (bound, read, released).
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("no free port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

/// True when something accepts TCP connections on 127.0.0.1:port.
inline bool accepting(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

class RedisServer {
 public:
  /// `durable`: append-only file synced on every write (survives SIGKILL; slow). Benchmarks
  /// turn it off.
  explicit RedisServer(bool durable = true) : port_(free_port()), durable_(durable) {
    char tmpl[] = "/tmp/ssepp-redis-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    start();
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  ~RedisServer() {
    stop();
    std::string cmd = "rm -rf '" + dir_ + "'";
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", dir_.c_str());
  }

  int port() const { return port_; }

  /// Starts redis-server (again) on the same port and directory; waits until it accepts.
  void start() {
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string port = std::to_string(port_);
      std::string log = dir_ + "/redis.log";
      ::execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
               "--dir", dir_.c_str(), "--appendonly", durable_ ? "yes" : "no", "--appendfsync",
               durable_ ? "always" : "everysec", "--save",
               "", "--daemonize", "no", "--loglevel", "warning", "--logfile", log.c_str(),
               static_cast<char*>(nullptr));
      std::_Exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!accepting(port_)) {
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("redis-server did not start (is it installed?)");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  /// Kills redis-server at once (SIGKILL: no shutdown save; the append-only file keeps the data).
  void kill() { signal_and_wait(SIGKILL); }

  /// Stops redis-server.
  void stop() { signal_and_wait(SIGTERM); }

 private:
  void signal_and_wait(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  int port_;
  bool durable_;
  std::string dir_;
  pid_t pid_ = -1;
};

}  // namespace testing_redis
