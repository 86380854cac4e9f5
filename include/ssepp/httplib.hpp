// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// ssepp::httplib (CMake target ssepp::httplib): serve an SSE endpoint from a cpp-httplib server.
// Not part of ssepp.hpp: the core includes no HTTP stack.
//
//   ssepp::Broadcaster<ssepp::Mailbox> hub;
//   ssepp::httplib::EventEndpoint events(hub);
//   server.Get("/events", events);            // GET /events?channel=news, Last-Event-ID replay
//   ...
//   (void)events.shutdown();                  // every stream ends: queued events, final chunk
//   server.stop();
//
// Inside namespace ssepp, `httplib` names this namespace: spell cpp-httplib's `::httplib`.
#pragma once

#include <ssepp/broadcaster.hpp>
#include <ssepp/coding.hpp>
#include <ssepp/config.hpp>
#include <ssepp/cors.hpp>
#include <ssepp/encoder.hpp>
#include <ssepp/error.hpp>
#include <ssepp/event.hpp>
#include <ssepp/http.hpp>
#include <ssepp/mailbox.hpp>
#include <ssepp/result.hpp>

#include <httplib.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE
namespace httplib {

/// How a stream served by an `EventEndpoint` ended.
enum class EndReason {
  /// Its mailbox was closed by the broadcaster (`close_all`, `disconnect`): what was queued was
  /// written, then the final chunk, then the connection was closed.
  ended,
  /// Its mailbox overflowed (the client reads too slowly): closed at once, without the final
  /// chunk; the client reconnects with its Last-Event-ID and replays what it missed.
  cut,
  /// A write failed, or the socket stayed unwritable for the server's write timeout: the client
  /// went away.
  write_failed,
  /// The server stopped (`::httplib::Server::stop`) while the stream was open.
  stopped,
};

/// How many `EndReason`s there are (the size of `EndpointStats::ended`).
inline constexpr std::size_t end_reason_count = 4;

/// The enumerator's name: "ended", "cut", "write_failed" or "stopped" ("" for a value that is
/// none).
constexpr std::string_view to_string(EndReason r) noexcept {
  switch (r) {
    case EndReason::ended: return "ended";
    case EndReason::cut: return "cut";
    case EndReason::write_failed: return "write_failed";
    case EndReason::stopped: return "stopped";
  }
  return {};
}

/// What a host sees, and may add to, as a stream opens (see `ssepp::StreamStart`).
using StreamStart = ssepp::StreamStart;

/// Settings of an `EventEndpoint`.
struct EndpointOptions {
  /// Each client's queue: bounds and overflow policy (a client that overflows is cut, and
  /// replays from its Last-Event-ID when it reconnects).
  MailboxOptions mailbox;
  /// The first bytes of every stream, written as soon as the response starts, before any event
  /// (so a client on a quiet channel sees the stream open at once). Default: a bare ":\n\n".
  PreambleOptions preamble;
  /// Cross-origin policy: the stream and its refusals carry its headers.
  std::optional<CorsOptions> cors;
  /// The longest Last-Event-ID accepted; a longer or malformed one is answered with 400.
  std::size_t max_last_event_id = default_max_last_event_id;
  /// How long an idle stream waits for events before it lets cpp-httplib look at the server and
  /// the socket again: a stopped server ends its streams within this time. A stream is woken at
  /// once by events and by its mailbox closing.
  std::chrono::milliseconds wake_interval{250};
  /// Who the client is (user, pools, channels), from the request. Return nullopt to refuse it:
  /// answer `res` yourself (status, body), or it gets 403. A Last-Event-ID it sets wins over the
  /// request's. Unset: the channels are the request's `channel` query parameters.
  std::function<std::optional<ConnectOptions>(const ::httplib::Request&, ::httplib::Response&)>
      connect_options;
  /// Called once the client is connected, before anything is written (on the request's thread):
  /// sees the replay outcome and may add first bytes (a snapshot when `replay_missed()`).
  std::function<void(const ::httplib::Request&, StreamStart&)> on_open;
  /// Called when a stream ended, and why (on the connection's thread; must not throw).
  std::function<void(ClientId, EndReason)> on_end;
  /// Content coding of the streams: `ssepp::compression()` (`<ssepp/compress.hpp>`, link
  /// ssepp::compress) compresses each stream whose request accepts gzip or deflate, one sync
  /// flush per write (batch). Unset: every stream is plain. Set, every stream answers
  /// `Vary: Accept-Encoding`. A coder that fails (out of memory) ends its stream as
  /// `write_failed`. The idle release is checked at each `wake_interval`; a stream whose first
  /// write left nothing queued releases its coder at once (no deflater held on a quiet channel).
  std::shared_ptr<const StreamCoding> compression;
};

/// Counters of an `EventEndpoint`.
struct EndpointStats {
  std::size_t open = 0;          ///< streams open now
  std::uint64_t opened = 0;      ///< streams started
  std::uint64_t refused = 0;     ///< requests answered 400, 403 (`connect_options`) or 503
  std::array<std::uint64_t, end_reason_count> ended{};  ///< streams ended, by `EndReason`
  std::uint64_t writes = 0;      ///< body writes (one per batch of queued frames)
  std::uint64_t frames = 0;      ///< frames written (events, heartbeats, replays)
  std::uint64_t bytes = 0;       ///< bytes written, preamble included (coded; before chunk framing)
  std::uint64_t compressed = 0;          ///< streams opened with a content coding
  std::uint64_t uncompressed_bytes = 0;  ///< coded streams' body bytes before coding
  std::uint64_t compressed_bytes = 0;    ///< the same bytes after coding (ratio: in / out)
  std::uint64_t coder_releases = 0;      ///< idle coded streams that released their coder
};

}  // namespace httplib

