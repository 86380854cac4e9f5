// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
#pragma once

#include <ssepp/coding.hpp>
#include <ssepp/config.hpp>
#include <ssepp/detail/asio_batch.hpp>
#include <ssepp/detail/asio_layer.hpp>
#include <ssepp/encoder.hpp>
#include <ssepp/history.hpp>
#include <ssepp/http.hpp>
#include <ssepp/mailbox.hpp>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/status.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE
namespace asio {

/// Why an event stream ended. The first two are the host's own endings: *end* writes what is
/// queued and the final chunk, *cut* closes at once; the others are decided by the stream.
enum class EndReason {
  ended,          ///< `end()`: everything queued (and the last event) written, final chunk, close
  cut,            ///< `cut()`: closed at once, queued frames unwritten
  overflow,       ///< the Mailbox overflowed (a client that does not keep up): closed at once
  disconnected,   ///< the Mailbox was closed elsewhere (`Broadcaster::disconnect`): closed at once
  client_closed,  ///< the client closed or reset the connection (EOF, RST, broken pipe)
  write_timeout,  ///< the client's socket stayed full for `StreamOptions::write_timeout`
  end_timeout,    ///< `end(last, within)` had not drained by its deadline: closed at once
  io_error,       ///< any other socket or TLS error (the error code says which)
};

/// How many `EndReason`s there are (for per-reason counters).
inline constexpr std::size_t end_reason_count = 8;

/// The reason's name, e.g. "write_timeout" (for logs and metrics labels).
inline constexpr std::string_view to_string(EndReason r) noexcept {
  switch (r) {
    case EndReason::ended: return "ended";
    case EndReason::cut: return "cut";
    case EndReason::overflow: return "overflow";
    case EndReason::disconnected: return "disconnected";
    case EndReason::client_closed: return "client_closed";
    case EndReason::write_timeout: return "write_timeout";
    case EndReason::end_timeout: return "end_timeout";
    case EndReason::io_error: return "io_error";
  }
  return "unknown";
}

/// Timeouts of an event stream. A zero duration turns that timeout off.
struct StreamOptions {
  /// How long a client may leave its socket full (accepting no byte) before the stream is cut
  /// (`EndReason::write_timeout`): a reader that stopped reading. Over TLS, how long one batch
  /// may take to write. The timer runs only while a write waits, never for a stream that keeps up.
  std::chrono::milliseconds write_timeout{std::chrono::seconds(10)};
  /// After an end (final chunk written, then FIN or TLS close_notify): how long to wait for the
  /// client to close its side, so the last bytes are read rather than reset, before closing.
  std::chrono::milliseconds close_timeout{std::chrono::seconds(2)};
  /// Sets TCP_NODELAY on the connection when the stream starts. A stream writes whole batches
  /// itself, so Nagle's algorithm would only hold an event back until the previous write is
  /// acknowledged (up to the peer's delayed-ACK time, 40 ms on Linux).
  bool no_delay = true;
};

/// What `EventStream::start` writes before the first batch of frames.
struct StreamHead {
  /// The request's HTTP version (`major * 10 + minor`): 11 and up give a chunked body (one chunk
  /// per batch, the final chunk at the end), 10 a body delimited by the connection's close.
  unsigned version = 11;
  /// Headers added to `response_headers(version)`, e.g. CORS. Views: valid during `start()`.
  std::vector<HeaderField> headers;
  /// Bytes that open the body: the preamble, a "connected" event, a snapshot (encoded SSE, see
  /// `preamble()` and `encode_to`). Written before any frame of the mailbox.
  std::string_view first;
  /// 200: an event stream. Anything else answers a refused request instead: `body` as
  /// text/plain with Content-Length, then the connection closes (no frame is written).
  unsigned status = 200;
  std::string_view body;  ///< see `status`
  /// The body's content coding (from `StreamCoding::negotiate`), or none: plain. The stream
  /// sends its `Content-Encoding`, codes `first` and each batch (each ending in a flush, so no
  /// event is held back) and a graceful end's trailer, and releases the coder after
  /// `idle_release` without a batch (zero: never), and right after `first` when no frame waits.
  /// Add `Vary: Accept-Encoding` to `headers`.
  std::shared_ptr<StreamCoder> coder;
  std::chrono::milliseconds idle_release{0};  ///< see `coder`
};

/// Callbacks of one stream. Both run on the stream's executor, at most once, never inside the
/// call that started or ended the stream; they must not throw.
struct StreamHooks {
  /// The stream takes no more frames (a cut, or an end that began): remove the client from its
  /// Broadcaster here (`hub.disconnect(id)`). Frames already queued are still written by an end.
  std::function<void(ClientId)> on_release;
  /// The connection is closed, and why. `error` is the socket or TLS error, if any.
  std::function<void(ClientId, EndReason, std::error_code error)> on_end;
};

/// Counters of one stream (each exact, read one after the other).
struct StreamStats {
  std::uint64_t writes = 0;   ///< write calls (a gather write to the socket, or one TLS write)
  std::uint64_t batches = 0;  ///< batches of queued frames taken from the mailbox (one chunk each)
  std::uint64_t frames = 0;   ///< frames written (mailbox frames and a last event)
  std::uint64_t bytes = 0;    ///< bytes written to the next layer, head and framing included
  bool ended = false;         ///< the connection is closed
  bool compressed = false;    ///< the body has a content coding (`StreamHead::coder`)
  std::uint64_t uncompressed_bytes = 0;  ///< body bytes coded, before coding (coded streams)
  std::uint64_t compressed_bytes = 0;    ///< the same bytes after coding (coded streams)
  std::uint64_t coder_releases = 0;      ///< times an idle stream released its coder
};

/// One server-sent event stream over an Asio connection: it owns the connection (`NextLayer`: a
/// `tcp::socket`, a `beast::tcp_stream`, or an `ssl::stream` over either), the client's
/// `Mailbox` and id, and writes every frame the mailbox receives.
///
/// - **Batches.** A mailbox that wakes up hands the stream to its execution context's flush
///   queue, which writes it only after the handlers that keep sending have run: a burst of
///   publishes, a handler that sends many events, pipelined requests whose steps are handlers
///   posted one behind another. Under load the streams are written round-robin, each once per
///   round with everything that arrived since its last write, so a write carries more events as
///   the rate grows and an event waits about one round; a lone event waits a few passes through
///   the ready handlers. A batch leaves in one gather write (one HTTP/1.1 chunk): on a plain
///   socket a non-blocking `writev` of the shared frames; over TLS the batch is copied into one
///   buffer (one record instead of one per frame).
/// - **Slow readers.** When the socket is full the stream waits for it to drain, and only then
///   runs a timer: a client that accepts nothing for `write_timeout` is cut. A client that falls
///   behind by more than the mailbox's bounds is cut by the mailbox (`Overflow::close`).
/// - **Vanished clients.** A read is always pending: EOF or a reset ends the stream at once.
/// - **Endings.** `cut()` closes now; `end()` writes what is queued, an optional last event and
///   the final chunk, sends FIN (or TLS close_notify) and closes once the client has closed.
/// - **Asio habits.** Everything runs on the next layer's executor (give it a strand when
///   several threads run the io_context, as for any Beast stream); `start`, `end` and `cut` are
///   safe from any thread and post their work; pending operations keep the stream alive
///   (`shared_from_this`), so create it with `std::make_shared`.
template <class NextLayer>
class EventStream : public std::enable_shared_from_this<EventStream<NextLayer>> {
  using tcp_socket = std::decay_t<decltype(detail::socket_of(
      ::boost::beast::get_lowest_layer(std::declval<NextLayer&>())))>;
  static constexpr bool plain = detail::is_plain_layer_v<NextLayer>;
  using Clock = std::chrono::steady_clock;

