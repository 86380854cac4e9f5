// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
#pragma once

#include <ssepp/asio/stream.hpp>
#include <ssepp/broadcaster.hpp>
#include <ssepp/coding.hpp>
#include <ssepp/config.hpp>
#include <ssepp/cors.hpp>
#include <ssepp/error.hpp>
#include <ssepp/http.hpp>
#include <ssepp/mailbox.hpp>
#include <ssepp/result.hpp>

#include <boost/asio/post.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/message.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE
namespace asio {

/// What a host sees, and may add to, as a stream opens (see `ssepp::StreamStart`).
using StreamStart = ssepp::StreamStart;

/// Settings of an `EventStreams`.
struct ServeOptions {
  StreamOptions stream;  ///< timeouts of every stream
  /// Each client's queue: bounds and overflow policy. The default adds room for a replay of up
  /// to 1024 events (a Broadcaster's default history) on top of the live bounds until the first
  /// write: a client cut for falling behind missed more than the bounds hold, and must still be
  /// able to resume. Replayed frames are shared with the history (a pointer each).
  MailboxOptions mailbox = default_mailbox();
  /// The first bytes of every stream (encoded once, at construction): a comment, padding for
  /// buffering proxies, a `retry:` hint. The default is a bare ":\n\n" so headers flush at once.
  PreambleOptions preamble;
  /// Cross-origin policy: the stream's response (and refusals) carry its headers.
  std::optional<CorsOptions> cors;
  /// The longest Last-Event-ID accepted; a longer or malformed one is answered with 400.
  std::size_t max_last_event_id = default_max_last_event_id;
  /// Called when a stream ended, and why (on its executor; must not throw).
  std::function<void(ClientId, EndReason, std::error_code)> on_end;
  /// Content coding of the streams: `ssepp::compression()` (`<ssepp/compress.hpp>`, link
  /// ssepp::compress) compresses each stream whose request accepts gzip or deflate, one sync
  /// flush per batch. Unset: every stream is plain. Set, every stream answers
  /// `Vary: Accept-Encoding`.
  std::shared_ptr<const StreamCoding> compression;
  /// How a client joins the broadcaster; empty: `hub.connect(mailbox, who)`. Set it to connect
  /// through what stands in front of the hub, e.g. a `RedisStreamBus` (whose connect replays
  /// from Redis what is older than the local history). It must connect to the same hub.
  std::function<ConnectResult(const Mailbox&, ConnectOptions)> connect;

  /// The default `mailbox`: MailboxOptions' bounds, plus replay room (1024 frames, 64 MiB).
  static MailboxOptions default_mailbox() noexcept {
    MailboxOptions m;
    m.replay_frames = 1024;
    m.replay_bytes = std::size_t{64} << 20;
    return m;
  }
};

/// Counters of an `EventStreams`: open streams plus every stream that ended.
struct ServeStats {
  std::size_t open = 0;         ///< streams open now
  std::uint64_t opened = 0;     ///< streams started
  std::uint64_t refused = 0;    ///< requests answered 400 (bad Last-Event-ID) or 503
  std::array<std::uint64_t, end_reason_count> ended{};  ///< streams ended, by `EndReason`
  std::uint64_t writes = 0;     ///< see `StreamStats`
  std::uint64_t batches = 0;
  std::uint64_t frames = 0;
  std::uint64_t bytes = 0;
  std::uint64_t compressed = 0;          ///< streams opened with a content coding
  std::uint64_t uncompressed_bytes = 0;  ///< coded streams' body bytes before coding
  std::uint64_t compressed_bytes = 0;    ///< the same bytes after coding (ratio: in / out)
  std::uint64_t coder_releases = 0;      ///< idle coded streams that released their coder
};

}  // namespace asio