namespace detail {

/// What an endpoint and all of its streams share (kept alive by each of them).
struct HttplibEndpointState {
  HttplibEndpointState(Broadcaster<Mailbox>& h, httplib::EndpointOptions o, std::string pre)
      : hub(h), options(std::move(o)), preamble(std::move(pre)) {
    if (options.cors) cors.emplace(*options.cors);
  }

  Broadcaster<Mailbox>& hub;
  const httplib::EndpointOptions options;
  const std::string preamble;
  std::optional<Cors> cors;

  mutable std::mutex mutex;  // guards open, signalled through `idle`
  std::condition_variable idle;
  std::size_t open = 0;
  std::atomic<std::uint64_t> opened{0}, refused{0}, writes{0}, frames{0}, bytes{0};
  std::atomic<std::uint64_t> compressed{0}, coded_in{0}, coded_out{0}, coder_releases{0};
  std::array<std::atomic<std::uint64_t>, httplib::end_reason_count> ended{};

  void opened_one() {
    opened.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mutex);
    ++open;
  }
  void ended_one(httplib::EndReason why) {
    ended[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mutex);
    if (--open == 0) idle.notify_all();
  }
};

/// One open stream: the writer cpp-httplib's chunked content provider calls, on the
/// connection's thread, until it returns false or the server stops.
class HttplibStream {
 public:
  HttplibStream(std::shared_ptr<HttplibEndpointState> state, Mailbox box, ClientId id,
                std::string first, std::unique_ptr<StreamCoder> coder = {})
      : state_(std::move(state)), box_(std::move(box)), id_(id), buf_(std::move(first)),
        coder_(std::move(coder)) {
    if (coder_ && state_->options.compression)
      idle_release_ = state_->options.compression->idle_release();
  }

