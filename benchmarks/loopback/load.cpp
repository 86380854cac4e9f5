// ssepp-load: the loopback fan-out load client. One thread, epoll, N SSE connections to one
// server on 127.0.0.1, streams parsed with ssepp::Parser; a separate keep-alive connection
// publishes events (POST /publish, pipelined) at a set broadcast rate, each carrying its send time
// in the data, so latency is receive time minus send time on one clock. It drives every server the
// same way (the ssepp demo, the Node peers, the no-library ceiling) and prints one JSON line per
// result:
//   {"kind":"idle",...}         server RSS empty and with N idle streams, KB per connection
//   {"kind":"step",...}         one rate tried: delivered fraction, p50/p99, server CPU and RSS
//   {"kind":"sustainable",...}  the highest rate with p99 <= --max-p99-ms and >= --min-delivered
//   {"kind":"fixed",...}        the fixed load (--fixed deliveries/s): p50/p99, CPU, RSS
// Step and fixed lines count the bytes that arrived on the streams in the window (wire_bytes,
// TCP payload; body_bytes, the content as sent; inflated_bytes, after gunzip): with --gzip the
// streams send `Accept-Encoding: gzip` and a gzip-coded stream is inflated with ssepp's
// Decompressor before parsing, so body/inflated is what compression saved at the batches the
// server formed.
// --scale N (instead of the search): opens up to N idle streams (as many as the descriptor limit
// allows), prints the server's RSS per stream, then times a few broadcasts (one POST /publish
// each) until every stream has the event:
//   {"kind":"scale",...}        streams, KB per idle stream, median ms for a broadcast to reach all
// Every run is bounded: each step lasts --step seconds plus a bounded drain, and --deadline stops
// the whole run. Loopback only: --host must be a 127.x address.
#include <ssepp/parser.hpp>
#ifdef SSEPP_LOAD_GZIP
#include <ssepp/compress.hpp>
#endif

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

// ---- clock, /proc ------------------------------------------------------------------------------

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

double seconds_since(std::uint64_t t0) { return static_cast<double>(now_ns() - t0) / 1e9; }

