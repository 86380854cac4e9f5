// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/error.hpp>
#include <ssepp/event.hpp>
#include <ssepp/result.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

SSEPP_BEGIN_NAMESPACE

inline Result<void> validate(const Event& ev) noexcept;

namespace detail {

inline std::uint64_t load_word(const char* p) noexcept {
  std::uint64_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

/// The top bit of each byte of `w` that is below 0x0E, the range that holds CR, LF and NUL.
/// Exact once tested for zero: a borrow only reaches past the lowest such byte, and that byte
/// already set its bit.
inline std::uint64_t below_0e_bits(std::uint64_t w) noexcept {
  constexpr std::uint64_t ones = 0x0101010101010101u;
  return (w - ones * 0x0E) & ~w & (ones * 0x80);
}

/// True when [p, p + n), n >= 8, holds a byte below 0x0E; read a word at a time (the last word
/// overlaps the one before it), so a short text costs a few instructions, not a call per byte.
inline bool has_byte_below_0e(const char* p, std::size_t n) noexcept {
  std::uint64_t bits = below_0e_bits(load_word(p + n - 8));
  for (std::size_t i = 0; i + 8 < n; i += 8) bits |= below_0e_bits(load_word(p + i));
  return bits != 0;
}

/// True when [p, p + n) holds CR or LF (or NUL too, when `nul`). Fields are short: text with no
/// control byte at all is passed word by word, anything else is checked byte by byte.
inline bool has_field_breaker(const char* p, std::size_t n, bool nul) noexcept {
  if (n >= 8 && !has_byte_below_0e(p, n)) return false;
  for (std::size_t i = 0; i < n; ++i) {
    char c = p[i];
    if (c == '\n' || c == '\r' || (nul && c == '\0')) return true;
  }
  return false;
}

/// True when [p, p + n) holds CR or LF. Up to 64 bytes (tiny events), text with no control byte
/// is passed word by word, cheaper than two memchr calls; otherwise memchr-class scans.
inline bool has_line_break(const char* p, std::size_t n) noexcept {
  if (n < 8) {
    for (std::size_t i = 0; i < n; ++i)
      if (p[i] == '\n' || p[i] == '\r') return true;
    return false;
  }
  if (n <= 64 && !has_byte_below_0e(p, n)) return false;
  return std::memchr(p, '\n', n) != nullptr || std::memchr(p, '\r', n) != nullptr;
}

/// Walks the lines of a text, finding each CR, LF or CRLF break with memchr. The position of the
/// next CR is remembered, so text without CR is searched for it once, not once per line.
class LineScanner {
 public:
  LineScanner(const char* p, const char* end) noexcept : p_(p), end_(end) {}

  /// The next line (possibly empty); false after the last one. The text's last line is the part
  /// after its last break (so "a\n" has two lines: "a" and "").
  bool next(std::string_view& line) noexcept {
    if (done_) return false;
    const char* brk = find_break();
    line = std::string_view(p_, static_cast<std::size_t>(brk - p_));
    if (brk == end_) {
      done_ = true;
    } else {
      p_ = (*brk == '\r' && brk + 1 != end_ && brk[1] == '\n') ? brk + 2 : brk + 1;
    }
    return true;
  }

 private:
  const char* find_break() noexcept {
    auto n = static_cast<std::size_t>(end_ - p_);
    if (n == 0) return end_;
    if (cr_ == nullptr || cr_ < p_) {
      const void* cr = std::memchr(p_, '\r', n);
      cr_ = cr ? static_cast<const char*>(cr) : end_;
    }
    const void* lf = std::memchr(p_, '\n', static_cast<std::size_t>(cr_ - p_));
    return lf ? static_cast<const char*>(lf) : cr_;
  }

  const char* p_;
  const char* end_;
  const char* cr_ = nullptr;  // next CR at or after p_, end_ when none; null before the first search
  bool done_ = false;
};

/// Decimal digits of v (for retry).
inline std::size_t decimal_size(unsigned long long v) noexcept {
  std::size_t n = 1;
  while (v >= 10) { v /= 10; ++n; }
  return n;
}

inline char* put(char* out, std::string_view s) noexcept {
  if (!s.empty()) std::memcpy(out, s.data(), s.size());
  return out + s.size();
}

inline char* put_decimal(char* out, unsigned long long v, std::size_t digits) noexcept {
  for (std::size_t i = digits; i-- > 0; v /= 10) out[i] = static_cast<char>('0' + v % 10);
  return out + digits;
}

/// Bytes of `<field>: line\n` for every line of `text` (or `<field>:\n` for an empty line).
/// `prefix` is the field name with its colon ("data:" or ":").
inline std::size_t multiline_size(std::string_view prefix, std::string_view text) noexcept {
  LineScanner lines(text.data(), text.data() + text.size());
  std::size_t size = 0;
  for (std::string_view line; lines.next(line);)
    size += prefix.size() + (line.empty() ? 0 : 1 + line.size()) + 1;
  return size;
}

inline char* put_multiline(char* out, std::string_view prefix, std::string_view text) noexcept {
  LineScanner lines(text.data(), text.data() + text.size());
  for (std::string_view line; lines.next(line);) {
    out = put(out, prefix);
    if (!line.empty()) {
      *out++ = ' ';
      out = put(out, line);
    }
    *out++ = '\n';
  }
  return out;
}

/// `name: value\n`, or `name:\n` when the value is empty (no trailing whitespace).
inline std::size_t field_size(std::string_view name, std::string_view value) noexcept {
  return name.size() + 1 + (value.empty() ? 0 : 1 + value.size()) + 1;
}

inline char* put_field(char* out, std::string_view name, std::string_view value) noexcept {
  out = put(out, name);
  *out++ = ':';
  if (!value.empty()) {
    *out++ = ' ';
    out = put(out, value);
  }
  *out++ = '\n';
  return out;
}

/// How a valid event will be written: its exact size, and whether its data is one line (the
/// common case, written with one copy and no second scan).
struct EventLayout {
  std::size_t size = 0;
  bool single_line_data = false;
};

inline EventLayout layout(const Event& ev) noexcept {
  EventLayout l;
  std::size_t n = 0;
  if (!ev.comment.empty()) n += multiline_size(":", ev.comment);
  if (!ev.type.empty()) n += field_size("event", ev.type);
  if (ev.id) n += field_size("id", *ev.id);
  if (ev.retry) n += 7 + decimal_size(static_cast<unsigned long long>(ev.retry->count())) + 1;
  l.single_line_data = !has_line_break(ev.data.data(), ev.data.size());
  n += l.single_line_data ? field_size("data", ev.data) : multiline_size("data:", ev.data);
  l.size = n + 1;
  return l;
}

/// Writes a valid event's frame (exactly layout(ev).size bytes) and returns the end.
inline char* write_event(char* out, const Event& ev, const EventLayout& l) noexcept {
  if (!ev.comment.empty()) out = put_multiline(out, ":", ev.comment);
  if (!ev.type.empty()) out = put_field(out, "event", ev.type);
  if (ev.id) out = put_field(out, "id", *ev.id);
  if (ev.retry) {
    auto ms = static_cast<unsigned long long>(ev.retry->count());
    out = put(out, "retry: ");
    out = put_decimal(out, ms, decimal_size(ms));
    *out++ = '\n';
  }
  out = l.single_line_data ? put_field(out, "data", ev.data) : put_multiline(out, "data:", ev.data);
  *out++ = '\n';
  return out;
}

inline std::size_t comment_size(std::string_view text) noexcept {
  return multiline_size(":", text) + 1;
}

inline char* write_comment(char* out, std::string_view text) noexcept {
  out = put_multiline(out, ":", text);
  *out++ = '\n';
  return out;
}

inline std::size_t retry_size(std::chrono::milliseconds ms) noexcept {
  return 7 + decimal_size(static_cast<unsigned long long>(ms.count())) + 2;
}

inline char* write_retry(char* out, std::chrono::milliseconds ms) noexcept {
  auto v = static_cast<unsigned long long>(ms.count());
  out = put(out, "retry: ");
  out = put_decimal(out, v, decimal_size(v));
  *out++ = '\n';
  *out++ = '\n';
  return out;
}

/// Grows any contiguous char buffer with size()/resize()/data() (std::string, std::vector<char>,
/// fmt::memory_buffer) by n bytes and returns where they start.
template <class Buffer>
char* grow(Buffer& buf, std::size_t n) {
  std::size_t old = buf.size();
  buf.resize(old + n);
  return reinterpret_cast<char*>(buf.data()) + old;
}

/// True for buffers with append(const char*, size_t), such as std::string.
template <class Buffer, class = void>
struct appends_chars : std::false_type {};
template <class Buffer>
struct appends_chars<Buffer, std::void_t<decltype(std::declval<Buffer&>().append(
                                 std::declval<const char*>(), std::size_t{}))>> : std::true_type {};

/// Largest frame written on the stack before it is appended (see `append_written`).
constexpr std::size_t stack_frame_size = 256;

/// Appends the n bytes that `write(out)` puts at `out`. A short frame bound for a buffer with
/// append(p, n) is written on the stack and appended in one copy: resize() would zero-fill the
/// bytes first, which costs more than writing a tiny event.
template <class Buffer, class Write>
void append_written(Buffer& buf, std::size_t n, Write&& write) {
  if constexpr (appends_chars<Buffer>::value) {
    if (n <= stack_frame_size) {
      char tmp[stack_frame_size];
      write(tmp);
      buf.append(tmp, n);
      return;
    }
  }
  write(grow(buf, n));
}

/// Copies n bytes, n <= 64, with a few fixed-size moves (the last one overlapping) instead of a
/// call: for tiny events the call costs more than the copy.
inline void copy_short(char* out, const char* p, std::size_t n) noexcept {
  if (n >= 16) {
    for (std::size_t i = 0; i + 16 < n; i += 16) std::memcpy(out + i, p + i, 16);
    std::memcpy(out + n - 16, p + n - 16, 16);
  } else if (n >= 8) {
    std::memcpy(out, p, 8);
    std::memcpy(out + n - 8, p + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(out, p, 4);
    std::memcpy(out + n - 4, p + n - 4, 4);
  } else {
    for (std::size_t i = 0; i < n; ++i) out[i] = p[i];
  }
}

/// Largest data of a data-only event that takes the short path (`append_data_only`).
constexpr std::size_t short_data_size = 64;

/// The short path for the commonest tiny frame, a data-only event (no comment, type, id or
/// retry: LLM tokens, ticks) with 1..64 bytes of one-line data: "data: <data>\n\n", built on
/// the stack and appended at once. Such an event is always valid. Returns false, having written
/// nothing, for any other event.
template <class Buffer>
bool append_data_only(Buffer& buf, const Event& ev) {
  const std::size_t n = ev.data.size();
  if (n == 0 || n > short_data_size || !ev.comment.empty() || !ev.type.empty() || ev.id ||
      ev.retry)
    return false;
  const char* p = ev.data.data();
  if (has_line_break(p, n)) return false;
  char tmp[short_data_size + 8];
  const char prefix[6] = {'d', 'a', 't', 'a', ':', ' '};
  std::memcpy(tmp, prefix, sizeof prefix);
  copy_short(tmp + 6, p, n);
  tmp[6 + n] = '\n';
  tmp[7 + n] = '\n';
  buf.append(tmp, n + 8);
  return true;
}

}  // namespace detail

/// Checks that `ev` can be sent unaltered: no CR or LF in `type`, no CR, LF or NUL in `id`,
/// `retry` not negative. Data and comments can hold anything (line breaks become new lines).
/// Succeeds (tests true) when the event is valid, else holds `errc::invalid_event_type`,
/// `invalid_event_id` or `invalid_retry`. Never throws.
inline Result<void> validate(const Event& ev) noexcept {
  if (detail::has_field_breaker(ev.type.data(), ev.type.size(), false))
    return errc::invalid_event_type;
  if (ev.id && detail::has_field_breaker(ev.id->data(), ev.id->size(), true))
    return errc::invalid_event_id;
  if (ev.retry && ev.retry->count() < 0) return errc::invalid_retry;
  return {};
}

/// Appends the frame of `ev` to `buf` (any contiguous char buffer with size(), resize(n) and
/// data(): std::string, std::vector<char>, fmt::memory_buffer). One size computation, one resize,
/// no intermediate strings; a buffer with append(p, n), such as std::string, gets a short frame
/// (up to 256 bytes) through one append instead. When `ev` is invalid, appends nothing and
/// returns the error of `validate` (the result tests false); it throws only what the buffer's
/// growth throws.
///
/// Field order, stable: comment lines, `event`, `id`, `retry`, `data` lines, blank line.
/// `data` is split on LF, CR and CRLF, one `data:` line each; empty data gives one `data:` line.
template <class Buffer>
Result<void> encode_to(Buffer& buf, const Event& ev) {
  if constexpr (detail::appends_chars<Buffer>::value) {
    if (detail::append_data_only(buf, ev)) return {};
  }
  if (auto valid = validate(ev); !valid) return valid;
  const detail::EventLayout l = detail::layout(ev);
  detail::append_written(buf, l.size, [&](char* out) { detail::write_event(out, ev, l); });
  return {};
}

/// The frame of `ev` as a string, or the error of `validate` when `ev` is invalid.
inline Result<std::string> try_encode(const Event& ev) {
  std::string out;
  if (auto done = encode_to(out, ev); !done) return done.error();
  return out;
}

/// The frame of `ev` as a string. Throws `ssepp::Error` when `ev` is invalid (see `validate`);
/// `try_encode` returns the error instead.
inline std::string encode(const Event& ev) { return try_encode(ev).value(); }

/// Appends a comment frame (`: text` lines and a blank line). Clients ignore it; proxies and
/// idle timers see traffic. Line breaks in `text` start new comment lines.
template <class Buffer>
void encode_comment_to(Buffer& buf, std::string_view text) {
  detail::write_comment(detail::grow(buf, detail::comment_size(text)), text);
}

/// A comment frame as a string; `encode_comment("")` is the keep-alive frame ":\n\n".
inline std::string encode_comment(std::string_view text) {
  std::string out;
  encode_comment_to(out, text);
  return out;
}

/// A frame that only sets the client's reconnection time: "retry: N\n\n", or
/// `errc::invalid_retry` when `ms` is negative.
inline Result<std::string> try_encode_retry(std::chrono::milliseconds ms) {
  if (ms.count() < 0) return errc::invalid_retry;
  std::string out;
  detail::write_retry(detail::grow(out, detail::retry_size(ms)), ms);
  return out;
}

/// As `try_encode_retry`, but throws `ssepp::Error` when `ms` is negative.
inline std::string encode_retry(std::chrono::milliseconds ms) {
  return try_encode_retry(ms).value();
}

namespace detail {
struct FrameAccess;
}  // namespace detail

/// Encoded bytes, immutable and shared: one allocation holds a reference count and the bytes, so
/// a broadcast encodes once and every recipient holds the same memory. Copying is one atomic
/// increment; it is safe to copy and destroy Frames from any thread.
class Frame {
 public:
  /// An empty frame (no bytes, no allocation).
  Frame() noexcept = default;

  /// A frame holding a copy of `bytes` (which should be complete SSE frames).
  explicit Frame(std::string_view bytes) : block_(allocate(bytes.size())) {
    detail::put(block_->bytes(), bytes);
  }

  /// The frame of `ev`, or the error of `validate` when `ev` is invalid.
  static Result<Frame> try_from_event(const Event& ev) {
    if (auto valid = validate(ev); !valid) return valid.error();
    const detail::EventLayout l = detail::layout(ev);
    Frame f;
    f.block_ = allocate(l.size);
    detail::write_event(f.block_->bytes(), ev, l);
    return f;
  }

  /// The frame of `ev`. Throws `ssepp::Error` when `ev` is invalid (see `validate`);
  /// `try_from_event` returns the error instead.
  static Frame from_event(const Event& ev) { return try_from_event(ev).value(); }

  /// A comment frame (see `encode_comment`).
  static Frame comment(std::string_view text) {
    Frame f;
    f.block_ = allocate(detail::comment_size(text));
    detail::write_comment(f.block_->bytes(), text);
    return f;
  }

  /// The keep-alive frame ":\n\n"; every call shares one block.
  static Frame keepalive() {
    static const Frame frame = comment({});
    return frame;
  }

  /// A retry-only frame (see `encode_retry`), or `errc::invalid_retry` when `ms` is negative.
  static Result<Frame> try_retry(std::chrono::milliseconds ms) {
    if (ms.count() < 0) return errc::invalid_retry;
    Frame f;
    f.block_ = allocate(detail::retry_size(ms));
    detail::write_retry(f.block_->bytes(), ms);
    return f;
  }

  /// As `try_retry`, but throws `ssepp::Error` when `ms` is negative.
  static Frame retry(std::chrono::milliseconds ms) { return try_retry(ms).value(); }

  /// A frame of exactly `size` bytes that `write(char* out)` puts in place: one allocation and no
  /// copy, for encoders built on Frame (such as `format_frame`). The bytes should be whole frames.
  template <class Write>
  static Frame build(std::size_t size, Write&& write) {
    Frame f;
    f.block_ = allocate(size);
    std::forward<Write>(write)(f.block_->bytes());
    return f;
  }

  Frame(const Frame& other) noexcept : block_(other.block_) {
    if (block_) block_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  Frame(Frame&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  Frame& operator=(const Frame& other) noexcept {
    Frame(other).swap(*this);
    return *this;
  }
  Frame& operator=(Frame&& other) noexcept {
    if (this != &other) {
      release();
      block_ = std::exchange(other.block_, nullptr);
    }
    return *this;
  }
  ~Frame() { release(); }

  void swap(Frame& other) noexcept { std::swap(block_, other.block_); }

  const char* data() const noexcept { return block_ ? block_->bytes() : ""; }
  std::size_t size() const noexcept { return block_ ? block_->size : 0; }
  bool empty() const noexcept { return size() == 0; }
  std::string_view view() const noexcept { return {data(), size()}; }
  operator std::string_view() const noexcept { return view(); }

  /// How many Frames share these bytes (0 for an empty frame). For tests and diagnostics.
  long use_count() const noexcept {
    return block_ ? block_->refs.load(std::memory_order_relaxed) : 0;
  }

  friend bool operator==(const Frame& a, const Frame& b) noexcept { return a.view() == b.view(); }
  friend bool operator!=(const Frame& a, const Frame& b) noexcept { return !(a == b); }

 private:
  struct Block {
    std::atomic<long> refs{1};
    std::size_t size = 0;
    char* bytes() noexcept { return reinterpret_cast<char*>(this + 1); }
  };

  static Block* allocate(std::size_t n) {
    void* raw = ::operator new(sizeof(Block) + n);
    Block* b = new (raw) Block;
    b->size = n;
    return b;
  }

  void release() noexcept {
    if (block_ && block_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      block_->~Block();
      ::operator delete(static_cast<void*>(block_));
    }
    block_ = nullptr;
  }

  friend struct detail::FrameAccess;

  Block* block_ = nullptr;
};

namespace detail {

/// Reference counting in bulk, for a fan-out (the broadcaster's): one atomic add for all
/// recipients instead of one per recipient. `add_refs(f, n)`, then up to n `borrow(f)`s, each a
/// Frame owning one of those references; a borrowed Frame nobody kept is `forget`-ten, and
/// `drop_refs` gives the rest back at once (the caller still holds `f`, so the count never
/// reaches zero there). Internal: misuse corrupts the count.
struct FrameAccess {
  static void add_refs(const Frame& f, long n) noexcept {
    if (f.block_ && n > 0) f.block_->refs.fetch_add(n, std::memory_order_relaxed);
  }
  static void drop_refs(const Frame& f, long n) noexcept {
    if (f.block_ && n > 0) f.block_->refs.fetch_sub(n, std::memory_order_acq_rel);
  }
  static Frame borrow(const Frame& f) noexcept {
    Frame b;
    b.block_ = f.block_;
    return b;
  }
  /// Lets go of the block without giving its reference back; true when `f` held one.
  static bool forget(Frame& f) noexcept { return std::exchange(f.block_, nullptr) != nullptr; }
};

}  // namespace detail

SSEPP_END_NAMESPACE
