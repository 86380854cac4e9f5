// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// Incremental parser for `text/event-stream`: exactly the WHATWG HTML "interpret an event stream"
// algorithm (section 9.2.6), split-invariant, bounded, allocation-free in steady state.
//
//   ssepp::Parser parser;
//   auto fed = parser.feed(chunk, [](const ssepp::EventView& ev) { use(ev.type, ev.data); });
//   if (!fed) fail(fed.error());  // a limit was exceeded
//
// Standalone: includes nothing from ssepp but config, errors and Result.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/detail/parser_buffer.hpp>
#include <ssepp/detail/parser_handler.hpp>
#include <ssepp/detail/parser_scan.hpp>
#include <ssepp/detail/utf8.hpp>
#include <ssepp/error.hpp>
#include <ssepp/result.hpp>

#include <cassert>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

SSEPP_BEGIN_NAMESPACE

/// Bounds on untrusted input. Exceeding one puts the parser in a sticky error state.
struct ParserLimits {
  /// Longest line accepted, in bytes, line terminator excluded (errc::line_too_long). Also bounds
  /// what a single field can carry: event type, id, comment, one data line.
  std::size_t max_line = std::size_t{1} << 20;
  /// Largest event data accepted, in bytes: the data lines joined with LF (errc::event_too_large).
  std::size_t max_event = std::size_t{16} << 20;
};

/// What the parser does with ill-formed UTF-8.
enum class Utf8 {
  pass_through,  ///< bytes are delivered as received (no check, no cost)
  replace,       ///< each ill-formed sequence becomes U+FFFD, as a browser's UTF-8 decoder does
};

/// The enumerator's name: "pass_through" or "replace" ("" for a value that is none).
constexpr std::string_view to_string(Utf8 u) noexcept {
  switch (u) {
    case Utf8::pass_through: return "pass_through";
    case Utf8::replace: return "replace";
  }
  return {};
}

/// Parser settings.
struct ParserOptions {
  ParserLimits limits;
  Utf8 utf8 = Utf8::pass_through;
};

/// One dispatched event. The views are valid until the next call into the parser.
struct EventView {
  std::string_view type;  ///< event type; "message" when the event named none
  std::string_view data;  ///< data lines joined with LF (no trailing LF); may be empty
  std::string_view id;    ///< the last event ID in force for this event ("" when none was set)
  /// True when the event's own lines had an `id` field (which set `id`); false when `id` is
  /// inherited from an earlier event, as EventSource's `lastEventId` is.
  bool id_field = false;
};

/// What `Parser::next()` found.
enum class Parsed {
  need_more,  ///< the chunk is consumed: feed the next one (or finish)
  event,      ///< an event was dispatched: read it with `event()`
  comment,    ///< a comment line: read it with `comment()`
  retry,      ///< a valid retry field set the reconnection time: read it with `retry()`
  error,      ///< a limit was exceeded: see `error()`; sticky until `reset()`
};

/// The enumerator's name: "need_more", "event", "comment", "retry" or "error" ("" for a value
/// that is none).
constexpr std::string_view to_string(Parsed p) noexcept {
  switch (p) {
    case Parsed::need_more: return "need_more";
    case Parsed::event: return "event";
    case Parsed::comment: return "comment";
    case Parsed::retry: return "retry";
    case Parsed::error: return "error";
  }
  return {};
}

/// True when H can receive a parser's output: callable with `const EventView&`, or an object
/// with `on_event(const EventView&)` and optionally `on_comment(std::string_view)` and
/// `on_retry(std::chrono::milliseconds)`.
template <class H>
inline constexpr bool is_parser_handler_v = detail::is_parser_handler_v<H, EventView>;

#if SSEPP_HAS_CONCEPTS
/// C++20 spelling of `is_parser_handler_v`.
template <class H>
concept ParserHandler = is_parser_handler_v<H>;
#endif