 public:
  using next_layer_type = NextLayer;
  using executor_type = typename NextLayer::executor_type;

  /// Takes the connection (after the request was read: the stream writes the response) and the
  /// mailbox the client's frames arrive in. `id` is passed back to the hooks.
  EventStream(NextLayer&& next, Mailbox mailbox, ClientId id = 0, StreamOptions options = {})
      : next_(std::move(next)),
        mailbox_(std::move(mailbox)),
        id_(id),
        options_(options),
        timer_(next_.get_executor()),
        flushes_(&::boost::asio::use_service<detail::FlushQueue>(::boost::asio::query(
            next_.get_executor(), ::boost::asio::execution::context))) {}

  EventStream(const EventStream&) = delete;
  EventStream& operator=(const EventStream&) = delete;

  ~EventStream() {
    if (!released_) mailbox_.on_wake(nullptr);
  }

  /// The executor every operation of the stream runs on (the next layer's).
  executor_type get_executor() noexcept { return next_.get_executor(); }
  /// The connection. Only on the stream's executor.
  NextLayer& next_layer() noexcept { return next_; }
  /// The client id given at construction.
  ClientId id() const noexcept { return id_; }
  /// The client's mailbox (a handle sharing the queue).
  const Mailbox& mailbox() const noexcept { return mailbox_; }