  /// One provider call: the preamble and first bytes (first call), then every frame queued —
  /// waiting up to the wake interval for one — in one write (one chunk). When the mailbox is
  /// closed: the rest, the final chunk, and false so cpp-httplib closes the connection; when it
  /// overflowed: false at once (cut).
  bool write(::httplib::DataSink& sink) {
    const bool first_call = !started_;
    if (started_) {
      buf_.clear();
      const auto wait = state_->options.wake_interval;  // 0 would spin: wait at least 1 ms
      (void)box_.take_all(batch_, wait.count() > 0 ? wait : std::chrono::milliseconds(1));
    } else {
      started_ = true;
      (void)box_.take_all(batch_);  // the replay, written with the preamble
    }
    const bool closed = box_.closed();
    if (closed) {
      if (box_.stats().overflowed) return finish(httplib::EndReason::cut);
      (void)box_.take_all(batch_);  // closed: nothing more can arrive
    }
    for (const Frame& f : batch_) buf_.append(f.data(), f.size());
    const std::size_t frames = batch_.size();
    batch_.clear();
    std::string_view out = buf_;
    if (coder_) {  // the batch coded, with a flush: the client decodes all of it at once
      coded_.clear();
      if (!buf_.empty() && !code([&] { return coder_->encode_to(coded_, buf_); }))
        return finish(httplib::EndReason::write_failed);
      if (closed && !code([&] { return coder_->end_to(coded_); }))
        return finish(httplib::EndReason::write_failed);
      out = coded_;
      const auto now = std::chrono::steady_clock::now();
      if (first_call && idle_release_.count() > 0 && coder_->active() &&
          box_.stats().queued_frames == 0) {
        // Opened on a quiet channel: no deflater held until the idle release; the first batch
        // takes a new one primed with the history.
        last_batch_ = now;
        coder_->release();
        state_->coder_releases.fetch_add(1, std::memory_order_relaxed);
      } else if (!buf_.empty()) {
        last_batch_ = now;
      } else if (idle_release_.count() > 0 && coder_->active() &&
                 now - last_batch_ >= idle_release_) {
        coder_->release();
        state_->coder_releases.fetch_add(1, std::memory_order_relaxed);
        std::string().swap(coded_);
      }
    }
    if (!out.empty()) {
      if (!sink.write(out.data(), out.size())) return finish(httplib::EndReason::write_failed);
      state_->writes.fetch_add(1, std::memory_order_relaxed);
      state_->frames.fetch_add(frames, std::memory_order_relaxed);
      state_->bytes.fetch_add(out.size(), std::memory_order_relaxed);
      if (buf_.capacity() > (1u << 20)) std::string().swap(buf_);  // after a burst
      if (coded_.capacity() > (1u << 20)) std::string().swap(coded_);
    }
    if (closed) {
      sink.done();  // the final chunk; returning false then closes the connection
      return finish(httplib::EndReason::ended);
    }
    return true;
  }

  /// The response is gone (cpp-httplib's resource releaser): the client leaves the broadcaster
  /// (if still there), and the host hears why the stream ended.
  void release(bool success) {
    if (released_.exchange(true)) return;  // once, even if the response was copied
    using httplib::EndReason;
    if (!reason_) reason_ = success ? EndReason::stopped : EndReason::write_failed;
    box_.close();
    (void)state_->hub.disconnect(id_);  // unknown_client when the broadcaster dropped it already
    if (state_->options.on_end) state_->options.on_end(id_, *reason_);
    state_->ended_one(*reason_);
  }

 private:
  bool finish(httplib::EndReason why) {
    reason_ = why;
    return false;
  }

  /// Runs one coder call, counting its bytes in the endpoint's totals.
  template <class F>
  bool code(F&& f) {
    const CodingStats before = coder_->stats();
    const bool ok = static_cast<bool>(f());
    const CodingStats after = coder_->stats();
    state_->coded_in.fetch_add(after.bytes_in - before.bytes_in, std::memory_order_relaxed);
    state_->coded_out.fetch_add(after.bytes_out - before.bytes_out, std::memory_order_relaxed);
    return ok;
  }

  std::shared_ptr<HttplibEndpointState> state_;
  Mailbox box_;
  ClientId id_;
  std::string buf_;
  std::vector<Frame> batch_;
  std::unique_ptr<StreamCoder> coder_;  // the body's content coding, if any
  std::string coded_;
  std::chrono::milliseconds idle_release_{0};
  std::chrono::steady_clock::time_point last_batch_ = std::chrono::steady_clock::now();
  bool started_ = false;
  std::optional<httplib::EndReason> reason_;
  std::atomic<bool> released_{false};
};

}  // namespace detail