/// Incremental `text/event-stream` parser: feed byte chunks of any size, get events.
///
/// Implements the WHATWG "interpret an event stream" steps exactly: one leading UTF-8 BOM
/// skipped; CR, LF and CRLF line ends (also split across chunks); `field`, `field:value`,
/// `field: value`; comments; unknown fields ignored; `id` with NUL ignored; `retry` only when all
/// ASCII digits; data lines joined with LF; dispatch on a blank line when data was given; event
/// type reset after each blank line; the last event ID persists. The output is the same however
/// the input is split. Untrusted input never throws: a limit turns into a sticky error. (Only
/// `std::bad_alloc` can leave the parser: its buffers grow, up to the limits, until they fit.)
///
/// Two faces over one core. Pull: `input(chunk)`, then `next()` until `Parsed::need_more`.
/// Push: `feed(chunk, handler)`, a loop over the pull core.
///
/// Cost: one vectorised pass over each chunk finds every CR and LF (64 bytes per step), so a line
/// costs a bit scan, not a library call; a single-data-line event inside one chunk is delivered
/// as a view into the chunk with no copy; no allocation per event once the reused buffers have
/// grown. Memory: at most `max_event + 4 * max_line` bytes of buffers (`max_event + 13 *
/// max_line` with `Utf8::replace`, whose output may be 3 times its input). Not thread-safe; one
/// parser per stream. A handler may call `reset()` but not feed the parser it is called from.
class Parser {
 public:
  /// A parser at the start of a stream.
  explicit Parser(ParserOptions options = {}) noexcept
      : options_(options), replace_(options.utf8 == Utf8::replace) {}
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;
  Parser(Parser&&) noexcept = default;
  Parser& operator=(Parser&&) noexcept = default;
  ~Parser() = default;

  // --- push face ------------------------------------------------------------------------------

  /// Parses chunk, calling handler for each event (and comment / retry when it has
  /// `on_comment` / `on_retry`), in stream order. Succeeds, or fails with the parser's error
  /// (sticky: later calls fail with it too, without parsing). The chunk need not outlive the
  /// call. Throws only `std::bad_alloc`, or what the handler throws (which abandons the rest of
  /// the chunk).
  template <class Handler>
  Result<void> feed(std::string_view chunk, Handler&& handler);

  /// End of stream: drops an unfinished line and event and readies the parser for the next
  /// stream like `reset()`. The spec dispatches nothing at end of stream (an event is dispatched
  /// only by the blank line after it), so there is nothing to hand to a handler. Fails with the
  /// sticky error if there is one (and then changes nothing).
  Result<void> finish() noexcept {
    if (error_) return error_;
    start_stream();
    return {};
  }

  // --- pull face ------------------------------------------------------------------------------

  /// Hands the parser its next chunk. The parser keeps a view of it: the chunk must stay valid,
  /// and must not be replaced, until `next()` has returned `Parsed::need_more` (or error).
  void input(std::string_view chunk);

  /// Parses up to the next output. After `Parsed::event`, `event()` holds it; after
  /// `Parsed::comment`, `comment()`; after `Parsed::retry`, `retry()`. Those views are valid
  /// until the next call into the parser. Throws only `std::bad_alloc`.
  Parsed next();

  /// The event `next()` just returned.
  const EventView& event() const noexcept { return event_; }
  /// The comment `next()` just returned: the text after the colon, one leading space removed.
  std::string_view comment() const noexcept { return comment_; }

  // --- state ----------------------------------------------------------------------------------

  /// The last event ID as EventSource keeps it: the id in force at the most recent blank line
  /// (so an id whose event was cut off by a disconnect is not taken). "" until an id is set; an
  /// empty `id` field sets it back to "". Send it as `Last-Event-ID` when reconnecting.
  std::string_view last_event_id() const noexcept { return ids_[committed_].view(); }

  /// The reconnection time from the most recent valid `retry` field, if any. Values beyond the
  /// range of milliseconds saturate.
  std::optional<std::chrono::milliseconds> retry() const noexcept { return retry_; }

