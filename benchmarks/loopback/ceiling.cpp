// ssepp-ceiling: the no-library fan-out ceiling for the loopback benchmark. One thread, epoll,
// nothing but the system calls: GET /events opens a chunked event stream, POST /publish with
// {"channel":…, "event":…, "data":"…"} formats the event once (chunk framing included) and
// appends the same bytes to every stream's buffer; after each batch of ready events (all the
// publishes that arrived together) every stream with new bytes is written once, so a busy server
// makes one system call per stream for several events. A stream whose socket is full keeps the
// rest in its buffer (cut above 1 MiB, as the demo server's default queue). No validation, no registry, no
// history: what any SSE server must at least do, so ssepp's demo server is measured against it.
//
//   ssepp-ceiling [--host 127.0.0.1] [--port 0]
// prints "ssepp-ceiling listening on http://HOST:PORT/" once it accepts connections.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t max_pending = std::size_t{1} << 20;

struct Conn {
  int fd = -1;
  bool stream = false;
  std::size_t slot = 0;  // position in streams when stream
  std::string in;        // request bytes not yet handled
  std::string out;       // bytes the socket did not take yet
  std::size_t out_off = 0;
  bool want_out = false;
  bool dirty = false;  // has bytes for the next flush
};

class Server {
 public:
  int listen_on(const char* host, int port) {
    lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) return -1;
    if (bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || listen(lfd_, 4096) < 0)
      return -1;
    socklen_t len = sizeof a;
    getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = lfd_;
    epoll_ctl(ep_, EPOLL_CTL_ADD, lfd_, &ev);
    return ntohs(a.sin_port);
  }

  void run() {
    std::vector<epoll_event> evs(512);
    for (;;) {
      int n = epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), -1);
      for (int k = 0; k < n; ++k) {
        int fd = evs[static_cast<std::size_t>(k)].data.fd;
        std::uint32_t e = evs[static_cast<std::size_t>(k)].events;
        if (fd == lfd_) {
          accept_all();
          continue;
        }
        Conn* c = conn(fd);
        if (!c) continue;
        if (e & EPOLLOUT) flush(*c);
        if (conn(fd) && (e & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_read(*c);
      }
      flush_dirty();
    }
  }

 private:
  Conn* conn(int fd) {
    auto i = static_cast<std::size_t>(fd);
    return i < conns_.size() ? conns_[i].get() : nullptr;
  }

  void accept_all() {
    for (;;) {
      int fd = accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto i = static_cast<std::size_t>(fd);
      if (i >= conns_.size()) conns_.resize(i + 1024);
      conns_[i] = std::make_unique<Conn>();
      conns_[i]->fd = fd;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
    }
  }

  void close_conn(Conn& c) {
    int fd = c.fd;
    if (c.stream) {
      Conn* last = streams_.back();
      streams_[c.slot] = last;
      last->slot = c.slot;
      streams_.pop_back();
    }
    epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    conns_[static_cast<std::size_t>(fd)].reset();
  }

  void on_read(Conn& c) {
    char buf[65536];
    for (;;) {
      ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        return close_conn(c);
      if (r < 0) break;
      if (c.stream) continue;  // an SSE client sends nothing after its request
      c.in.append(buf, static_cast<std::size_t>(r));
      if (static_cast<std::size_t>(r) < sizeof buf) break;
    }
    int fd = c.fd;
    handle_requests(c);
    if (conn(fd)) flush(c);
  }

  static std::size_t content_length(std::string_view head) {
    for (std::size_t p = head.find('\n'); p != std::string_view::npos; p = head.find('\n', p + 1)) {
      std::string_view line = head.substr(p + 1, 15);
      if (line.size() == 15 && strncasecmp(line.data(), "content-length:", 15) == 0)
        return std::strtoul(head.data() + p + 16, nullptr, 10);
    }
    return 0;
  }

  /// The string value of "key" in a flat JSON object, escapes left as they are.
  static std::string_view json_string(std::string_view body, std::string_view key) {
    std::string pattern = "\"" + std::string(key) + "\":\"";
    auto p = body.find(pattern);
    if (p == std::string_view::npos) return {};
    p += pattern.size();
    auto e = p;
    while (e < body.size() && body[e] != '"')
      e += body[e] == '\\' ? std::size_t{2} : std::size_t{1};
    return body.substr(p, std::min(e, body.size()) - p);
  }

  void handle_requests(Conn& c) {
    std::size_t pos = 0;
    while (!c.stream) {
      auto end = c.in.find("\r\n\r\n", pos);
      if (end == std::string::npos) break;
      std::string_view head(c.in.data() + pos, end - pos);
      std::size_t len = content_length(head);
      if (end + 4 + len > c.in.size()) break;
      std::string_view body(c.in.data() + end + 4, len);
      if (head.substr(0, 12) == "GET /events?" || head.substr(0, 12) == "GET /events ") {
        c.stream = true;
        c.slot = streams_.size();
        streams_.push_back(&c);
        c.out +=
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            "Transfer-Encoding: chunked\r\n\r\n";
      } else if (head.substr(0, 14) == "POST /publish ") {
        broadcast(json_string(body, "event"), json_string(body, "data"));
        c.out += "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
      } else {
        c.out += "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
      }
      pos = end + 4 + len;
    }
    c.in.erase(0, pos);
  }

  /// Formats the event once and writes the same bytes to every stream.
  void broadcast(std::string_view type, std::string_view data) {
    char id[32];
    int idn = std::snprintf(id, sizeof id, "%llu", static_cast<unsigned long long>(++next_id_));
    std::size_t size = 4 + static_cast<std::size_t>(idn) + 1 +
                       (type.empty() ? 0 : 7 + type.size() + 1) + 6 + data.size() + 2;
    char hex[24];
    int hn = std::snprintf(hex, sizeof hex, "%zx\r\n", size);
    frame_.assign(hex, static_cast<std::size_t>(hn));
    frame_.append("id: ").append(id, static_cast<std::size_t>(idn)).append("\n");
    if (!type.empty()) frame_.append("event: ").append(type).append("\n");
    frame_.append("data: ").append(data).append("\n\n\r\n");
    for (std::size_t i = 0; i < streams_.size();) {
      Conn& s = *streams_[i];
      if (s.out.size() - s.out_off + frame_.size() > max_pending) {
        close_conn(s);  // the last stream moved into slot i
        continue;
      }
      s.out.append(frame_);
      mark_dirty(s);
      ++i;
    }
  }

  /// Queues c for the flush after this batch of events (unless it waits for EPOLLOUT).
  void mark_dirty(Conn& c) {
    if (c.dirty || c.want_out) return;
    c.dirty = true;
    dirty_.push_back(c.fd);
  }

  /// Writes every stream that got bytes during the batch, once.
  void flush_dirty() {
    for (std::size_t k = 0; k < dirty_.size(); ++k) {
      Conn* c = conn(dirty_[k]);
      if (!c || !c->dirty) continue;  // closed (and maybe its descriptor reused) meanwhile
      c->dirty = false;
      flush(*c);
    }
    dirty_.clear();
  }

  void watch_out(Conn& c, bool on) {
    if (c.want_out == on) return;
    c.want_out = on;
    epoll_event ev{};
    ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
    ev.data.fd = c.fd;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void flush(Conn& c) {
    while (c.out_off < c.out.size()) {
      ssize_t w = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (w <= 0) return close_conn(c);
      c.out_off += static_cast<std::size_t>(w);
    }
    if (c.out_off == c.out.size()) {
      c.out.clear();
      c.out_off = 0;
    }
    watch_out(c, !c.out.empty());
  }

  int lfd_ = -1, ep_ = -1;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<int> dirty_;  // descriptors of streams to flush after this batch
  std::vector<Conn*> streams_;
  std::string frame_;
  std::uint64_t next_id_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const char* host = "127.0.0.1";
  int port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--host") == 0)
      host = argv[i + 1];
    else if (std::strcmp(argv[i], "--port") == 0)
      port = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: ssepp-ceiling [--host 127.0.0.1] [--port 0]\n");
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  Server server;
  int bound = server.listen_on(host, port);
  if (bound < 0) {
    std::fprintf(stderr, "ssepp-ceiling: cannot listen on %s:%d: %s\n", host, port,
                 std::strerror(errno));
    return 1;
  }
  std::printf("ssepp-ceiling listening on http://%s:%d/\n", host, bound);
  std::fflush(stdout);
  server.run();
}