namespace httplib {

/// An SSE endpoint for a cpp-httplib server, fed by a `Broadcaster<Mailbox>`. It is the handler
/// itself (`server.Get("/events", endpoint)`); copies share one endpoint. Per request:
/// - the Last-Event-ID (header, else the `lastEventId` query parameter) is checked: malformed or
///   too long → 400;
/// - `connect_options` says who the client is (or refuses it); the client connects with it and
///   the events it missed are queued; a failed connect (e.g. after `shutdown`) → 503;
/// - `on_open` sees the replay outcome (send a snapshot when it missed events);
/// - the response is `200`, `Content-Type: text/event-stream` (the bare type: cpp-httplib
///   compresses any other text type, and a compressor holds small events back),
///   `Cache-Control: no-cache`, `X-Accel-Buffering: no`, CORS when configured; the body starts
///   at once with the preamble and any replay, then one chunk per batch of queued frames.
///
/// Every open stream holds one of the server's threads until it ends: size the pool for the
/// streams you expect (`server.new_task_queue = [] { return new ::httplib::ThreadPool(256); };`).
/// The broadcaster must outlive the server's threads (stop the server and let `listen` return
/// before destroying it). Heartbeats are the broadcaster's: call `hub.tick(now)` periodically.
class EventEndpoint {
 public:
  /// An endpoint serving `hub`'s clients. Throws `ssepp::Error` when the preamble options are
  /// invalid (a negative retry); `try_create` returns the error instead.
  explicit EventEndpoint(Broadcaster<Mailbox>& hub, EndpointOptions options = {})
      : EventEndpoint(try_create(hub, std::move(options)).value()) {}

  /// As the constructor, or `errc::invalid_retry` for a negative `options.preamble.retry`.
  static Result<EventEndpoint> try_create(Broadcaster<Mailbox>& hub, EndpointOptions options = {}) {
    auto pre = try_preamble(options.preamble);
    if (!pre) return pre.error();
    return EventEndpoint(std::make_shared<detail::HttplibEndpointState>(hub, std::move(options),
                                                                        std::move(*pre)));
  }

  /// Answers a GET (or HEAD: headers only, no client) request as an event stream (see the class).
  void operator()(const ::httplib::Request& req, ::httplib::Response& res) const {
    detail::HttplibEndpointState& s = *state_;
    if (s.cors) {
      const std::string origin = req.get_header_value("Origin");
      for (const HeaderField& h : s.cors->headers(origin))
        res.set_header(std::string(h.name), std::string(h.value));
    }
    std::optional<std::string_view> header;
    const std::string header_value = req.get_header_value("Last-Event-ID");
    if (req.has_header("Last-Event-ID")) header = header_value;
    auto last = last_event_id(header, req.target, s.options.max_last_event_id);
    if (!last) return refuse(res, 400, last.error());

    ConnectOptions who;
    if (s.options.connect_options) {
      auto given = s.options.connect_options(req, res);
      if (!given) {
        s.refused.fetch_add(1, std::memory_order_relaxed);
        if (res.status == -1) res.status = 403;
        return;
      }
      who = std::move(*given);
    } else {
      who.channels = query_parameters(req.target, "channel").values;
    }
    if (!who.last_event_id) who.last_event_id = std::move(*last);

    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    std::unique_ptr<StreamCoder> coder;
    if (s.options.compression) {
      std::string accept;  // every Accept-Encoding line, joined
      const std::size_t lines = req.get_header_value_count("Accept-Encoding");
      for (std::size_t i = 0; i < lines; ++i) {
        if (i > 0) accept += ", ";
        accept += req.get_header_value("Accept-Encoding", i);
      }
      coder = s.options.compression->negotiate(accept);
      res.set_header("Vary", "Accept-Encoding");
      if (coder) res.set_header("Content-Encoding", std::string(coder->content_encoding()));
    }
    if (req.method == "HEAD") {
      res.status = 200;
      res.set_header("Content-Type", "text/event-stream");
      return;
    }

    Mailbox box(s.options.mailbox);
    auto connected = s.hub.connect(box, std::move(who));
    if (!connected) return refuse(res, 503, connected.error());

    StreamStart start(std::move(*connected));
    if (s.options.on_open) s.options.on_open(req, start);

    std::string first;
    first.reserve(s.preamble.size() + start.first.size());
    first += s.preamble;
    first += start.first;
    if (coder) s.compressed.fetch_add(1, std::memory_order_relaxed);
    auto stream = std::make_shared<detail::HttplibStream>(state_, std::move(box), start.id,
                                                          std::move(first), std::move(coder));
    s.opened_one();
    res.status = 200;
    res.set_chunked_content_provider(
        "text/event-stream",
        [stream](std::size_t, ::httplib::DataSink& sink) { return stream->write(sink); },
        [stream](bool success) { stream->release(success); });
  }

