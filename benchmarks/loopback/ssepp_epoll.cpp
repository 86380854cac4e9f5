// ssepp-epoll: ssepp's Broadcaster on a bare epoll loop, one thread, for the loopback benchmark.
// The same HTTP handling as ssepp-ceiling (the no-library writer) with the library in the middle:
// each stream is a client of a Broadcaster<ConnSink> joined to the channel of its query
// (`/events?channel=bench`), and a publish is `Broadcaster::publish` (validation, an id, history,
// one encode, one shared Frame for every recipient). The sink appends the frame, chunk-framed
// once per frame, to the stream's buffer; after each batch of ready events every stream with new
// bytes is written once, exactly as the ceiling does, and keeps what the socket does not take
// (cut above 1 MiB, as the demo server's default queue). Set beside the ceiling it shows what the
// library costs per delivery, apart from any HTTP stack.
//
//   ssepp-epoll [--host 127.0.0.1] [--port 0]
// prints "ssepp-epoll listening on http://HOST:PORT/" once it accepts connections.
#include <ssepp/broadcaster.hpp>

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
  ssepp::ClientId client = 0;  // non-zero once the connection is a stream
  std::string in;              // request bytes not yet handled
  std::string out;             // bytes the socket did not take yet
  std::size_t out_off = 0;
  bool want_out = false;
  bool dirty = false;  // has bytes for the next flush
};

class Server;

/// The broadcaster's handle on a stream: a pointer to the connection.
struct ConnSink {
  Server* server;
  Conn* conn;
  bool send(const ssepp::Frame& frame);
  void close();
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

  /// ConnSink::send: the frame, chunk-framed, into the stream's buffer for the next flush.
  bool write_frame(Conn& c, const ssepp::Frame& frame) {
    std::string_view chunk = chunk_of(frame);
    if (c.out.size() - c.out_off + chunk.size() > max_pending) return false;
    c.out.append(chunk);
    mark_dirty(c);
    return true;
  }

  /// ConnSink::close: the broadcaster has dropped the stream.
  void drop(Conn& c) {
    c.client = 0;
    close_conn(c);
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

  /// Ends a connection: a stream through the broadcaster (which calls drop), else directly.
  void end(Conn& c) {
    if (c.client != 0) {
      (void)hub_.disconnect(c.client);  // -> ConnSink::close -> drop
      return;
    }
    close_conn(c);
  }

  void close_conn(Conn& c) {
    int fd = c.fd;
    epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    conns_[static_cast<std::size_t>(fd)].reset();
  }

  void on_read(Conn& c) {
    char buf[65536];
    for (;;) {
      ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        return end(c);
      if (r < 0) break;
      if (c.client != 0) continue;  // an SSE client sends nothing after its request
      c.in.append(buf, static_cast<std::size_t>(r));
      if (static_cast<std::size_t>(r) < sizeof buf) break;
    }
    int fd = c.fd;
    handle_requests(c);
    if (Conn* still = conn(fd)) flush(*still);
  }

  static std::size_t content_length(std::string_view head) {
    for (std::size_t p = head.find('\n'); p != std::string_view::npos; p = head.find('\n', p + 1)) {
      std::string_view line = head.substr(p + 1, 15);
      if (line.size() == 15 && strncasecmp(line.data(), "content-length:", 15) == 0)
        return std::strtoul(head.data() + p + 16, nullptr, 10);
    }
    return 0;
  }

  /// The string value of "key" in a flat JSON object (no escapes in what the load client sends).
  static std::string_view json_string(std::string_view body, std::string_view key) {
    std::string pattern = "\"" + std::string(key) + "\":\"";
    auto p = body.find(pattern);
    if (p == std::string_view::npos) return {};
    p += pattern.size();
    auto e = body.find('"', p);
    return body.substr(p, (e == std::string_view::npos ? body.size() : e) - p);
  }

  void handle_requests(Conn& c) {
    std::size_t pos = 0;
    while (c.client == 0) {
      auto end_of_head = c.in.find("\r\n\r\n", pos);
      if (end_of_head == std::string::npos) break;
      std::string_view head(c.in.data() + pos, end_of_head - pos);
      std::size_t len = content_length(head);
      if (end_of_head + 4 + len > c.in.size()) break;
      std::string_view body(c.in.data() + end_of_head + 4, len);
      if (head.substr(0, 12) == "GET /events?" || head.substr(0, 12) == "GET /events ") {
        std::string_view target = head.substr(4, head.find(' ', 4) - 4);
        ssepp::ConnectOptions options;
        auto q = target.find("channel=");
        if (q != std::string_view::npos) {
          std::string_view ch = target.substr(q + 8);
          options.channels.emplace_back(ch.substr(0, ch.find('&')));
        }
        // The head waits in `out` (written after this loop); frames queue behind it.
        c.out +=
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            "Transfer-Encoding: chunked\r\n\r\n";
        auto result = hub_.connect(ConnSink{this, &c}, std::move(options));
        c.client = result ? result->id : 0;
      } else if (head.substr(0, 14) == "POST /publish ") {
        std::string channel(json_string(body, "channel"));
        ssepp::Event ev;
        ev.type = std::string(json_string(body, "event"));
        ev.data = std::string(json_string(body, "data"));
        auto sent =
            channel.empty() ? hub_.broadcast(std::move(ev)) : hub_.publish(channel, std::move(ev));
        c.out += sent ? "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
                      : "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
      } else {
        c.out += "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
      }
      pos = end_of_head + 4 + len;
    }
    c.in.erase(0, pos);
  }

  /// The frame with its chunk framing, formatted once per frame, not once per recipient: a
  /// publish hands every recipient the same Frame (kept here, so its address identifies it).
  std::string_view chunk_of(const ssepp::Frame& frame) {
    if (frame.data() != framed_.data() || frame.size() != framed_.size()) {
      framed_ = frame;
      char hex[24];
      int hn = std::snprintf(hex, sizeof hex, "%zx\r\n", frame.size());
      chunk_.assign(hex, static_cast<std::size_t>(hn)).append(frame.view()).append("\r\n", 2);
    }
    return chunk_;
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
      if (w <= 0) return end(c);
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
  ssepp::Frame framed_;      // the frame chunk_ holds
  std::string chunk_;        // framed_ with its chunk size line and CRLF
  ssepp::Broadcaster<ConnSink> hub_;
};

bool ConnSink::send(const ssepp::Frame& frame) { return server->write_frame(*conn, frame); }
void ConnSink::close() { server->drop(*conn); }

}  // namespace

int main(int argc, char** argv) {
  const char* host = "127.0.0.1";
  int port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--host") == 0) {
      host = argv[i + 1];
    } else if (std::strcmp(argv[i], "--port") == 0) {
      port = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(stderr, "usage: ssepp-epoll [--host 127.0.0.1] [--port 0]\n");
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
    std::fprintf(stderr, "ssepp-epoll: cannot listen on %s:%d: %s\n", host, port,
                 std::strerror(errno));
    return 1;
  }
  std::printf("ssepp-epoll listening on http://%s:%d/\n", host, bound);
  std::fflush(stdout);
  server.run();
}