  /// Starts the stream: the response head and `head.first` go out, then every batch the mailbox
  /// receives, until an ending. Call once. The head is built now (views in `head` need not live
  /// longer); the writing starts on the executor.
  void start(const StreamHead& head = {}, StreamHooks hooks = {}) {
    build_head(head);
    hooks_ = std::move(hooks);
    ::boost::asio::post(next_.get_executor(),
                        [self = this->shared_from_this()] { self->begin(); });
  }

  /// Ends the stream gracefully: what is queued is written, then `last` (an encoded event, e.g.
  /// `Frame::from_event(bye)`; empty for none), then the final chunk; then the stream sends FIN
  /// (or TLS close_notify) and closes when the client has closed, or after `close_timeout`. The
  /// mailbox is closed now and `on_release` runs. With `within` non-zero, a stream that has not
  /// drained by then is cut (`EndReason::end_timeout`). From any thread; idempotent.
  void end(Frame last = {}, std::chrono::milliseconds within = std::chrono::milliseconds::zero()) {
    ::boost::asio::post(next_.get_executor(),
                        [self = this->shared_from_this(), last = std::move(last), within]() mutable {
                          self->do_end(std::move(last), within);
                        });
  }

  /// Closes the connection now, whatever is queued (`EndReason::cut`). From any thread.
  void cut() {
    ::boost::asio::post(next_.get_executor(), [self = this->shared_from_this()] {
      self->close_now(EndReason::cut, {});
    });
  }