  /// Graceful shutdown: `hub.close_all(last)` — every client gets `last` (if given) after what
  /// is queued, then the final chunk, and its connection is closed; new requests get 503. Waits
  /// up to `deadline` for the streams to end and returns how many are still open (a stream
  /// blocked writing to a full socket ends at the server's write timeout). Then stop the server.
  /// Error: `errc::invalid_event_*` for an invalid `last` (nothing is done).
  Result<std::size_t> shutdown(std::optional<Event> last = std::nullopt,
                               std::chrono::milliseconds deadline = std::chrono::seconds(1)) {
    if (auto closed = state_->hub.close_all(std::move(last)); !closed) return closed.error();
    return wait_until_idle(deadline);
  }

  /// Waits up to `timeout` until no stream is open; returns how many still are.
  std::size_t wait_until_idle(std::chrono::milliseconds timeout) const {
    std::unique_lock<std::mutex> lock(state_->mutex);
    state_->idle.wait_for(lock, timeout, [&] { return state_->open == 0; });
    return state_->open;
  }

  /// Streams open now.
  std::size_t open() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->open;
  }

  /// The counters (each exact, read one after the other).
  EndpointStats stats() const {
    const detail::HttplibEndpointState& s = *state_;
    EndpointStats st;
    st.open = open();
    st.opened = s.opened.load(std::memory_order_relaxed);
    st.refused = s.refused.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < end_reason_count; ++i)
      st.ended[i] = s.ended[i].load(std::memory_order_relaxed);
    st.writes = s.writes.load(std::memory_order_relaxed);
    st.frames = s.frames.load(std::memory_order_relaxed);
    st.bytes = s.bytes.load(std::memory_order_relaxed);
    st.compressed = s.compressed.load(std::memory_order_relaxed);
    st.uncompressed_bytes = s.coded_in.load(std::memory_order_relaxed);
    st.compressed_bytes = s.coded_out.load(std::memory_order_relaxed);
    st.coder_releases = s.coder_releases.load(std::memory_order_relaxed);
    return st;
  }

  /// The broadcaster the streams are connected to.
  Broadcaster<Mailbox>& hub() const noexcept { return state_->hub; }

 private:
  explicit EventEndpoint(std::shared_ptr<detail::HttplibEndpointState> state)
      : state_(std::move(state)) {}

  void refuse(::httplib::Response& res, int status, std::error_code why) const {
    state_->refused.fetch_add(1, std::memory_order_relaxed);
    res.status = status;
    res.set_content(why.message() + "\n", "text/plain");
  }

  std::shared_ptr<detail::HttplibEndpointState> state_;
};

/// The few-lines form: a handler serving `hub` (`server.Get("/events", serve_events(hub))`).
/// Keep an `EventEndpoint` instead when you want `shutdown` or `stats`.
inline ::httplib::Server::Handler serve_events(Broadcaster<Mailbox>& hub,
                                               EndpointOptions options = {}) {
  return EventEndpoint(hub, std::move(options));
}

}  // namespace httplib
SSEPP_END_NAMESPACE
