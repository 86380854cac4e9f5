// A real redis-server for tests: started on a free loopback port in a temporary directory (with
// append-only persistence, so a restart keeps the data), stopped at the end. Kill and restart it
// to test a Redis that goes away. Every wait on it is bounded: a test never hangs on its server.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

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

/// The major version of the installed redis-server (`redis-server --version`), 0 if unknown.
inline int server_major_version() {
  static const int major = [] {
    int v = 0;
    if (FILE* p = ::popen("redis-server --version 2>/dev/null", "r")) {
      char line[256] = {};
      if (std::fgets(line, sizeof line, p)) {
        if (const char* at = std::strstr(line, " v=")) v = std::atoi(at + 3);
      }
      ::pclose(p);
    }
    return v;
  }();
  return major;
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
  /// turn it off. `extra_args` are appended to the command line on every start (e.g.
  /// {"--requirepass", "secret"}).
  explicit RedisServer(bool durable = true, std::vector<std::string> extra_args = {})
      : port_(free_port()), durable_(durable), extra_args_(std::move(extra_args)) {
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
    // posix_spawn, not fork: the test process has threads (the buses' readers), and a forked
    // child may only call async-signal-safe functions before exec.
    const std::string port = std::to_string(port_);
    const std::string log = dir_ + "/redis.log";
    std::vector<std::string> args = {"redis-server", "--port", port, "--bind", "127.0.0.1",
                                      "--dir", dir_, "--appendonly", durable_ ? "yes" : "no",
                                      "--appendfsync", durable_ ? "always" : "everysec",
                                      "--save", "", "--daemonize", "no", "--loglevel", "warning",
                                      "--logfile", log};
    // DEBUG (e.g. DEBUG SLEEP, to hold the server still while a test lines threads up) is off by
    // default since Redis 7 and must be enabled on the command line; older servers have it on
    // and do not know the option.
    if (server_major_version() >= 7) args.insert(args.end(), {"--enable-debug-command", "yes"});
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // Its standard streams go to /dev/null (it logs to its file): a server left behind by a test
    // process that died must not hold the test's output open, or ctest waits on it until its
    // timeout and reports a hang instead of the death.
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    for (int fd : {0, 1, 2})
      ::posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
    pid_t pid = -1;
    const int spawned = ::posix_spawnp(&pid, "redis-server", &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) throw std::runtime_error("cannot start redis-server (is it installed?)");
    pid_ = pid;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!accepting(port_)) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("redis-server exited at start (port " + port +
                                 " taken?); see " + log);
      }
      if (std::chrono::steady_clock::now() > deadline) {
        signal_and_wait(SIGKILL);
        throw std::runtime_error("redis-server did not accept connections within 10 s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  /// Kills redis-server at once (SIGKILL: no shutdown save; the append-only file keeps the data).
  void kill() { signal_and_wait(SIGKILL); }

  /// Stops redis-server: SIGTERM, then SIGKILL if it has not exited within 10 s.
  void stop() { signal_and_wait(SIGTERM); }

 private:
  void signal_and_wait(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (sig != SIGKILL && std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr, "redis-server ignored signal %d for 10 s: killing it\n", sig);
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
  }

  int port_;
  bool durable_;
  std::vector<std::string> extra_args_;
  std::string dir_;
  pid_t pid_ = -1;
};

}  // namespace testing_redis