  /// The stream's counters. From any thread.
  StreamStats stats() const noexcept {
    StreamStats s;
    s.writes = writes_.load(std::memory_order_relaxed);
    s.batches = batches_.load(std::memory_order_relaxed);
    s.frames = frames_written_.load(std::memory_order_relaxed);
    s.bytes = bytes_.load(std::memory_order_relaxed);
    s.ended = ended_.load(std::memory_order_acquire);
    s.compressed = compressed_.load(std::memory_order_relaxed);
    s.uncompressed_bytes = coded_in_.load(std::memory_order_relaxed);
    s.compressed_bytes = coded_out_.load(std::memory_order_relaxed);
    s.coder_releases = coder_releases_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  using error_code = ::boost::system::error_code;

  tcp_socket& raw() noexcept { return detail::socket_of(::boost::beast::get_lowest_layer(next_)); }

  static void append_header(std::string& out, std::string_view name, std::string_view value) {
    out.append(name).append(": ").append(value).append("\r\n");
  }

  void build_head(const StreamHead& head) {
    if (head.status != 200) {
      reply_only_ = true;
      chunked_ = false;
      const auto reason = ::boost::beast::http::obsolete_reason(
          static_cast<::boost::beast::http::status>(head.status));
      head_ = "HTTP/1.1 " + std::to_string(head.status) + " ";
      head_.append(reason.data(), reason.size()).append("\r\n");
      append_header(head_, "Content-Type", "text/plain; charset=utf-8");
      append_header(head_, "Content-Length", std::to_string(head.body.size()));
      append_header(head_, "Connection", "close");
      for (const auto& h : head.headers) append_header(head_, h.name, h.value);
      head_ += "\r\n";
      head_.append(head.body);
      return;
    }
    chunked_ = head.version >= 11;
    coder_ = head.coder;
    compressed_.store(coder_ != nullptr, std::memory_order_relaxed);
    idle_release_ = head.idle_release;
    head_ = "HTTP/1.1 200 OK\r\n";
    // The connection closes after the stream, whatever ends it: say so (RFC 9112 9.6), or an
    // HTTP/1.1 client that read the final chunk may send its next request on it.
    for (const auto& h : response_headers(chunked_ ? 11 : 10))
      if (h.name != "Connection") append_header(head_, h.name, h.value);
    append_header(head_, "Connection", "close");
    if (chunked_) append_header(head_, "Transfer-Encoding", "chunked");
    if (coder_) append_header(head_, "Content-Encoding", coder_->content_encoding());
    for (const auto& h : head.headers) append_header(head_, h.name, h.value);
    head_ += "\r\n";
    if (head.first.empty()) return;
    if (coder_) {
      std::string coded;
      if (!code([&] { return coder_->encode_to(coded, head.first); }) || coded.empty()) return;
      last_batch_ = Clock::now();
      append_body(coded);
      // A stream that opens on a quiet channel does not hold a deflater until its idle release
      // (a reconnect storm would cost every stream the active figure): it is given back now,
      // unless frames already wait, and the first batch takes a new one primed with the history.
      if (idle_release_.count() > 0 && mailbox_.stats().queued_frames == 0) {
        coder_->release();
        coder_releases_.fetch_add(1, std::memory_order_relaxed);
      }
      return;
    }
    append_body(head.first);
  }

  /// Appends the first body bytes after the head (one chunk when chunked).
  void append_body(std::string_view first) {
    if (chunked_) {
      detail::ChunkSize size;
      size.set(first.size());
      head_.append(size.text.data(), size.size).append(first).append("\r\n");
    } else {
      head_.append(first);
    }
  }

  /// Runs one coder call, counting its bytes; false (and the error kept) when it failed.
  template <class F>
  bool code(F&& f) {
    const CodingStats before = coder_->stats();
    auto r = f();
    const CodingStats after = coder_->stats();
    coded_in_.fetch_add(after.bytes_in - before.bytes_in, std::memory_order_relaxed);
    coded_out_.fetch_add(after.bytes_out - before.bytes_out, std::memory_order_relaxed);
    if (!r) coding_error_ = r.error();
    return static_cast<bool>(r);
  }

  // ---- on the executor from here on

  void begin() {
    if (done_) return;
    if (coding_error_) return close_now(EndReason::io_error, {});
    started_ = true;
    detail::no_layer_timeout(::boost::beast::get_lowest_layer(next_));
    if (options_.no_delay) {
      error_code ignored;  // not a TCP socket (or already closed): nothing to tune
      raw().set_option(::boost::asio::ip::tcp::no_delay(true), ignored);
    }
    if constexpr (plain) {
      error_code ec;
      raw().non_blocking(true, ec);
      if (ec) return close_now(EndReason::io_error, ec);
    }
    watch();
    if (reply_only_) {
      ending_ = true;
      release();
    } else if (!ending_) {
      mailbox_.on_wake([weak = this->weak_from_this()] {
        if (auto self = weak.lock()) self->schedule_flush();
      });
    }
    arm_timer();
    if (!writing_) pump();
  }

  /// From any thread (the sender's): the stream joins its context's flush queue once, whatever
  /// the number of wake-ups; the queue flushes it after the handlers that may send more.
  void schedule_flush() {
    if (flush_posted_.exchange(true, std::memory_order_acq_rel)) return;
    flushes_->add({this->shared_from_this(), flush_ops()}, next_.get_executor());
  }

  static const detail::FlushOps* flush_ops() noexcept {
    static const detail::FlushOps ops{
        [](void* p) {
          auto& self = *static_cast<EventStream*>(p);
          ::boost::asio::dispatch(self.next_.get_executor(), [s = self.shared_from_this()] {
            s->flush_posted_.store(false, std::memory_order_release);
            s->flush();
          });
        },
        [](const void* p) {
          return static_cast<const EventStream*>(p)->mailbox_.stats().accepted_frames;
        }};
    return &ops;
  }

  void flush() {
    if (done_ || !started_) return;
    if (!ending_ && mailbox_.closed())
      return close_now(mailbox_.stats().overflowed ? EndReason::overflow : EndReason::disconnected,
                       {});
    if (!writing_) pump();
  }

  /// The read watch's handler: its operation, pending for the stream's whole life, is allocated
  /// at its own size (`detail::ExactAllocator`).
  struct WatchHandler {
    std::shared_ptr<EventStream> self;
    using allocator_type = detail::ExactAllocator<void>;
    allocator_type get_allocator() const noexcept { return {}; }
    void operator()(error_code ec, std::size_t) { self->on_read(ec); }
  };

  /// An SSE client sends nothing after its request: any completion but data means it is gone.
  void watch() {
    WatchHandler handler{this->shared_from_this()};
    if constexpr (plain)
      raw().async_read_some(::boost::asio::buffer(discard_), std::move(handler));
    else
      next_.async_read_some(::boost::asio::buffer(discard_), std::move(handler));
  }

  void on_read(error_code ec) {
    if (done_) return;
    if (!ec) return watch();
    if (closing_) return close_now(EndReason::ended, {});
    fail(ec);
  }

  /// Writes until nothing is queued or the socket is full.
  void pump() {
    for (;;) {
      if (next_buffer_ == buffers_.size() && !refill())
        return coding_error_ ? close_now(EndReason::io_error, {}) : drained();
      if constexpr (plain) {
        error_code ec;
        writes_.fetch_add(1, std::memory_order_relaxed);  // before: the bytes may arrive first
        const std::size_t n = detail::send_now(raw(), buffers_.data() + next_buffer_,
                                               buffers_.size() - next_buffer_, ec);
        if (ec == ::boost::asio::error::would_block || ec == ::boost::asio::error::try_again)
          return wait_writable();
        if (ec) return fail(ec);
        bytes_.fetch_add(n, std::memory_order_relaxed);
        consume(n);
      } else {
        flat_.clear();
        for (std::size_t i = next_buffer_; i < buffers_.size(); ++i)
          flat_.append(static_cast<const char*>(buffers_[i].data()), buffers_[i].size());
        next_buffer_ = buffers_.size();
        writing_ = true;
        stall_since_ = Clock::now();
        arm_timer();
        writes_.fetch_add(1, std::memory_order_relaxed);
        ::boost::asio::async_write(
            next_, ::boost::asio::buffer(flat_),
            [self = this->shared_from_this()](error_code ec, std::size_t n) {
              self->writing_ = false;
              if (self->done_) return;
              if (ec) return self->fail(ec);
              self->bytes_.fetch_add(n, std::memory_order_relaxed);
              self->flush();
            });
        return;
      }
    }
  }

  /// Takes every queued frame into one buffer sequence (one chunk); false when there is nothing.
  bool refill() {
    frames_.clear();
    buffers_.clear();
    next_buffer_ = 0;
    if (head_sent_) {
      if (!head_.empty()) std::string().swap(head_);  // written: an idle stream keeps no bytes
    } else {
      head_sent_ = true;
      buffers_.emplace_back(head_.data(), head_.size());
    }
    if (!reply_only_) mailbox_.take_all(frames_);
    bool final_chunk = false;
    bool finishing = false;
    if (ending_ && !final_added_) {  // the mailbox is closed: take_all got the last of it
      final_added_ = true;
      finishing = true;
      final_chunk = chunked_;
      if (!last_.empty()) frames_.push_back(std::move(last_));
    }
    if (coder_) {
      coded_.clear();
      const bool batch = !frames_.empty();
      if (batch && !code([&] { return coder_->encode_to(coded_, frames_); })) return false;
      if (finishing && !code([&] { return coder_->end_to(coded_); })) return false;
      if (batch) {
        batches_.fetch_add(1, std::memory_order_relaxed);
        frames_written_.fetch_add(frames_.size(), std::memory_order_relaxed);
        frames_.clear();
        last_batch_ = Clock::now();
        arm_timer();  // the idle release
      }
      if (!coded_.empty()) {
        if (chunked_) {
          chunk_.set(coded_.size());
          buffers_.emplace_back(chunk_.text.data(), chunk_.size);
        }
        buffers_.emplace_back(coded_.data(), coded_.size());
        if (chunked_) buffers_.emplace_back("\r\n", 2);
      }
    } else if (!frames_.empty()) {
      std::size_t total = 0;
      for (const auto& f : frames_) total += f.size();
      if (chunked_) {
        chunk_.set(total);
        buffers_.emplace_back(chunk_.text.data(), chunk_.size);
      }
      for (const auto& f : frames_) buffers_.emplace_back(f.data(), f.size());
      if (chunked_) buffers_.emplace_back("\r\n", 2);
      batches_.fetch_add(1, std::memory_order_relaxed);
      frames_written_.fetch_add(frames_.size(), std::memory_order_relaxed);
    }
    if (final_chunk) buffers_.emplace_back("0\r\n\r\n", 5);
    return !buffers_.empty();
  }

  /// Drops `n` written bytes from the front of the buffer sequence.
  void consume(std::size_t n) {
    while (n > 0 && next_buffer_ < buffers_.size()) {
      auto& b = buffers_[next_buffer_];
      if (n < b.size()) {
        b += n;
        return;
      }
      n -= b.size();
      ++next_buffer_;
    }
  }

  /// The socket is full: wait until it drains (the write timeout runs meanwhile).
  void wait_writable() {
    writing_ = true;
    stall_since_ = Clock::now();
    arm_timer();
    raw().async_wait(tcp_socket::wait_write, [self = this->shared_from_this()](error_code ec) {
      self->writing_ = false;
      if (self->done_) return;
      if (ec) return self->fail(ec);
      self->flush();
    });
  }

  /// Everything taken was written.
  void drained() {
    if (!ending_ || !final_added_ || closing_) return;
    closing_ = true;
    close_deadline_ = options_.close_timeout.count() > 0 ? Clock::now() + options_.close_timeout
                                                         : Clock::now();
    if constexpr (detail::has_async_shutdown<NextLayer>::value) {
      // close_notify; the read watch (or this) completes when the client answers or goes.
      next_.async_shutdown([self = this->shared_from_this()](error_code) {
        if (!self->done_) self->close_now(EndReason::ended, {});
      });
    } else {
      error_code ignored;
      raw().shutdown(tcp_socket::shutdown_send, ignored);  // FIN after the last byte
    }
    if (options_.close_timeout.count() <= 0) return close_now(EndReason::ended, {});
    arm_timer();
  }

  void do_end(Frame last, std::chrono::milliseconds within) {
    if (done_) return;
    if (within.count() > 0) {
      const auto at = Clock::now() + within;
      if (at < end_deadline_) end_deadline_ = at;
    }
    if (ending_) {
      if (started_) arm_timer();
      return;
    }
    if (!ending_ && mailbox_.stats().overflowed) return close_now(EndReason::overflow, {});
    ending_ = true;
    last_ = std::move(last);
    release();
    if (!started_) return;  // begin() writes it all
    arm_timer();
    if (!writing_) pump();
  }

  /// The stream takes no more frames: the mailbox is closed, the owner told.
  void release() {
    if (released_) return;
    released_ = true;
    mailbox_.on_wake(nullptr);
    mailbox_.close();
    if (hooks_.on_release) hooks_.on_release(id_);
  }

  void fail(error_code ec) {
    if (closing_) return close_now(EndReason::ended, {});
    close_now(detail::is_client_gone(ec) ? EndReason::client_closed : EndReason::io_error, ec);
  }

  void close_now(EndReason reason, error_code ec) {
    if (done_) return;
    done_ = true;
    release();
    timer_.cancel();
    error_code ignored;
    raw().close(ignored);
    frames_.clear();
    std::string().swap(head_);
    std::string().swap(coded_);
    if (coder_) coder_->release();
    ended_.store(true, std::memory_order_release);
    auto on_end = std::move(hooks_.on_end);
    hooks_ = {};
    std::error_code error(ec);
    if (!error && coding_error_) error = coding_error_;
    if (on_end) on_end(id_, reason, error);
  }

  // ---- the timer: armed for the earliest deadline in force, at most one wait pending

  Clock::time_point deadline() const noexcept {
    Clock::time_point d = end_deadline_;
    if (writing_ && options_.write_timeout.count() > 0 &&
        stall_since_ + options_.write_timeout < d)
      d = stall_since_ + options_.write_timeout;
    if (closing_ && close_deadline_ < d) d = close_deadline_;
    if (idle_due() && last_batch_ + idle_release_ < d) d = last_batch_ + idle_release_;
    return d;
  }

  /// A coder is held that the idle release will give back.
  bool idle_due() const noexcept {
    return coder_ && idle_release_.count() > 0 && !ending_ && coder_->active();
  }

  void arm_timer() {
    if (done_) return;
    const Clock::time_point d = deadline();
    if (d == Clock::time_point::max()) return;
    if (timer_armed_ && timer_at_ <= d) return;
    timer_armed_ = true;
    timer_at_ = d;
    const unsigned gen = ++timer_gen_;
    timer_.expires_at(d);  // a pending wait is cancelled: its handler sees an old generation
    timer_.async_wait([self = this->shared_from_this(), gen](error_code) { self->on_timer(gen); });
  }

  void on_timer(unsigned gen) {
    if (gen != timer_gen_) return;
    timer_armed_ = false;
    if (done_) return;
    const auto now = Clock::now();
    if (closing_ && now >= std::min(close_deadline_, end_deadline_))
      return close_now(EndReason::ended, {});
    if (now >= end_deadline_) return close_now(EndReason::end_timeout, {});
    if (idle_due() && now >= last_batch_ + idle_release_) {
      coder_->release();
      coder_releases_.fetch_add(1, std::memory_order_relaxed);
      if (!writing_ && next_buffer_ == buffers_.size()) std::string().swap(coded_);
    }
    if (writing_ && options_.write_timeout.count() > 0 &&
        now >= stall_since_ + options_.write_timeout)
      return close_now(EndReason::write_timeout, {});
    arm_timer();
  }

  NextLayer next_;
  Mailbox mailbox_;
  ClientId id_;
  StreamOptions options_;
  ::boost::asio::steady_timer timer_;
  detail::FlushQueue* flushes_;       // the execution context's (a service: outlives the stream)
  StreamHooks hooks_;
  std::string head_;                  // response head (+ first bytes) until written
  std::vector<Frame> frames_;         // the batch being written: alive until written
  std::vector<::boost::asio::const_buffer> buffers_;
  std::size_t next_buffer_ = 0;       // first buffer of buffers_ not fully written
  std::string flat_;                  // the batch in one piece, for layers that encrypt
  detail::ChunkSize chunk_;
  Frame last_;                        // the last event of an end
  std::shared_ptr<StreamCoder> coder_;  // the body's content coding, if any
  std::string coded_;                 // the coded batch being written
  std::error_code coding_error_;      // the coder failed: the stream closes
  std::chrono::milliseconds idle_release_{0};
  Clock::time_point last_batch_{};
  Clock::time_point stall_since_{};
  Clock::time_point end_deadline_ = Clock::time_point::max();
  Clock::time_point close_deadline_ = Clock::time_point::max();
  Clock::time_point timer_at_{};
  unsigned timer_gen_ = 0;
  bool timer_armed_ = false;
  bool chunked_ = true;
  bool reply_only_ = false;  // a refusal (status != 200), not a stream
  bool started_ = false;
  bool head_sent_ = false;
  bool writing_ = false;     // a write (TLS) or a wait for the socket to drain is pending
  bool ending_ = false;
  bool final_added_ = false;
  bool closing_ = false;     // all written, FIN / close_notify sent
  bool released_ = false;
  bool done_ = false;
  std::atomic<bool> flush_posted_{false};
  std::atomic<bool> ended_{false};
  std::atomic<bool> compressed_{false};  // stats() reads it from any thread
  std::atomic<std::uint64_t> writes_{0};
  std::atomic<std::uint64_t> batches_{0};
  std::atomic<std::uint64_t> frames_written_{0};
  std::atomic<std::uint64_t> bytes_{0};
  std::atomic<std::uint64_t> coded_in_{0};
  std::atomic<std::uint64_t> coded_out_{0};
  std::atomic<std::uint64_t> coder_releases_{0};
  std::array<char, 32> discard_{};  // what a client sends after its request: read, dropped
};

}  // namespace asio
SSEPP_END_NAMESPACE