  /// The sticky error (errc::line_too_long or errc::event_too_large), or success.
  std::error_code error() const noexcept { return error_; }
  /// What went wrong and where (byte offset in the stream), or "" without error.
  const std::string& error_message() const noexcept { return message_; }

  /// New connection: clears the error, the buffers (keeping their memory), a pending partial
  /// line and event, and the BOM state. Keeps the last event ID and the reconnection time, which
  /// belong to the event source rather than the connection, as in EventSource.
  void reset() noexcept {
    error_ = {};
    message_.clear();
    start_stream();
  }

  /// Sets the last event ID, e.g. one persisted from an earlier session, as if a stream had set
  /// it. Takes effect for the events that follow.
  void set_last_event_id(std::string_view id) {
    ids_[committed_].assign(id, options_.limits.max_line);
    id_dirty_ = false;
  }

  /// The settings this parser was made with.
  const ParserOptions& options() const noexcept { return options_; }

  /// Bytes of buffer memory held for reuse (capacity, not content). Bounded as described above.
  std::size_t buffer_capacity() const noexcept {
    return line_.capacity() + utf8_.capacity() + data_buf_.capacity() + type_.capacity() +
           ids_[0].capacity() + ids_[1].capacity();
  }

 private:
  static constexpr unsigned char settle_event = 1;  // clear the dispatched event's buffers
  static constexpr unsigned char settle_line = 2;   // clear the carried line a view points into
  static constexpr unsigned char bom_done = 3;