std::string read_file(const std::string& path) {
  std::string out;
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

/// utime + stime of a process, in seconds (from /proc/PID/stat fields 14 and 15).
double process_cpu_seconds(int pid) {
  if (pid <= 0) return 0;
  std::string s = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = s.rfind(')');  // the command name may hold spaces: fields start after ')'
  if (close == std::string::npos) return 0;
  std::vector<std::string_view> fields;
  std::string_view rest(s);
  rest.remove_prefix(close + 2);
  while (!rest.empty()) {
    auto sp = rest.find(' ');
    fields.push_back(rest.substr(0, sp));
    if (sp == std::string_view::npos) break;
    rest.remove_prefix(sp + 1);
  }
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  if (fields.size() < 13) return 0;
  unsigned long long ut = 0, st = 0;
  std::from_chars(fields[11].data(), fields[11].data() + fields[11].size(), ut);
  std::from_chars(fields[12].data(), fields[12].data() + fields[12].size(), st);
  return static_cast<double>(ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// VmRSS of a process in KiB (0 when unknown).
long process_rss_kb(int pid) {
  if (pid <= 0) return 0;
  std::string s = read_file("/proc/" + std::to_string(pid) + "/status");
  auto p = s.find("VmRSS:");
  if (p == std::string::npos) return 0;
  return std::strtol(s.c_str() + p + 6, nullptr, 10);
}

double self_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// ---- latency histogram -------------------------------------------------------------------------

/// Log-linear histogram of nanosecond values: 32 sub-buckets per power of two (about 3%).
class Histogram {
 public:
  void add(std::uint64_t v) {
    ++counts_[index(v)];
    ++total_;
  }
  void clear() {
    std::fill(counts_.begin(), counts_.end(), 0);
    total_ = 0;
  }
  std::uint64_t total() const { return total_; }
  /// The value at quantile q (0..1), in nanoseconds; 0 when empty.
  double quantile(double q) const {
    if (total_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
    rank = std::max<std::uint64_t>(rank, 1);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return middle(i);
    }
    return middle(counts_.size() - 1);
  }

 private:
  static constexpr unsigned sub_bits = 5;
  static constexpr std::uint64_t sub = 1u << sub_bits;
  static std::size_t index(std::uint64_t v) {
    if (v < sub) return static_cast<std::size_t>(v);
    unsigned msb = 63u - static_cast<unsigned>(__builtin_clzll(v));
    unsigned shift = msb - sub_bits;
    return static_cast<std::size_t>((shift + 1) * sub + ((v >> shift) - sub));
  }
  static double middle(std::size_t i) {
    if (i < sub) return static_cast<double>(i);
    std::uint64_t shift = i / sub - 1, m = i % sub + sub;
    double lo = static_cast<double>(m << shift), hi = static_cast<double>((m + 1) << shift);
    return (lo + hi) / 2;
  }
  std::array<std::uint64_t, 64 * sub> counts_{};
  std::uint64_t total_ = 0;
};

// ---- options -----------------------------------------------------------------------------------

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string path = "/events?channel=bench";
  std::string publish_path = "/publish";
  std::string channel = "bench";
  std::vector<std::size_t> clients{1000};
  int server_pid = 0;
  int cpu = -1;
  double step = 2.0;       // seconds measured per rate tried
  double warmup = 0.25;    // seconds published before each measured window, not counted
  double drain = 1.0;      // longest wait for stragglers after a window
  int bisect = 3;          // bisection steps after the first failing rate
  int retries = 0;         // a failing rate is tried again this many times (noisy machines)
  double factor = 2.0;     // growth per step until the first failure
  double start = 10'000;   // first rate tried for the first N, deliveries/s
  double max_rate = 50e6;  // deliveries/s, stop searching above
  double fixed = 50'000;   // the fixed load, deliveries/s (0: skip)
  double max_p99_ms = 100;
  double min_delivered = 0.99;
  double deadline = 600;      // seconds for the whole run
  std::size_t payload = 200;  // bytes of event data
  std::size_t max_inflight = 2048;
  std::string label;
  bool gzip = false;        // ask for gzip, inflate what comes gzip-coded
  std::size_t scale = 0;    // the scale mode: this many idle streams at most (0: the search)
  int scale_broadcasts = 5;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(
      stderr,
      "ssepp-load: %s\n"
      "usage: ssepp-load --port P [--host 127.0.0.1] [--path /events?channel=bench]\n"
      "       [--publish /publish] [--channel bench] [--clients 1000,5000] [--server-pid PID]\n"
      "       [--cpu K] [--step S] [--warmup S] [--drain S] [--bisect K] [--retries K] [--factor "
      "F]\n"
      "       [--start R] [--max-rate R] [--fixed R] [--max-p99-ms MS] [--min-delivered F]\n"
      "       [--deadline S] [--payload BYTES] [--label NAME] [--gzip]\n"
      "       ssepp-load --port P --scale N [--broadcasts K] [--gzip] ...: idle streams, RSS per\n"
      "       stream, time for one broadcast to reach every stream\n"
      "rates are deliveries per second (broadcasts per second times N)\n",
      why);
  std::exit(2);
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--gzip") {
#ifdef SSEPP_LOAD_GZIP
      o.gzip = true;
      continue;
#else
      usage("built without zlib: --gzip is not available");
#endif
    }
    if (i + 1 >= argc) usage(("missing value for " + flag).c_str());
    std::string v = argv[++i];
    auto num = [&] { return std::strtod(v.c_str(), nullptr); };
    if (flag == "--host")
      o.host = v;
    else if (flag == "--port")
      o.port = std::atoi(v.c_str());
    else if (flag == "--path")
      o.path = v;
    else if (flag == "--publish")
      o.publish_path = v;
    else if (flag == "--channel")
      o.channel = v;
    else if (flag == "--clients") {
      o.clients.clear();
      for (char* p = v.data(); *p;) {
        o.clients.push_back(std::strtoul(p, &p, 10));
        if (*p == ',')
          ++p;
        else if (*p)
          usage("bad --clients");
      }
    } else if (flag == "--server-pid")
      o.server_pid = std::atoi(v.c_str());
    else if (flag == "--cpu")
      o.cpu = std::atoi(v.c_str());
    else if (flag == "--step")
      o.step = num();
    else if (flag == "--warmup")
      o.warmup = num();
    else if (flag == "--drain")
      o.drain = num();
    else if (flag == "--bisect")
      o.bisect = std::atoi(v.c_str());
    else if (flag == "--retries")
      o.retries = std::atoi(v.c_str());
    else if (flag == "--factor")
      o.factor = num();
    else if (flag == "--start")
      o.start = num();
    else if (flag == "--max-rate")
      o.max_rate = num();
    else if (flag == "--fixed")
      o.fixed = num();
    else if (flag == "--max-p99-ms")
      o.max_p99_ms = num();
    else if (flag == "--min-delivered")
      o.min_delivered = num();
    else if (flag == "--deadline")
      o.deadline = num();
    else if (flag == "--payload")
      o.payload = static_cast<std::size_t>(num());
    else if (flag == "--label")
      o.label = v;
    else if (flag == "--scale")
      o.scale = static_cast<std::size_t>(num());
    else if (flag == "--broadcasts")
      o.scale_broadcasts = std::atoi(v.c_str());
    else
      usage(("unknown option " + flag).c_str());
  }
  if (o.port <= 0 || o.port > 65535) usage("--port is required");
  if (o.host.rfind("127.", 0) != 0) usage("loopback only: --host must be 127.x.x.x");
  if (o.clients.empty() || o.factor <= 1 || o.step <= 0) usage("bad options");
  return o;
}

// ---- connections -------------------------------------------------------------------------------

