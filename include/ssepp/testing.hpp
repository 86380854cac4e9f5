// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// Helpers for testing code that produces event streams, without a socket:
//
//   auto parsed = ssepp::parse_events("event: t\ndata: a\n\n").value();   // bytes -> events
//
//   ssepp::RecordingSink sink;                                          // a sink that keeps all
//   ssepp::Broadcaster<ssepp::RecordingSink> hub;
//   hub.connect(sink);
//   hub.broadcast(ssepp::Event{}.with_data("hi"));
//   CHECK(sink.events() == std::vector{ssepp::Event{}.with_data("hi").with_id("1")});
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/encoder.hpp>
#include <ssepp/event.hpp>
#include <ssepp/parser.hpp>
#include <ssepp/result.hpp>
#include <ssepp/sink.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE

/// A whole stream parsed into owned values (see `parse_events`).
struct ParsedStream {
  /// The dispatched events, in order. Each holds `data`, `type` and `id` as a client receives
  /// them: `type` is "" for the default type (a client sees "message" either way, and an Event
  /// with an empty type encodes to none), `id` is set only when the event's own lines carried an
  /// `id` field (see `EventView::id_field`). `retry` and `comment` stay empty: those are
  /// properties of the stream, below.
  std::vector<Event> events;
  /// The reconnection time of the last valid `retry` field, if any.
  std::optional<std::chrono::milliseconds> retry;
  /// The last event ID a client would send on reconnection ("" when none).
  std::string last_event_id;
  /// Every comment line's text (one leading space removed), in order: heartbeats are ":" lines,
  /// so each is an empty string here.
  std::vector<std::string> comments;

  friend bool operator==(const ParsedStream& a, const ParsedStream& b) {
    return a.events == b.events && a.retry == b.retry && a.last_event_id == b.last_event_id &&
           a.comments == b.comments;
  }
  friend bool operator!=(const ParsedStream& a, const ParsedStream& b) { return !(a == b); }
};

namespace detail {

/// Collects a parser's output into a ParsedStream.
struct StreamCollector {
  ParsedStream& out;

  void on_event(const EventView& ev) {
    Event e;
    e.data = std::string(ev.data);
    if (ev.type != "message") e.type = std::string(ev.type);
    if (ev.id_field) e.id = std::string(ev.id);
    out.events.push_back(std::move(e));
  }
  void on_comment(std::string_view text) { out.comments.emplace_back(text); }
  void on_retry(std::chrono::milliseconds ms) { out.retry = ms; }
};

}  // namespace detail

/// Parses a complete stream (`bytes`, as a client would receive them from start to end of the
/// connection) into owned events, for tests of event formatting and of what a server sent.
/// An unfinished event at the end is dropped, as a client drops it. Fails with the parser's
/// limit errors (`errc::line_too_long`, `errc::event_too_large`); never throws for any input.
inline Result<ParsedStream> parse_events(std::string_view bytes,
                                         const ParserOptions& options = {}) {
  ParsedStream out;
  Parser parser(options);
  if (auto fed = parser.feed(bytes, detail::StreamCollector{out}); !fed) return fed.error();
  out.last_event_id = std::string(parser.last_event_id());
  return out;
}

/// A Sink that records every frame it is sent, for tests: connect it to a `Broadcaster` and
/// compare what arrived. A cheap handle: copies share one record (so the test keeps one copy and
/// the broadcaster stores another), safe to use from any thread.
///
/// `send` returns true until the sink is closed (by the broadcaster, or by the test to simulate
/// a connection that went away) and records nothing after that.
class RecordingSink {
 public:
  /// A new, open, empty record.
  RecordingSink() : state_(std::make_shared<State>()) {}
  // Copies share the record; a "move" copies too, so no handle is ever left without one.
  RecordingSink(const RecordingSink&) = default;
  RecordingSink& operator=(const RecordingSink&) = default;
  ~RecordingSink() = default;

  /// Records `frame` (shared, not copied); false once closed.
  bool send(const Frame& frame) {
    std::lock_guard<std::mutex> lock(state_->mutex);
    if (state_->closed) return false;
    if (!frame.empty()) state_->frames.push_back(frame);
    return true;
  }

  /// Marks the sink closed: the broadcaster calls it when it drops the client. Idempotent.
  void close() {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->closed = true;
  }

  /// True once `close()` was called.
  bool closed() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->closed;
  }

  /// Every frame recorded, in order.
  std::vector<Frame> frames() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->frames;
  }

  /// How many frames are recorded.
  std::size_t size() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->frames.size();
  }

  /// All recorded bytes, concatenated: the body a client would have read.
  std::string bytes() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    std::string out;
    for (const Frame& f : state_->frames) out.append(f.data(), f.size());
    return out;
  }

  /// The recorded bytes parsed (see `parse_events`).
  Result<ParsedStream> parsed(const ParserOptions& options = {}) const {
    return parse_events(bytes(), options);
  }

  /// The events the recorded bytes carry (see `ParsedStream::events`). Throws `ssepp::Error`
  /// when they break a parser limit, which frames encoded by ssepp never do below 1 MiB a line.
  std::vector<Event> events() const { return parsed().value().events; }

  /// Forgets what was recorded (the sink stays open or closed as it was).
  void clear() {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->frames.clear();
  }

  /// True when both handles share one record.
  friend bool operator==(const RecordingSink& a, const RecordingSink& b) noexcept {
    return a.state_ == b.state_;
  }
  friend bool operator!=(const RecordingSink& a, const RecordingSink& b) noexcept {
    return !(a == b);
  }

 private:
  struct State {
    mutable std::mutex mutex;
    std::vector<Frame> frames;
    bool closed = false;
  };
  std::shared_ptr<State> state_;
};

static_assert(is_sink_v<RecordingSink>, "RecordingSink must be a Sink");

SSEPP_END_NAMESPACE