  std::uint64_t offset_of(const char* p) const noexcept {
    return base_ + static_cast<std::uint64_t>(p - begin_);
  }
  static std::string_view strip_space(std::string_view v) noexcept {
    if (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    return v;
  }

  void start_stream() noexcept;
  void skip_bom();
  void settle() noexcept;
  void release();
  Parsed carry(const char* p);
  Parsed fail(errc code, std::uint64_t line_offset);
  // 0 = nothing to report, else a Parsed value.
  int data_line(std::string_view value, bool in_chunk, std::uint64_t line_offset);
  int field_line(std::string_view line, bool in_chunk, std::uint64_t line_offset);
  int field(std::string_view name, std::string_view value, bool in_chunk,
            std::uint64_t line_offset);

  // Restores the invariant "no unread chunk" when a push loop exits early (handler exception).
  // The pending event's data, still a view into the chunk, is copied; if even that fails for
  // want of memory, the pending event is dropped (a destructor cannot throw).
  struct Drain {
    Parser& parser;
    ~Drain() {
      if (parser.p_ == parser.end_) return;
#if SSEPP_HAS_EXCEPTIONS
      try {
        parser.release();
      } catch (...) {
        parser.has_data_ = false;
        parser.data_in_buf_ = false;
      }
#else
      parser.release();
#endif
      parser.p_ = parser.end_;
    }
  };

  ParserOptions options_;
  bool replace_;

  // The chunk being parsed.
  const char* begin_ = nullptr;
  const char* p_ = nullptr;
  const char* end_ = nullptr;
  detail::LineEndScanner scan_;   // CR and LF positions in the chunk
  std::uint64_t base_ = 0;        // stream offset of begin_
  std::uint64_t carry_offset_ = 0;  // stream offset of the line in line_

  detail::ParserBuffer line_;      // a line split across chunks
  detail::ParserBuffer utf8_;      // the current line decoded (Utf8::replace, ill-formed input)
  detail::ParserBuffer data_buf_;  // data buffer, when it cannot be a view into the chunk
  std::string_view data_view_;     // data buffer as a view: one data line inside the chunk
  detail::ParserBuffer type_;      // event type buffer
  // The source's last event ID is ids_[committed_]. The spec's last event ID buffer is the same
  // buffer, or ids_[committed_ ^ 1] after an id field (id_dirty_): a blank line then swaps the
  // two instead of copying.
  detail::ParserBuffer ids_[2];
  std::optional<std::chrono::milliseconds> retry_;

  EventView event_;
  std::string_view comment_;
  std::error_code error_;
  std::string message_;

  unsigned char bom_ = 0;  // BOM bytes matched at stream start; bom_done once decided
  unsigned char settle_ = 0;
  bool skip_lf_ = false;   // the previous chunk ended with CR: a leading LF belongs to it
  bool has_data_ = false;  // the data buffer is not empty (at least one data line)
  bool data_in_buf_ = false;
  unsigned char committed_ = 0;
  bool id_dirty_ = false;  // an id field set the buffer since the last blank line
};

// --- implementation ------------------------------------------------------------------------------

template <class Handler>
Result<void> Parser::feed(std::string_view chunk, Handler&& handler) {
  static_assert(is_parser_handler_v<Handler>,
                "ssepp::Parser::feed: the handler must be callable with "
                "(const ssepp::EventView&) or have on_event(const ssepp::EventView&)");
  using H = std::remove_reference_t<Handler>;
  input(chunk);
  Drain drain{*this};
  for (;;) {
    switch (next()) {
      case Parsed::need_more: return {};
      case Parsed::event: detail::call_on_event(handler, event_); break;
      case Parsed::comment:
        if constexpr (detail::has_on_comment<H>::value) handler.on_comment(comment_);
        break;
      case Parsed::retry:
        if constexpr (detail::has_on_retry<H>::value) handler.on_retry(*retry_);
        break;
      case Parsed::error: return error_;
    }
  }
}

inline void Parser::input(std::string_view chunk) {
  assert(p_ == end_ && "ssepp::Parser::input: call next() until need_more before the next chunk");
  base_ += static_cast<std::uint64_t>(end_ - begin_);
  begin_ = p_ = chunk.data();
  end_ = begin_ + chunk.size();
  if (SSEPP_UNLIKELY(error_)) {
    begin_ = p_ = end_;
    return;
  }
  if (SSEPP_UNLIKELY(bom_ != bom_done)) skip_bom();
  if (SSEPP_UNLIKELY(skip_lf_) && p_ != end_) {
    skip_lf_ = false;
    if (*p_ == '\n') ++p_;
  }
  scan_.start(p_, end_);
}

inline void Parser::skip_bom() {
  // The UTF-8 decode step strips one leading BOM (EF BB BF), however the chunks split it.
  static constexpr char bom[3] = {'\xEF', '\xBB', '\xBF'};
  while (p_ != end_ && bom_ != bom_done) {
    if (*p_ != bom[bom_]) {
      // Not a BOM after all: the bytes matched so far start the first line.
      if (bom_ != 0) {
        carry_offset_ = 0;
        char* d = line_.prepare(bom_, options_.limits.max_line);
        for (unsigned i = 0; i < bom_; ++i) d[i] = bom[i];
        line_.commit(bom_);
      }
      bom_ = bom_done;
      return;
    }
    ++p_;
    ++bom_;
  }
}

inline Parsed Parser::next() {
  if (SSEPP_UNLIKELY(settle_ != 0)) settle();
  if (SSEPP_UNLIKELY(static_cast<bool>(error_))) return Parsed::error;
  const std::size_t max_line = options_.limits.max_line;
  const char* p = p_;
  const char* const end = end_;
  while (p != end) {
    // Line end: the first CR or LF. After a CR, an LF (possibly the first byte of the next
    // chunk) belongs to the same line end.
    const char* eol = scan_.first(p);
    if (eol == end) return carry(p);
    const char* after = eol + 1;
    if (*eol == '\r') {
      if (after == end)
        skip_lf_ = true;
      else if (*after == '\n')
        ++after;
    }

    std::string_view line(p, static_cast<std::size_t>(eol - p));
    const char* line_start = p;
    p = after;
    bool in_chunk = true;
    bool carried = false;
    if (SSEPP_UNLIKELY(!line_.empty())) {
      if (line_.size() + line.size() > max_line) return fail(errc::line_too_long, carry_offset_);
      line_.append(line, max_line);
      line = line_.view();
      in_chunk = false;
      carried = true;
    } else if (SSEPP_UNLIKELY(line.size() > max_line)) {
      return fail(errc::line_too_long, offset_of(line_start));
    }

    if (line.empty()) {
      // Blank line: dispatch. The source's last event ID takes the buffer's value; without data
      // nothing is dispatched; either way the data and event type buffers are emptied.
      const bool id_field = id_dirty_;
      if (id_dirty_) {
        committed_ ^= 1;
        id_dirty_ = false;
      }
      if (!has_data_) {
        type_.clear();
        continue;
      }
      event_.type = type_.empty() ? std::string_view("message") : type_.view();
      event_.data = data_in_buf_ ? data_buf_.view() : data_view_;
      event_.id = ids_[committed_].view();
      event_.id_field = id_field;
      settle_ |= settle_event;
      p_ = p;
      return Parsed::event;
    }

    if (SSEPP_UNLIKELY(replace_) && !detail::utf8_valid(line.data(), line.size())) {
      utf8_.clear();
      char* out = utf8_.prepare(3 * line.size(), 3 * max_line);
      utf8_.commit(detail::utf8_replace(line.data(), line.size(), out));
      line = utf8_.view();
      in_chunk = false;
    }

    const std::uint64_t line_offset = carried ? carry_offset_ : offset_of(line_start);
    int out;
    if (line.size() >= 5 && std::memcmp(line.data(), "data:", 5) == 0)
      out = data_line(strip_space(line.substr(5)), in_chunk, line_offset);
    else
      out = field_line(line, in_chunk, line_offset);
    if (SSEPP_UNLIKELY(carried)) {
      if (out != 0)
        settle_ |= settle_line;  // comment() may view line_
      else
        line_.clear();
    }
    if (out != 0) {
      if (out != static_cast<int>(Parsed::error)) p_ = p;
      return static_cast<Parsed>(out);
    }
  }
  p_ = end;
  release();
  return Parsed::need_more;
}

SSEPP_PARSER_INLINE int Parser::data_line(std::string_view value, bool in_chunk,
                                          std::uint64_t line_offset) {
  // "data": append the value, then LF, to the data buffer. The final LF is never stored: it is
  // what the dispatch step removes.
  const std::size_t max_event = options_.limits.max_event;
  if (!has_data_) {
    if (value.size() > max_event) return static_cast<int>(fail(errc::event_too_large, line_offset));
    if (in_chunk) {
      data_view_ = value;
      data_in_buf_ = false;
    } else {
      data_buf_.assign(value, max_event);
      data_in_buf_ = true;
    }
    has_data_ = true;
    return 0;
  }
  std::size_t size = data_in_buf_ ? data_buf_.size() : data_view_.size();
  if (size + 1 + value.size() > max_event)
    return static_cast<int>(fail(errc::event_too_large, line_offset));
  if (!data_in_buf_) {
    data_buf_.assign(data_view_, max_event);
    data_in_buf_ = true;
  }
  data_buf_.append('\n', value, max_event);
  return 0;
}

inline int Parser::field_line(std::string_view line, bool in_chunk,
                              std::uint64_t line_offset) {
  if (line.front() == ':') {
    // Comment: ignored by the spec, reported to whoever wants it.
    comment_ = strip_space(line.substr(1));
    return static_cast<int>(Parsed::comment);
  }
  // field:value (one leading space removed from value), or a whole line naming a field. The
  // common "id:" and "event:" need no search for the colon.
  if (line.size() >= 3 && std::memcmp(line.data(), "id:", 3) == 0) {
    std::string_view value = strip_space(line.substr(3));
    if (value.find('\0') == std::string_view::npos) {
      ids_[committed_ ^ 1].assign(value, options_.limits.max_line);
      id_dirty_ = true;
    }
    return 0;
  }
  if (line.size() >= 6 && std::memcmp(line.data(), "event:", 6) == 0) {
    type_.assign(strip_space(line.substr(6)), options_.limits.max_line);
    return 0;
  }
  std::string_view name = line, value;
  if (const void* colon = std::memchr(line.data(), ':', line.size())) {
    std::size_t at = static_cast<std::size_t>(static_cast<const char*>(colon) - line.data());
    name = line.substr(0, at);
    value = strip_space(line.substr(at + 1));
  }
  return field(name, value, in_chunk, line_offset);
}

inline int Parser::field(std::string_view name, std::string_view value, bool in_chunk,
                         std::uint64_t line_offset) {
  // Field names are compared literally, without case folding.
  switch (name.size()) {
    case 4:
      if (name == "data") return data_line(value, in_chunk, line_offset);
      break;
    case 5:
      if (name == "event") {
        type_.assign(value, options_.limits.max_line);
      } else if (name == "retry") {
        // Only ASCII digits (at least one) set the reconnection time; anything else is ignored.
        if (value.empty()) break;
        constexpr std::int64_t top = std::chrono::milliseconds::max().count();
        std::int64_t ms = 0;
        for (char c : value) {
          if (c < '0' || c > '9') return 0;
          int digit = c - '0';
          ms = ms > (top - digit) / 10 ? top : ms * 10 + digit;
        }
        retry_ = std::chrono::milliseconds(ms);
        return static_cast<int>(Parsed::retry);
      }
      break;
    case 2:
      // "id": sets the last event ID buffer, unless the value contains NUL.
      if (name == "id" && value.find('\0') == std::string_view::npos) {
        ids_[committed_ ^ 1].assign(value, options_.limits.max_line);
        id_dirty_ = true;
      }
      break;
    default: break;  // unknown field: ignored
  }
  return 0;
}

inline Parsed Parser::carry(const char* p) {
  // The rest of the chunk is the start of a line: keep it, within max_line.
  std::size_t n = static_cast<std::size_t>(end_ - p);
  if (line_.empty()) carry_offset_ = offset_of(p);
  if (line_.size() + n > options_.limits.max_line)
    return fail(errc::line_too_long, carry_offset_);
  line_.append(std::string_view(p, n), options_.limits.max_line);
  p_ = end_;
  release();
  return Parsed::need_more;
}

inline void Parser::release() {
  // The chunk is about to go away: data still viewing it moves into the data buffer.
  if (has_data_ && !data_in_buf_) {
    data_buf_.assign(data_view_, options_.limits.max_event);
    data_in_buf_ = true;
  }
}

inline void Parser::settle() noexcept {
  if (settle_ & settle_event) {
    has_data_ = false;
    data_in_buf_ = false;
    data_buf_.clear();
    type_.clear();
  }
  if (settle_ & settle_line) line_.clear();
  settle_ = 0;
}

inline Parsed Parser::fail(errc code, std::uint64_t line_offset) {
  error_ = code;
  const bool line = code == errc::line_too_long;
  message_ = std::string(line ? "line too long: the line starting at byte "
                              : "event too large: the data line starting at byte ") +
             std::to_string(line_offset) +
             (line ? " exceeds max_line (" : " takes the event's data past max_event (") +
             std::to_string(line ? options_.limits.max_line : options_.limits.max_event) +
             " bytes)";
  has_data_ = false;
  data_in_buf_ = false;
  p_ = end_;
  return Parsed::error;
}

inline void Parser::start_stream() noexcept {
  begin_ = p_ = end_ = nullptr;
  scan_ = detail::LineEndScanner{};
  base_ = carry_offset_ = 0;
  line_.clear();
  utf8_.clear();
  data_buf_.clear();
  data_view_ = {};
  type_.clear();
  // The last event ID buffer restarts from the source's last event ID: an uncommitted id is
  // dropped.
  id_dirty_ = false;
  event_ = {};
  comment_ = {};
  bom_ = 0;
  settle_ = 0;
  skip_lf_ = false;
  has_data_ = false;
  data_in_buf_ = false;
}

SSEPP_END_NAMESPACE