namespace detail {

template <class S>
std::string_view sv(const S& s) noexcept {  // beast::string_view (std or boost) to std
  return {s.data(), s.size()};
}

/// The request's Last-Event-ID (header, else `lastEventId` query parameter), validated.
template <class Body, class Fields>
Result<std::optional<std::string>> request_last_event_id(
    const ::boost::beast::http::message<true, Body, Fields>& req, std::size_t max_size) {
  std::optional<std::string_view> header;
  auto it = req.find("Last-Event-ID");
  if (it != req.end()) header = sv(it->value());
  return last_event_id(header, sv(req.target()), max_size);
}

/// The request's Accept-Encoding lines, joined with ", " (empty when it has none).
template <class Body, class Fields>
std::string accept_encoding(const ::boost::beast::http::message<true, Body, Fields>& req) {
  std::string joined;
  auto range = req.equal_range(::boost::beast::http::field::accept_encoding);
  for (auto it = range.first; it != range.second; ++it) {
    if (!joined.empty()) joined += ", ";
    joined.append(sv(it->value()));
  }
  return joined;
}

/// Registers `mailbox` with the broadcaster, through `connect` when set (the connect's error
/// when it failed).
inline Result<asio::StreamStart> connect_client(
    Broadcaster<Mailbox>& hub, const Mailbox& mailbox, ConnectOptions who,
    const std::function<ConnectResult(const Mailbox&, ConnectOptions)>& connect) {
  ConnectResult r = connect ? connect(mailbox, std::move(who)) : hub.connect(mailbox, std::move(who));
  if (!r) return r.error();
  return asio::StreamStart(std::move(*r));
}

/// Adds one stream's counters to the totals.
inline void add_to(asio::ServeStats& totals, const asio::StreamStats& s) noexcept {
  totals.writes += s.writes;
  totals.batches += s.batches;
  totals.frames += s.frames;
  totals.bytes += s.bytes;
  totals.uncompressed_bytes += s.uncompressed_bytes;
  totals.compressed_bytes += s.compressed_bytes;
  totals.coder_releases += s.coder_releases;
}

/// The registry of `EventStreams`, shared with its streams' hooks (it outlives either).
struct StreamRegistry {
  struct Ops {  // what the registry does with a stream, whatever its next layer
    void (*end)(void*, const Frame&, std::chrono::milliseconds);
    void (*cut)(void*);
    asio::StreamStats (*stats)(const void*);
  };
  template <class Stream>
  static const Ops* ops_for() {
    static const Ops ops{
        [](void* s, const Frame& last_event, std::chrono::milliseconds within) {
          static_cast<Stream*>(s)->end(last_event, within);
        },
        [](void* s) { static_cast<Stream*>(s)->cut(); },
        [](const void* s) { return static_cast<const Stream*>(s)->stats(); }};
    return &ops;
  }
  struct Entry {
    std::weak_ptr<void> stream;
    const Ops* ops = nullptr;
  };

  mutable std::mutex mutex;
  std::unordered_map<ClientId, Entry> streams;
  bool shutting_down = false;
  Frame last;                                   // the shutdown's last event
  std::chrono::milliseconds deadline{0};        // the shutdown's deadline
  std::vector<std::function<void()>> on_empty;  // shutdown completions
  asio::ServeStats totals;                      // ended streams' counters, opened, refused


  /// A stream ended: forget it; completes a shutdown when it was the last.
  void remove(ClientId id, asio::EndReason reason, const asio::StreamStats& s) {
    std::vector<std::function<void()>> done;
    {
      std::lock_guard<std::mutex> lock(mutex);
      streams.erase(id);
      ++totals.ended[static_cast<std::size_t>(reason)];
      add_to(totals, s);
      if (streams.empty()) done.swap(on_empty);
    }
    for (auto& f : done) f();
  }
};

}  // namespace detail

namespace asio {

/// The event-stream side of an Asio/Beast HTTP server (it has no listener of its own): answers
/// requests with streams fed by a `Broadcaster<Mailbox>`, knows every open stream, ends them,
/// and shuts them all down gracefully.
///
/// ```
/// ssepp::Broadcaster<ssepp::Mailbox> hub;
/// ssepp::asio::EventStreams sse(hub);
/// // in the HTTP session, once `req_` is read from `stream_` (socket, tcp_stream or ssl stream):
/// if (ssepp::target_path({req_.target().data(), req_.target().size()}) == "/events")
///   return (void)sse.serve(std::move(stream_), req_, who);
/// ```
/// On a multi-threaded io_context, give each connection a strand (`async_accept(make_strand(ioc),
/// ...)`), as for any Beast stream. `hub` and this object must outlive the streams: destroy them
/// after the io_context stopped, or after `shutdown` completed. Streams still open when their
/// io_context is destroyed end without calling `on_end`.
class EventStreams {
 public:
  using Hub = Broadcaster<Mailbox>;

  explicit EventStreams(Hub& hub, ServeOptions options = {})
      : hub_(&hub),
        options_(std::move(options)),
        preamble_(preamble(options_.preamble)),
        registry_(std::make_shared<detail::StreamRegistry>()) {
    if (options_.cors) cors_.emplace(*options_.cors);
  }

  EventStreams(const EventStreams&) = delete;
  EventStreams& operator=(const EventStreams&) = delete;