/// One SSE stream: HTTP response head, then (optionally chunked) body into an ssepp::Parser.
struct Stream {
  enum class State { connecting, head, body, closed };
  int fd = -1;
  State state = State::closed;
  std::string head;
  bool chunked = false;
  enum class Chunk { size, data, data_end, done } chunk = Chunk::size;
  std::size_t chunk_left = 0;
  bool chunk_size_seen = false;
  ssepp::Parser parser;
#ifdef SSEPP_LOAD_GZIP
  std::unique_ptr<ssepp::Decompressor> inflater;  // set when the response is gzip-coded
#endif
};

struct Publisher {
  int fd = -1;
  std::string out;  // requests not yet written
  std::size_t out_off = 0;
  std::string in;            // responses not yet parsed
  std::size_t inflight = 0;  // requests sent without a response
  std::uint64_t errors = 0;
  std::string last_error;
};

class Load {
 public:
  explicit Load(Options o) : o_(std::move(o)) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    std::memset(&addr_, 0, sizeof addr_);
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(static_cast<std::uint16_t>(o_.port));
    if (inet_pton(AF_INET, o_.host.c_str(), &addr_.sin_addr) != 1) usage("bad --host");
    start_ = now_ns();
    read_buf_.resize(1 << 16);
  }

  int run() {
    if (o_.scale > 0) return run_scale();
    std::size_t max_n = *std::max_element(o_.clients.begin(), o_.clients.end());
    streams_.reserve(max_n);
    if (!open_publisher()) return fail("cannot connect the publisher");
    if (!publish_check()) return fail("the server refused a publish: " + pub_.last_error);

    // Idle memory: the server alone, then with the most streams, idle.
    long rss_empty = process_rss_kb(o_.server_pid);
    if (!connect_streams(max_n))
      return fail("could not open " + std::to_string(max_n) + " streams");
    pump(1.0);
    long rss_idle = process_rss_kb(o_.server_pid);
    std::printf(
        "{\"kind\":\"idle\",\"label\":\"%s\",\"clients\":%zu,\"rss_empty_kb\":%ld,\"rss_idle_kb\":%"
        "ld,"
        "\"kb_per_connection\":%.3f}\n",
        o_.label.c_str(), max_n, rss_empty, rss_idle,
        static_cast<double>(rss_idle - rss_empty) / static_cast<double>(max_n));
    std::fflush(stdout);

    double guess = o_.start;
    for (std::size_t n : o_.clients) {
      if (past_deadline()) break;
      if (!connect_streams(n)) return fail("could not open " + std::to_string(n) + " streams");
      double found = search(n, guess);
      if (found > 0) guess = found / 2;
      if (o_.fixed > 0 && !past_deadline()) {
        Result r = step(n, o_.fixed);
        print_result("fixed", n, r);
      }
    }
    return 0;
  }

 private:
  struct Result {
    double rate = 0;  // deliveries/s asked for
    double broadcasts_per_s = 0;
    std::uint64_t published = 0, expected = 0, delivered = 0;
    std::uint64_t received = 0;  // events of any step that arrived during the window
    double p50_ms = 0, p99_ms = 0, max_ms = 0;
    double server_cpu = 0, client_cpu = 0;
    double window = 0;  // seconds the window lasted
    long rss_kb = 0;
    bool publisher_behind = false;
    std::uint64_t publish_errors = 0;
    std::size_t streams = 0;
    std::size_t max_inflight = 0;      // most publishes awaiting their response at once
    std::uint64_t streams_closed = 0;  // streams the server ended during the step
    std::uint64_t wire_bytes = 0, body_bytes = 0, inflated_bytes = 0;  // arrived in the window
    std::size_t coded_streams = 0;                                     // gzip-coded streams open
    bool pass = false;
  };

  bool past_deadline() const { return seconds_since(start_) > o_.deadline; }

  /// The scale mode: as many idle streams as the limits allow (up to --scale), the server's RSS
  /// per stream, then --broadcasts single publishes, each timed until every open stream has it.
  int run_scale() {
    if (!open_publisher()) return fail("cannot connect the publisher");
    if (!publish_check()) return fail("the server refused a publish: " + pub_.last_error);
    settle(0.2, 2);
    const long rss_empty = process_rss_kb(o_.server_pid);
    // A few descriptors stay free for the /proc reads (and a stream refused by the server).
    std::size_t want = o_.scale;
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
      want = std::min<std::size_t>(want, rl.rlim_cur > 32 ? static_cast<std::size_t>(rl.rlim_cur) - 32 : 1);
    const auto t_open = now_ns();
    streams_.reserve(want);
    if (!connect_streams(want)) {
      // Out of descriptors (or the server stopped accepting): keep what opened.
      pump(1.0);
      for (auto& st : streams_)
        if (st->state != Stream::State::body) close_stream(*st);
    }
    const double open_s = seconds_since(t_open);
    const std::size_t n = open_count();
    if (n == 0) return fail("no stream opened");
    pump(1.0);
    const long rss_idle = process_rss_kb(o_.server_pid);
    std::vector<double> ms;
    std::uint64_t expected = 0, delivered = 0;
    for (int k = 0; k < o_.scale_broadcasts && !past_deadline(); ++k) {
      settle(0.2, 2);
      const std::size_t open = open_count();
      window_first_ = seq_;
      window_end_ = seq_ + 1;
      window_delivered_ = 0;
      const auto t0 = now_ns();
      last_delivery_ns_ = t0;
      queue_publish(seq_++);
      want_publisher_out();
      while (window_delivered_ < open && seconds_since(t0) < 10) poll_once(5);
      expected += open;
      delivered += window_delivered_;
      ms.push_back(static_cast<double>(last_delivery_ns_ - t0) / 1e6);
      while (pub_.inflight > 0 && pub_.fd >= 0 && seconds_since(t0) < 15) poll_once(5);
    }
    window_first_ = window_end_ = ~0ull;
    const long rss_active = process_rss_kb(o_.server_pid);
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted.empty() ? 0 : sorted[sorted.size() / 2];
    std::string all;
    for (double m : ms) all += (all.empty() ? "" : ",") + std::to_string(m);
    std::printf(
        "{\"kind\":\"scale\",\"label\":\"%s\",\"asked\":%zu,\"streams\":%zu,"
        "\"coded_streams\":%zu,\"open_s\":%.3f,\"rss_empty_kb\":%ld,\"rss_idle_kb\":%ld,"
        "\"rss_after_broadcasts_kb\":%ld,\"kb_per_stream\":%.3f,\"kb_per_stream_after_broadcasts\":%.3f,"
        "\"broadcast_ms\":%.3f,\"broadcast_ms_all\":[%s],\"delivered_frac\":%.5f}\n",
        o_.label.c_str(), o_.scale, n, coded_streams_, open_s, rss_empty, rss_idle, rss_active,
        static_cast<double>(rss_idle - rss_empty) / static_cast<double>(n),
        static_cast<double>(rss_active - rss_empty) / static_cast<double>(n), median, all.c_str(),
        expected ? static_cast<double>(delivered) / static_cast<double>(expected) : 0);
    std::fflush(stdout);
    return delivered == expected && expected > 0 ? 0 : 1;
  }

  int fail(const std::string& why) {
    std::fprintf(stderr, "ssepp-load%s%s: %s\n", o_.label.empty() ? "" : " ", o_.label.c_str(),
                 why.c_str());
    return 1;
  }

  int socket_to_server() {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_) < 0 &&
        errno != EINPROGRESS) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  // ---- publisher ----

  bool open_publisher() {
    pub_.fd = socket_to_server();
    if (pub_.fd < 0) return false;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = publisher_tag;
    epoll_ctl(ep_, EPOLL_CTL_ADD, pub_.fd, &ev);
    return true;
  }

  /// Appends one POST carrying seq and the send time to the publisher's output.
  void queue_publish(std::uint64_t seq) {
    char data[64];
    int n = std::snprintf(data, sizeof data,
                          "t=%llu s=%llu p=", static_cast<unsigned long long>(now_ns()),
                          static_cast<unsigned long long>(seq));
    std::string body = "{\"channel\":\"" + o_.channel + "\",\"event\":\"tick\",\"data\":\"";
    body.append(data, static_cast<std::size_t>(n));
    if (o_.payload > static_cast<std::size_t>(n))
      body.append(o_.payload - static_cast<std::size_t>(n), 'x');
    body += "\"}";
    char head[256];
    int h = std::snprintf(head, sizeof head,
                          "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\n\r\n",
                          o_.publish_path.c_str(), o_.host.c_str(), o_.port, body.size());
    pub_.out.append(head, static_cast<std::size_t>(h)).append(body);
    ++pub_.inflight;
  }

  void flush_publisher() {
    while (pub_.out_off < pub_.out.size()) {
      ssize_t w = ::send(pub_.fd, pub_.out.data() + pub_.out_off, pub_.out.size() - pub_.out_off,
                         MSG_NOSIGNAL);
      if (w <= 0) break;
      pub_.out_off += static_cast<std::size_t>(w);
    }
    if (pub_.out_off == pub_.out.size()) {
      pub_.out.clear();
      pub_.out_off = 0;
    }
  }

  void read_publisher() {
    for (;;) {
      ssize_t r = ::recv(pub_.fd, read_buf_.data(), read_buf_.size(), 0);
      if (r == 0) {
        pub_.errors++;
        pub_.last_error = "publisher connection closed by the server";
        epoll_ctl(ep_, EPOLL_CTL_DEL, pub_.fd, nullptr);
        ::close(pub_.fd);
        pub_.fd = -1;
        return;
      }
      if (r < 0) break;
      pub_.in.append(read_buf_.data(), static_cast<std::size_t>(r));
      if (static_cast<std::size_t>(r) < read_buf_.size()) break;
    }
    // Responses: status line, headers, Content-Length body (every server here sends one).
    std::size_t pos = 0;
    for (;;) {
      auto end = pub_.in.find("\r\n\r\n", pos);
      if (end == std::string::npos) break;
      std::string_view head(pub_.in.data() + pos, end - pos);
      std::size_t body_len = 0;
      auto cl = find_header(head, "content-length:");
      if (cl != std::string_view::npos) body_len = std::strtoul(head.data() + cl, nullptr, 10);
      if (end + 4 + body_len > pub_.in.size()) break;
      int status = head.size() > 12 ? std::atoi(head.data() + 9) : 0;
      if (status < 200 || status >= 300) {
        ++pub_.errors;
        pub_.last_error =
            std::string(head.substr(0, head.find('\r'))) + " " + pub_.in.substr(end + 4, body_len);
      }
      if (pub_.inflight > 0) --pub_.inflight;
      pos = end + 4 + body_len;
    }
    pub_.in.erase(0, pos);
  }

  static std::size_t find_header(std::string_view head, std::string_view name_lower) {
    for (std::size_t i = 0; i + name_lower.size() <= head.size(); ++i) {
      if (i > 0 && head[i - 1] != '\n') continue;
      bool match = true;
      for (std::size_t k = 0; k < name_lower.size() && match; ++k) {
        char c = head[i + k];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        match = c == name_lower[k];
      }
      if (match) return i + name_lower.size();
    }
    return std::string_view::npos;
  }

  /// One publish with no streams listening: proves the endpoint accepts our requests.
  bool publish_check() {
    queue_publish(seq_++);
    auto t0 = now_ns();
    while (pub_.inflight > 0 && seconds_since(t0) < 5 && pub_.fd >= 0) {
      flush_publisher();
      poll_once(10);
    }
    return pub_.inflight == 0 && pub_.errors == 0;
  }

  // ---- streams ----

  std::size_t open_count() const {
    std::size_t n = 0;
    for (auto& s : streams_)
      if (s->state != Stream::State::closed) ++n;
    return n;
  }

  void close_stream(Stream& s) {
#ifdef SSEPP_LOAD_GZIP
    if (s.inflater) {
      s.inflater.reset();
      --coded_streams_;
    }
#endif
    if (s.fd >= 0) {
      epoll_ctl(ep_, EPOLL_CTL_DEL, s.fd, nullptr);
      ::close(s.fd);
    }
    s.fd = -1;
    s.state = Stream::State::closed;
  }

  bool start_stream(std::size_t i) {
    Stream& s = *streams_[i];
    s.fd = socket_to_server();
    if (s.fd < 0) return false;
    s.state = Stream::State::connecting;
    s.head.clear();
    s.chunked = false;
    s.chunk = Stream::Chunk::size;
    s.chunk_left = 0;
    s.chunk_size_seen = false;
    s.parser.reset();
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u64 = i;
    epoll_ctl(ep_, EPOLL_CTL_ADD, s.fd, &ev);
    return true;
  }

  /// Opens streams until exactly n are open (closing the extra ones), a bounded number of
  /// handshakes at a time so no listen backlog overflows. False when they did not all open in 30 s.
  bool connect_streams(std::size_t n) {
    while (streams_.size() < n) streams_.push_back(std::make_unique<Stream>());
    for (std::size_t i = n; i < streams_.size(); ++i) close_stream(*streams_[i]);
    auto t0 = now_ns();
    const std::size_t window = 128;
    for (;;) {
      std::size_t open = 0, pending = 0;
      for (std::size_t i = 0; i < n; ++i) {
        auto st = streams_[i]->state;
        if (st == Stream::State::body)
          ++open;
        else if (st != Stream::State::closed)
          ++pending;
      }
      if (open == n) return true;
      if (seconds_since(t0) > 30 || past_deadline()) {
        std::fprintf(stderr, "ssepp-load: %zu of %zu streams open after %.0f s\n", open, n,
                     seconds_since(t0));
        return false;
      }
      for (std::size_t i = 0; i < n && pending < window; ++i)
        if (streams_[i]->state == Stream::State::closed) {
          if (!start_stream(i)) return false;
          ++pending;
        }
      poll_once(5);
    }
  }

  void on_stream(std::size_t i, std::uint32_t events) {
    Stream& s = *streams_[i];
    if (s.state == Stream::State::connecting) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) return close_stream(s);
      char req[512];
      int n = std::snprintf(req, sizeof req,
                            "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n"
                            "Cache-Control: no-cache\r\n%s\r\n",
                            o_.path.c_str(), o_.host.c_str(), o_.port,
                            o_.gzip ? "Accept-Encoding: gzip\r\n" : "");
      if (::send(s.fd, req, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) return close_stream(s);
      s.state = Stream::State::head;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      epoll_ctl(ep_, EPOLL_CTL_MOD, s.fd, &ev);
      return;
    }
    for (;;) {
      ssize_t r = ::recv(s.fd, read_buf_.data(), read_buf_.size(), 0);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        ++streams_closed_;
        return close_stream(s);
      }
      if (r < 0) return;
      bytes_ += static_cast<std::uint64_t>(r);
      recv_ns_ = now_ns();
      std::string_view in(read_buf_.data(), static_cast<std::size_t>(r));
      if (s.state == Stream::State::head) {
        s.head.append(in);
        auto end = s.head.find("\r\n\r\n");
        if (end == std::string::npos) {
          if (s.head.size() > 16384) close_stream(s);
          return;
        }
        if (s.head.compare(0, 12, "HTTP/1.1 200") != 0 &&
            s.head.compare(0, 12, "HTTP/1.0 200") != 0) {
          std::fprintf(stderr, "ssepp-load: stream refused: %s\n",
                       s.head.substr(0, s.head.find('\r')).c_str());
          return close_stream(s);
        }
        auto te = find_header(std::string_view(s.head).substr(0, end), "transfer-encoding:");
        s.chunked =
            te != std::string_view::npos &&
            s.head.substr(te, s.head.find('\r', te) - te).find("chunked") != std::string::npos;
#ifdef SSEPP_LOAD_GZIP
        auto ce = find_header(std::string_view(s.head).substr(0, end), "content-encoding:");
        if (o_.gzip && ce != std::string_view::npos &&
            s.head.substr(ce, s.head.find('\r', ce) - ce).find("gzip") != std::string::npos) {
          s.inflater = std::make_unique<ssepp::Decompressor>(ssepp::Format::gzip);
          ++coded_streams_;
        }
#endif
        s.state = Stream::State::body;
        std::string rest = s.head.substr(end + 4);
        s.head.clear();
        s.head.shrink_to_fit();
        if (!body(s, rest)) return close_stream(s);
      } else if (!body(s, in)) {
        return close_stream(s);
      }
      if (static_cast<std::size_t>(r) < read_buf_.size()) return;
    }
  }

  /// Body bytes: de-chunks when needed and feeds the parser. False on a malformed stream.
  bool body(Stream& s, std::string_view in) {
    if (!s.chunked) return feed(s, in);
    while (!in.empty()) {
      switch (s.chunk) {
        case Stream::Chunk::size: {
          char c = in.front();
          in.remove_prefix(1);
          if (c == '\n') {
            if (!s.chunk_size_seen) return false;
            s.chunk = s.chunk_left == 0 ? Stream::Chunk::done : Stream::Chunk::data;
            s.chunk_size_seen = false;
          } else if (c == '\r') {
            // the CR of the size line's CRLF
          } else {
            int d = (c >= '0' && c <= '9')   ? c - '0'
                    : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                    : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                             : -1;
            if (d < 0) return false;
            s.chunk_left = s.chunk_left * 16 + static_cast<std::size_t>(d);
            s.chunk_size_seen = true;
          }
          break;
        }
        case Stream::Chunk::data: {
          std::size_t take = std::min(s.chunk_left, in.size());
          if (!feed(s, in.substr(0, take))) return false;
          in.remove_prefix(take);
          s.chunk_left -= take;
          if (s.chunk_left == 0) s.chunk = Stream::Chunk::data_end;
          break;
        }
        case Stream::Chunk::data_end: {
          char c = in.front();
          in.remove_prefix(1);
          if (c == '\n')
            s.chunk = Stream::Chunk::size;
          else if (c != '\r')
            return false;
          break;
        }
        case Stream::Chunk::done:
          return false;  // the server ended the stream
      }
    }
    return true;
  }

  /// Content bytes of a stream: inflated when gzip-coded, then parsed.
  bool feed(Stream& s, std::string_view bytes) {
    body_bytes_ += bytes.size();
#ifdef SSEPP_LOAD_GZIP
    if (s.inflater) {
      for (;;) {
        inflated_.clear();
        auto r = s.inflater->decompress_to(inflated_, bytes);
        if (!r) return false;
        bytes.remove_prefix(r->consumed);
        if (!parse(s, inflated_)) return false;
        if (!r->more && (bytes.empty() || r->consumed == 0)) return bytes.empty();
      }
    }
#endif
    return parse(s, bytes);
  }

  bool parse(Stream& s, std::string_view bytes) {
    inflated_bytes_ += bytes.size();
    return s.parser.feed(bytes, [this](const ssepp::EventView& ev) { on_event(ev.data); })
        .has_value();
  }

  /// An event's data holds "t=<send ns> s=<seq>" somewhere (some servers quote it as JSON).
  void on_event(std::string_view data) {
    auto t = data.find("t=");
    if (t == std::string_view::npos) return;
    std::uint64_t sent = 0, seq = 0;
    auto r = std::from_chars(data.data() + t + 2, data.data() + data.size(), sent);
    if (r.ec != std::errc() || r.ptr + 3 > data.data() + data.size() || r.ptr[1] != 's' ||
        r.ptr[2] != '=')
      return;
    std::from_chars(r.ptr + 3, data.data() + data.size(), seq);
    ++events_;
    if (seq < window_first_ || seq >= window_end_) return;
    ++window_delivered_;
    last_delivery_ns_ = recv_ns_;
    hist_.add(recv_ns_ > sent ? recv_ns_ - sent : 0);
  }

  // ---- loop ----

  void poll_once(int timeout_ms) {
    epoll_event evs[256];
    int n = epoll_wait(ep_, evs, 256, timeout_ms);
    for (int k = 0; k < n; ++k) {
      if (evs[k].data.u64 == publisher_tag) {
        if (evs[k].events & EPOLLOUT) {
          flush_publisher();
          if (pub_.out.empty()) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u64 = publisher_tag;
            epoll_ctl(ep_, EPOLL_CTL_MOD, pub_.fd, &ev);
          }
        }
        if ((evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && pub_.fd >= 0) read_publisher();
      } else {
        on_stream(static_cast<std::size_t>(evs[k].data.u64), evs[k].events);
      }
    }
  }

  void want_publisher_out() {
    if (pub_.fd < 0 || pub_.out.empty()) return;
    flush_publisher();
    if (!pub_.out.empty()) {
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT;
      ev.data.u64 = publisher_tag;
      epoll_ctl(ep_, EPOLL_CTL_MOD, pub_.fd, &ev);
    }
  }

  /// Reads whatever arrives for `seconds`, publishing nothing.
  void pump(double seconds) {
    auto t0 = now_ns();
    while (seconds_since(t0) < seconds) poll_once(5);
  }

  /// Reads until no byte arrived for `quiet` seconds, or `limit` seconds passed.
  void settle(double quiet, double limit) {
    auto t0 = now_ns();
    recv_ns_ = now_ns();
    while (seconds_since(t0) < limit && static_cast<double>(now_ns() - recv_ns_) / 1e9 < quiet)
      poll_once(5);
  }

  /// Publishes at `rate` deliveries/s to n streams for warm-up + window, then drains.
  Result step(std::size_t n, double rate) {
    Result res;
    res.rate = rate;
    connect_streams(n);
    res.streams = open_count();
    const double per_s = rate / static_cast<double>(n);
    res.broadcasts_per_s = per_s;
    hist_.clear();
    window_delivered_ = 0;
    window_first_ = window_end_ = ~0ull;  // nothing counts during the warm-up
    pub_.errors = 0;
    const std::uint64_t closed0 = streams_closed_;

    auto run_for = [&](double seconds, bool window) {
      const auto t0 = now_ns();
      std::uint64_t published = 0;
      while (true) {
        double el = seconds_since(t0);
        if (el >= seconds) break;
        auto due = static_cast<std::uint64_t>(el * per_s) + 1;
        bool queued = false;
        while (published < due && pub_.inflight < o_.max_inflight && pub_.fd >= 0) {
          queue_publish(seq_++);
          if (window) window_end_ = seq_;
          ++published;
          queued = true;
        }
        if (published + 2 < due && pub_.inflight >= o_.max_inflight) res.publisher_behind = true;
        if (queued) want_publisher_out();
        res.max_inflight = std::max(res.max_inflight, pub_.inflight);
        double next = static_cast<double>(published) / per_s - seconds_since(t0);
        poll_once(next > 0.001 ? std::min(5, static_cast<int>(next * 1000)) : 0);
      }
      // Whatever could not be sent in time makes this rate unsustainable.
      if (published + 1 < static_cast<std::uint64_t>(seconds * per_s * 0.98))
        res.publisher_behind = true;
      return published;
    };

    if (o_.warmup > 0) run_for(o_.warmup, false);
    window_first_ = seq_;
    window_end_ = seq_;
    const double cpu0 = process_cpu_seconds(o_.server_pid), self0 = self_cpu_seconds();
    const auto w0 = now_ns();
    const std::uint64_t events0 = events_, wire0 = bytes_, body0 = body_bytes_,
                        inflated0 = inflated_bytes_;
    res.published = run_for(o_.step, true);
    const double wall = seconds_since(w0);
    res.received = events_ - events0;
    res.wire_bytes = bytes_ - wire0;
    res.body_bytes = body_bytes_ - body0;
    res.inflated_bytes = inflated_bytes_ - inflated0;
    res.coded_streams = coded_streams_;
    res.window = wall;
    res.server_cpu = (process_cpu_seconds(o_.server_pid) - cpu0) / wall;
    res.client_cpu = (self_cpu_seconds() - self0) / wall;
    res.rss_kb = process_rss_kb(o_.server_pid);
    res.expected = res.published * res.streams;
    // Drain: stragglers of the window, bounded.
    const auto d0 = now_ns();
    while (window_delivered_ < res.expected && seconds_since(d0) < o_.drain) poll_once(2);
    res.delivered = window_delivered_;
    res.publish_errors = pub_.errors;
    res.streams_closed = streams_closed_ - closed0;
    res.p50_ms = hist_.quantile(0.50) / 1e6;
    res.p99_ms = hist_.quantile(0.99) / 1e6;
    res.max_ms = hist_.quantile(1.0) / 1e6;
    const double frac =
        res.expected ? static_cast<double>(res.delivered) / static_cast<double>(res.expected) : 0;
    res.pass = !res.publisher_behind && res.publish_errors == 0 && res.expected > 0 &&
               frac >= o_.min_delivered && res.p99_ms <= o_.max_p99_ms;
    // Leave nothing in flight for the next step: wait for the server's backlog to clear.
    window_first_ = window_end_ = ~0ull;
    if (!res.pass) settle(0.3, 10);
    while (pub_.inflight > 0 && pub_.fd >= 0 && seconds_since(d0) < 15) poll_once(5);
    if (pub_.fd < 0) open_publisher_again();
    return res;
  }

  void open_publisher_again() {
    pub_ = Publisher{};
    open_publisher();
  }

  void print_result(const char* kind, std::size_t n, const Result& r) {
    const double frac =
        r.expected ? static_cast<double>(r.delivered) / static_cast<double>(r.expected) : 0;
    std::printf(
        "{\"kind\":\"%s\",\"label\":\"%s\",\"clients\":%zu,\"streams\":%zu,\"deliveries_per_s\":%."
        "0f,"
        "\"broadcasts_per_s\":%.2f,\"published\":%llu,\"expected\":%llu,\"delivered\":%llu,"
        "\"received_in_window\":%llu,\"window_s\":%.3f,\"delivered_frac\":%.5f,\"p50_ms\":%.3f,"
        "\"p99_ms\":%.3f,\"max_ms\":%.3f,"
        "\"server_cpu\":%.3f,\"client_cpu\":%.3f,\"rss_kb\":%ld,\"publisher_behind\":%s,"
        "\"publish_errors\":%llu,\"max_inflight\":%zu,\"streams_closed\":%llu,\"wire_bytes\":%llu,"
        "\"body_bytes\":%llu,\"inflated_bytes\":%llu,\"coded_streams\":%zu,\"pass\":%s}\n",
        kind, o_.label.c_str(), n, r.streams, r.rate, r.broadcasts_per_s,
        static_cast<unsigned long long>(r.published), static_cast<unsigned long long>(r.expected),
        static_cast<unsigned long long>(r.delivered), static_cast<unsigned long long>(r.received),
        r.window, frac, r.p50_ms, r.p99_ms, r.max_ms, r.server_cpu, r.client_cpu, r.rss_kb,
        r.publisher_behind ? "true" : "false", static_cast<unsigned long long>(r.publish_errors),
        r.max_inflight, static_cast<unsigned long long>(r.streams_closed),
        static_cast<unsigned long long>(r.wire_bytes), static_cast<unsigned long long>(r.body_bytes),
        static_cast<unsigned long long>(r.inflated_bytes), r.coded_streams, r.pass ? "true" : "false");
    std::fflush(stdout);
  }

  /// One rate of the search: tried again up to --retries times while it fails, so a moment when
  /// the machine is busy elsewhere does not decide it. Prints every attempt.
  Result attempt(std::size_t n, double rate) {
    Result r;
    for (int k = 0; k <= o_.retries && !past_deadline(); ++k) {
      r = step(n, rate);
      print_result("step", n, r);
      if (r.pass) break;
    }
    return r;
  }

  /// Grows the rate by --factor until a step fails, then bisects (geometrically) --bisect times.
  /// Prints each step and the result; returns the sustainable rate (0 when even the first failed).
  double search(std::size_t n, double start) {
    start = std::max(start, static_cast<double>(n));  // at least one broadcast per second
    Result best;
    double lo = 0, hi = 0, rate = start;
    while (!past_deadline() && rate <= o_.max_rate) {
      Result r = attempt(n, rate);
      if (!r.pass) {
        hi = rate;
        break;
      }
      lo = rate;
      best = r;
      rate *= o_.factor;
    }
    if (lo == 0 && hi > 0) {
      // Even the first rate failed: walk down.
      for (double down = hi / o_.factor; down >= static_cast<double>(n) / 4 && !past_deadline();
           down /= o_.factor) {
        Result r = attempt(n, down);
        if (r.pass) {
          lo = down;
          best = r;
          break;
        }
        hi = down;
      }
    }
    for (int k = 0; k < o_.bisect && lo > 0 && hi > 0 && !past_deadline(); ++k) {
      double mid = std::sqrt(lo * hi);
      Result r = attempt(n, mid);
      if (r.pass) {
        lo = mid;
        best = r;
      } else {
        hi = mid;
      }
    }
    print_result("sustainable", n, best);
    return lo;
  }

  static constexpr std::uint64_t publisher_tag = ~0ull;
  Options o_;
  int ep_ = -1;
  sockaddr_in addr_{};
  std::uint64_t start_ = 0;
  std::vector<std::unique_ptr<Stream>> streams_;
  Publisher pub_;
  std::vector<char> read_buf_;
  std::uint64_t seq_ = 1;
  std::uint64_t window_first_ = ~0ull, window_end_ = ~0ull;
  std::uint64_t window_delivered_ = 0, events_ = 0, bytes_ = 0, streams_closed_ = 0;
  std::uint64_t recv_ns_ = 0;
  std::uint64_t last_delivery_ns_ = 0;  // when the window's latest event arrived
  std::uint64_t body_bytes_ = 0, inflated_bytes_ = 0;
  std::size_t coded_streams_ = 0;
  std::string inflated_;
  Histogram hist_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_options(argc, argv);
  if (o.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(static_cast<std::size_t>(o.cpu), &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) std::perror("ssepp-load: sched_setaffinity");
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  Load load(std::move(o));
  return load.run();
}