  /// Answers `req` (already read from `next`) as an event stream, taking the connection:
  /// - the Last-Event-ID (header, else `lastEventId` query parameter) goes into `who` unless the
  ///   host set one; a malformed or too long one is answered `400` (`errc::invalid_last_event_id`);
  /// - the client connects to the broadcaster with `who` (user, pools, channels) and gets the
  ///   events it missed; a connect refused for an invalid user or pool name is answered `400`
  ///   (`errc::invalid_name`), one whose replay did not fit its mailbox `503`
  ///   (`errc::sink_failed`), a request during `shutdown` or after the broadcaster's `close_all`
  ///   `503` (`errc::closed`);
  /// - `on_open` (if given) runs here, before anything is written: it sees the replay outcome and
  ///   may add first events (a snapshot when `replay_missed()`);
  /// - then the stream writes the head (status 200, `response_headers`, CORS when configured),
  ///   the preamble, the first events and every batch, until it ends.
  /// Returns the new client's id. Refusals close the connection after the answer.
  template <class NextLayer, class Body, class Fields>
  Result<ClientId> serve(NextLayer&& next,
                         const ::boost::beast::http::message<true, Body, Fields>& req,
                         ConnectOptions who = {},
                         const std::function<void(StreamStart&)>& on_open = {}) {
    static_assert(!std::is_lvalue_reference<NextLayer>::value,
                  "EventStreams::serve takes the connection: pass std::move(stream)");
    using Layer = detail::stream_layer<std::decay_t<NextLayer>>;
    using Stream = EventStream<typename Layer::type>;
    const unsigned version = req.version();
    const std::string_view origin = detail::sv(req[::boost::beast::http::field::origin]);
    std::vector<HeaderField> headers;
    if (cors_)
      for (const auto& h : cors_->headers(origin)) headers.push_back(h);

    if (closing()) {
      refuse<Stream>(Layer::take(next), 503, "shutting down", headers);
      return errc::closed;
    }
    if (!who.last_event_id) {
      auto last = detail::request_last_event_id(req, options_.max_last_event_id);
      if (!last) {
        refuse<Stream>(Layer::take(next), 400, "invalid Last-Event-ID", headers);
        return last.error();
      }
      who.last_event_id = std::move(*last);
    }
    Mailbox mailbox(options_.mailbox);
    auto connected = detail::connect_client(*hub_, mailbox, std::move(who), options_.connect);
    if (!connected) {
      if (connected.error() == errc::invalid_name) {
        refuse<Stream>(Layer::take(next), 400, "invalid user or pool name", headers);
      } else if (connected.error() == errc::closed) {
        refuse<Stream>(Layer::take(next), 503, "shutting down", headers);
      } else {
        refuse<Stream>(Layer::take(next), 503,
                       "the events missed since Last-Event-ID do not fit this stream's queue",
                       headers);
      }
      return connected.error();
    }
    StreamStart start = std::move(*connected);
    if (on_open) on_open(start);
    const ClientId id = start.id;
    std::shared_ptr<StreamCoder> coder;
    if (options_.compression) {
      coder = options_.compression->negotiate(detail::accept_encoding(req));
      headers.push_back({"Vary", "Accept-Encoding"});
    }
    auto stream = std::make_shared<Stream>(Layer::take(next), std::move(mailbox), id, options_.stream);

    bool late = false;  // a shutdown began meanwhile: end this one too
    Frame last;
    std::chrono::milliseconds within{0};
    {
      std::lock_guard<std::mutex> lock(registry_->mutex);
      registry_->streams[id] = {stream, detail::StreamRegistry::ops_for<Stream>()};
      ++registry_->totals.opened;
      if (coder) ++registry_->totals.compressed;
      if (registry_->shutting_down) {
        late = true;
        last = registry_->last;
        within = registry_->deadline;
      }
    }
    StreamHead head;
    head.version = version;
    head.headers = std::move(headers);
    std::string first;
    first.reserve(preamble_.size() + start.first.size());
    first.append(preamble_).append(start.first);
    head.first = first;
    if (coder) {
      head.coder = std::move(coder);
      head.idle_release = options_.compression->idle_release();
    }
    StreamHooks hooks;
    hooks.on_release = [hub = hub_](ClientId client) { (void)hub->disconnect(client); };
    hooks.on_end = [registry = registry_, on_end = options_.on_end,
                    weak = std::weak_ptr<Stream>(stream)](ClientId client, EndReason reason,
                                                          std::error_code ec) {
      StreamStats s;
      if (auto self = weak.lock()) s = self->stats();
      registry->remove(client, reason, s);
      if (on_end) on_end(client, reason, ec);
    };
    stream->start(head, std::move(hooks));
    if (late) stream->end(last, within);
    return id;
  }

  /// Ends client `id`'s stream gracefully (see `EventStream::end`): what is queued, then `last`
  /// (empty: none), the final chunk, close. `errc::unknown_client` when it has no open stream.
  Result<void> end(ClientId id, const Frame& last = {},
                   std::chrono::milliseconds within = std::chrono::milliseconds::zero()) {
    auto [ptr, ops] = find(id);
    if (!ptr) return errc::unknown_client;
    ops->end(ptr.get(), last, within);
    return {};
  }

  /// As `end(id, Frame::from_event(last), within)`; throws `ssepp::Error` for an invalid event.
  Result<void> end(ClientId id, const Event& last,
                   std::chrono::milliseconds within = std::chrono::milliseconds::zero()) {
    return end(id, Frame::from_event(last), within);
  }

  /// Cuts client `id`'s stream: closed now. `errc::unknown_client` when it has no open stream.
  Result<void> cut(ClientId id) {
    auto [ptr, ops] = find(id);
    if (!ptr) return errc::unknown_client;
    ops->cut(ptr.get());
    return {};
  }

  /// Graceful shutdown: every open stream ends with `last` (empty: none) after what is queued;
  /// streams that have not drained within `deadline` are cut (`EndReason::end_timeout`); new
  /// requests get 503. `done` is posted to `ex` once no stream is left open (at once when none
  /// is). Close the listener first; call it once.
  template <class Executor>
  void shutdown(const Executor& ex, std::function<void()> done, const Frame& last = {},
                std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
    std::vector<detail::StreamRegistry::Entry> open;
    auto complete = [ex, done = std::move(done)] {
      if (done) ::boost::asio::post(ex, done);
    };
    bool now = false;
    {
      std::lock_guard<std::mutex> lock(registry_->mutex);
      registry_->shutting_down = true;
      registry_->last = last;
      registry_->deadline = deadline;
      if (registry_->streams.empty()) {
        now = true;
      } else {
        registry_->on_empty.emplace_back(std::move(complete));
        for (auto& kv : registry_->streams) open.push_back(kv.second);
      }
    }
    if (now) return complete();
    for (auto& e : open)
      if (auto p = e.stream.lock()) e.ops->end(p.get(), last, deadline);
  }

  /// As `shutdown(ex, done, Frame::from_event(last), deadline)`.
  template <class Executor>
  void shutdown(const Executor& ex, std::function<void()> done, const Event& last,
                std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
    shutdown(ex, std::move(done), Frame::from_event(last), deadline);
  }

  /// Streams open now.
  std::size_t size() const {
    std::lock_guard<std::mutex> lock(registry_->mutex);
    return registry_->streams.size();
  }

  /// Counters of every stream, open or ended (walks the open ones).
  ServeStats stats() const {
    std::vector<detail::StreamRegistry::Entry> open;
    ServeStats s;
    {
      std::lock_guard<std::mutex> lock(registry_->mutex);
      s = registry_->totals;
      s.open = registry_->streams.size();
      for (auto& kv : registry_->streams) open.push_back(kv.second);
    }
    for (auto& e : open) {
      if (auto p = e.stream.lock()) {
        const StreamStats st = e.ops->stats(p.get());
        if (st.ended) continue;  // counted in the totals
        detail::add_to(s, st);
      }
    }
    return s;
  }

  /// The broadcaster the streams are connected to.
  Hub& hub() noexcept { return *hub_; }
  const ServeOptions& options() const noexcept { return options_; }

 private:
  bool closing() const {
    std::lock_guard<std::mutex> lock(registry_->mutex);
    return registry_->shutting_down;
  }

  std::pair<std::shared_ptr<void>, const detail::StreamRegistry::Ops*> find(ClientId id) const {
    std::lock_guard<std::mutex> lock(registry_->mutex);
    auto it = registry_->streams.find(id);
    if (it == registry_->streams.end()) return {nullptr, nullptr};
    return {it->second.stream.lock(), it->second.ops};
  }

  /// Answers with `status` and a short text, then closes (through an EventStream, so TLS and
  /// timeouts are handled the same way).
  template <class Stream, class NextLayer>
  void refuse(NextLayer&& next, unsigned status, std::string_view body,
              const std::vector<HeaderField>& headers) {
    {
      std::lock_guard<std::mutex> lock(registry_->mutex);
      ++registry_->totals.refused;
    }
    auto stream = std::make_shared<Stream>(std::forward<NextLayer>(next), Mailbox(MailboxOptions{1, 1}), 0,
                                           options_.stream);
    StreamHead head;
    head.status = status;
    head.body = body;
    head.headers = headers;
    stream->start(head);
  }

  Hub* hub_;
  ServeOptions options_;
  std::string preamble_;
  std::optional<Cors> cors_;
  std::shared_ptr<detail::StreamRegistry> registry_;
};

}  // namespace asio
SSEPP_END_NAMESPACE
