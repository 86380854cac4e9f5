// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// Optional part (target ssepp::compress, needs zlib): gzip/deflate for event streams, sans-IO.
//  - negotiation from Accept-Encoding and the response headers that go with it;
//  - Compressor: one per stream, every batch ends in a sync flush so the client can decode each
//    event of the batch at once, with a small deflater (window and memory level are settings)
//    that an idle stream gives back and a new one continues, the same stream for the client;
//  - Decompressor: the client side, streaming, bounded in output per call and per input byte, so
//    a decompression bomb ends in an error and never in memory.
// The core headers never include this one (nor zlib).
#pragma once

#include <ssepp/coding.hpp>
#include <ssepp/config.hpp>
#include <ssepp/encoder.hpp>
#include <ssepp/error.hpp>
#include <ssepp/http.hpp>
#include <ssepp/result.hpp>

#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE

/// A content coding ssepp can send: none, gzip (RFC 1952) or deflate (the zlib format, RFC 1950,
/// which is what HTTP's "deflate" means).
enum class Encoding : unsigned char { identity, gzip, deflate };

/// The token of `e` for Content-Encoding ("identity", "gzip", "deflate").
inline constexpr std::string_view encoding_name(Encoding e) noexcept {
  switch (e) {
    case Encoding::gzip: return "gzip";
    case Encoding::deflate: return "deflate";
    case Encoding::identity: break;
  }
  return "identity";
}

/// Which codings the server is willing to use.
struct NegotiateOptions {
  bool gzip = true;
  bool deflate = true;
};

namespace detail {

inline constexpr char lower_ascii(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
inline constexpr bool iequal_ascii(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower_ascii(a[i]) != lower_ascii(b[i])) return false;
  return true;
}
/// RFC 9110 tchar.
inline constexpr bool is_tchar(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~': return true;
    default: return false;
  }
}
inline constexpr bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

/// RFC 9110 qvalue as thousandths: "0", "0.5", "1", "1.000"; -1 when malformed.
inline constexpr int parse_qvalue(std::string_view v) noexcept {
  if (v.empty() || v.size() > 5) return -1;
  if (v[0] != '0' && v[0] != '1') return -1;
  int q = (v[0] - '0') * 1000;
  if (v.size() == 1) return q;
  if (v[1] != '.') return -1;
  int scale = 100;
  for (std::size_t i = 2; i < v.size(); ++i, scale /= 10) {
    if (v[i] < '0' || v[i] > '9') return -1;
    q += (v[i] - '0') * scale;
  }
  return q > 1000 ? -1 : q;
}

/// The q (in thousandths) the header gives gzip, deflate and `*` (-1: not listed), or false when
/// the header is malformed.
struct AcceptedCodings {
  int gzip = -1;
  int deflate = -1;
  int any = -1;
};
inline constexpr bool parse_accept_encoding(std::string_view h, AcceptedCodings& out) noexcept {
  std::size_t i = 0;
  const std::size_t n = h.size();
  while (i < n) {
    while (i < n && (is_ows(h[i]) || h[i] == ',')) ++i;  // empty list elements are allowed
    if (i == n) break;
    std::size_t start = i;
    while (i < n && is_tchar(h[i])) ++i;
    if (i == start) return false;
    std::string_view coding = h.substr(start, i - start);
    int q = 1000;
    for (;;) {
      while (i < n && is_ows(h[i])) ++i;
      if (i == n || h[i] == ',') break;
      if (h[i] != ';') return false;
      ++i;
      while (i < n && is_ows(h[i])) ++i;
      std::size_t ns = i;
      while (i < n && is_tchar(h[i])) ++i;
      if (i == ns || i == n || h[i] != '=') return false;
      std::string_view name = h.substr(ns, i - ns);
      ++i;
      std::size_t vs = i;
      while (i < n && is_tchar(h[i])) ++i;
      if (i == vs) return false;  // quoted strings have no place in Accept-Encoding
      if (iequal_ascii(name, "q")) {
        q = parse_qvalue(h.substr(vs, i - vs));
        if (q < 0) return false;
      }
    }
    if (iequal_ascii(coding, "gzip") || iequal_ascii(coding, "x-gzip"))
      out.gzip = std::max(out.gzip, q);
    else if (iequal_ascii(coding, "deflate"))
      out.deflate = std::max(out.deflate, q);
    else if (coding == "*")
      out.any = std::max(out.any, q);
  }
  return true;
}

}  // namespace detail

/// The coding to send for a request's `Accept-Encoding` value (RFC 9110 12.5.3): the one of gzip
/// and deflate (as allowed by `opts`) with the highest q above 0, gzip on a tie; `*` stands for a
/// coding not listed. An empty (absent) or malformed header, or one that accepts neither, gives
/// `Encoding::identity`: the stream is sent plain, which every client can read. Several header
/// lines are joined with ", " first. Never throws.
inline constexpr Encoding negotiate_encoding(std::string_view accept_encoding,
                                             NegotiateOptions opts = {}) noexcept {
  detail::AcceptedCodings a;
  if (!detail::parse_accept_encoding(accept_encoding, a)) return Encoding::identity;
  const int gz = opts.gzip ? (a.gzip >= 0 ? a.gzip : a.any) : -1;
  const int df = opts.deflate ? (a.deflate >= 0 ? a.deflate : a.any) : -1;
  if (gz > 0 && gz >= df) return Encoding::gzip;
  if (df > 0) return Encoding::deflate;
  return Encoding::identity;
}

/// The headers that go with a negotiated coding: `Content-Encoding` (none for identity) and
/// `Vary: Accept-Encoding` (always: the body depends on that request header, so caches must
/// keep the variants apart).
inline constexpr HeaderFields compression_headers(Encoding e) noexcept {
  HeaderFields h;
  if (e != Encoding::identity) h.push_back({"Content-Encoding", encoding_name(e)});
  h.push_back({"Vary", "Accept-Encoding"});
  return h;
}

/// `response_headers(version)` followed by `compression_headers(e)`.
inline constexpr HeaderFields response_headers(unsigned version, Encoding e) noexcept {
  HeaderFields h = response_headers(version);
  for (const HeaderField& f : compression_headers(e)) h.push_back(f);
  return h;
}

namespace detail {

/// zlib's allocations, counted: every Compressor and Decompressor knows the bytes zlib holds.
struct ZlibHeap {
  std::size_t bytes = 0;
  static constexpr std::size_t header = alignof(std::max_align_t) > sizeof(std::size_t)
                                            ? alignof(std::max_align_t)
                                            : sizeof(std::size_t);
  static voidpf alloc(voidpf opaque, uInt items, uInt size) noexcept {
    const std::size_t n = static_cast<std::size_t>(items) * size;
    auto* raw = static_cast<unsigned char*>(std::malloc(n + header));
    if (raw == nullptr) return Z_NULL;
    std::memcpy(raw, &n, sizeof n);
    static_cast<ZlibHeap*>(opaque)->bytes += n;
    return raw + header;
  }
  static void free(voidpf opaque, voidpf p) noexcept {
    if (p == Z_NULL) return;
    unsigned char* raw = static_cast<unsigned char*>(p) - header;
    std::size_t n = 0;
    std::memcpy(&n, raw, sizeof n);
    static_cast<ZlibHeap*>(opaque)->bytes -= n;
    std::free(raw);
  }
};

/// A z_stream with its counted heap, on the heap itself so the owner can move.
struct ZStream {
  z_stream s{};
  ZlibHeap heap;
  ZStream() noexcept {
    s.zalloc = &ZlibHeap::alloc;
    s.zfree = &ZlibHeap::free;
    s.opaque = &heap;
  }
};

/// Largest piece handed to zlib at once (its sizes are `uInt`).
inline constexpr std::size_t zlib_piece = std::size_t{1} << 30;

template <class T>
using piece_t = decltype(std::string_view(std::declval<const T&>()));

template <class T, class = void>
struct is_byte_view : std::false_type {};
template <class T>
struct is_byte_view<T, std::void_t<piece_t<T>>> : std::true_type {};

/// A zlib stream header (RFC 1950) for `window_bits` and `level`.
inline void zlib_header(unsigned char out[2], int window_bits, int level) noexcept {
  const unsigned cmf = static_cast<unsigned>(((window_bits - 8) << 4) | 8);
  const unsigned flevel = level == 1 ? 0u : level < 6 ? 1u : level == 6 ? 2u : 3u;
  unsigned flg = flevel << 6;
  flg += 31 - ((cmf << 8) + flg) % 31;
  out[0] = static_cast<unsigned char>(cmf);
  out[1] = static_cast<unsigned char>(flg);
}

}  // namespace detail

/// How a Compressor trades ratio for memory and CPU. An active deflater holds about
/// 6 KB + 4 * 2^window_bits + 2^(mem_level + 9) bytes: 30 KB with these defaults against 262 KB
/// with zlib's own (window 15, memory level 8), for over 90% of their gain at one event per flush.
struct CompressorOptions {
  /// zlib level, 1 (fastest) to 9 (smallest); 0 stores (no compression).
  int level = 6;
  /// log2 of the history window, 9..15: the window is 2^bits bytes, the deflater holds 4x that.
  int window_bits = 12;
  /// zlib memLevel, 1..9: the hash table and pending buffer hold 2^(mem_level + 9) bytes.
  int mem_level = 4;
  /// Bytes of recent history an idle stream keeps when it gives its deflater back, so the next
  /// batch still finds repeats in what was sent before (0: keep nothing). At most 2^window_bits.
  std::size_t idle_dictionary = 1024;
  /// Give the deflater back after every batch: memory only while compressing, at the cost of a
  /// deflater set-up per batch and a history limited to `idle_dictionary`.
  bool release_after_batch = false;
};

/// What a Compressor did and what it holds.
struct CompressorStats {
  std::uint64_t bytes_in = 0;   ///< uncompressed bytes taken
  std::uint64_t bytes_out = 0;  ///< compressed bytes written (header and trailer included)
  std::uint64_t batches = 0;    ///< calls that flushed a batch
  std::uint64_t releases = 0;   ///< times the deflater was given back
  std::size_t zlib_bytes = 0;   ///< bytes zlib holds now (0 while released)
  std::size_t dictionary_bytes = 0;  ///< history kept while released
};

/// One compressed response body: gzip or deflate for one stream, written batch by batch.
///
/// Every `compress_to` ends in a sync flush (Z_SYNC_FLUSH): the bytes it appends decode to
/// exactly the batch, nothing is held back for later. The deflater (window 2^window_bits, hash
/// and pending buffers from mem_level) exists only while the stream is active: `release()` gives
/// it back and keeps only the last `idle_dictionary` bytes of history; the next batch starts a
/// new raw deflater primed with them, and the client sees one unbroken stream (the gzip CRC-32 /
/// zlib Adler-32 and length run on here, and the header and trailer are written here). Not
/// thread-safe: one stream, one writer. Untrusted input does not exist here (the bytes are
/// the server's own frames); zlib failures (out of memory) come back as errors.
class Compressor {
 public:
  /// A compressor for `encoding` (gzip or deflate; identity copies bytes through).
  explicit Compressor(Encoding encoding, const CompressorOptions& opts = {}) noexcept
      : encoding_(encoding), opts_(opts) {
    opts_.level = std::clamp(opts_.level, 0, 9);
    opts_.window_bits = std::clamp(opts_.window_bits, 9, 15);
    opts_.mem_level = std::clamp(opts_.mem_level, 1, 9);
    opts_.idle_dictionary =
        std::min(opts_.idle_dictionary, std::size_t{1} << opts_.window_bits);
    running_ = encoding_ == Encoding::deflate ? adler32(0L, Z_NULL, 0) : crc32(0L, Z_NULL, 0);
  }
  Compressor(Compressor&& other) noexcept : encoding_(other.encoding_) { *this = std::move(other); }
  Compressor& operator=(Compressor&& other) noexcept {
    if (this != &other) {
      drop_deflater();
      encoding_ = other.encoding_;
      opts_ = other.opts_;
      z_ = std::move(other.z_);
      dict_ = std::move(other.dict_);
      dict_size_ = std::exchange(other.dict_size_, 0);
      running_ = other.running_;
      unflushed_ = other.unflushed_;
      started_ = other.started_;
      ended_ = other.ended_;
      failed_ = other.failed_;
      busy_since_check_ = other.busy_since_check_;
      stats_ = other.stats_;
    }
    return *this;
  }
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;
  ~Compressor() { drop_deflater(); }

  Encoding encoding() const noexcept { return encoding_; }
  const CompressorOptions& options() const noexcept { return opts_; }

  /// Compresses `batch` — one byte view (a Frame, a string) or a range of them (the
  /// `std::vector<Frame>` of `Mailbox::take_all`) — appending to `out` (std::string,
  /// std::vector<char>, ...) bytes that end in a sync flush, the stream header first on the first
  /// call. An empty batch appends nothing. Returns how many bytes were appended; `errc::closed`
  /// after `end_to`, `errc::compression_failed` when zlib fails (the stream is then unusable and
  /// `out` may hold part of a batch: close the connection).
  template <class Buffer, class Batch>
  Result<std::size_t> compress_to(Buffer& out, const Batch& batch) {
    const std::size_t before = out.size();
    if (ended_) return errc::closed;
    if (failed_) return errc::compression_failed;
    if (encoding_ == Encoding::identity) {
      for_each_piece(batch, [&](std::string_view p) {
        append(out, p);
        stats_.bytes_in += p.size();
      });
      return count(out, before);
    }
    std::size_t total = 0;
    for_each_piece(batch, [&](std::string_view p) { total += p.size(); });
    if (total == 0) return std::size_t{0};  // nothing to flush: no bytes at all
    if (auto r = start(out); !r) return r.error();
    if (z_ == nullptr)
      if (auto r = make_deflater(); !r) return fail(r.error());
    bool ok = true;
    for_each_piece(batch, [&](std::string_view p) {
      if (!ok) return;
      update_check(p);
      stats_.bytes_in += p.size();
      ok = deflate_into(out, p, Z_NO_FLUSH);
    });
    if (!ok || !deflate_into(out, {}, Z_SYNC_FLUSH)) return fail(errc::compression_failed);
    ++stats_.batches;
    busy_since_check_ = true;
    if (opts_.release_after_batch) release();
    return count(out, before);
  }

  /// `compress_to` into a new string.
  template <class Batch>
  Result<std::string> compress(const Batch& batch) {
    std::string out;
    if (auto r = compress_to(out, batch); !r) return r.error();
    return out;
  }

  /// Ends the stream for a graceful close: a final empty block and the trailer (gzip CRC-32 and
  /// length, zlib Adler-32), appended to `out`. Later calls return `errc::closed`.
  template <class Buffer>
  Result<std::size_t> end_to(Buffer& out) {
    const std::size_t before = out.size();
    if (ended_) return errc::closed;
    ended_ = true;
    drop_deflater();
    dict_.reset();
    dict_size_ = 0;
    if (encoding_ == Encoding::identity) return std::size_t{0};
    if (failed_) return errc::compression_failed;
    if (auto r = start(out); !r) return r.error();
    // After a sync flush the stream is byte-aligned between blocks: a final empty fixed-Huffman
    // block (BFINAL=1, BTYPE=01, end-of-block code) ends the deflate data.
    const unsigned char last_block[2] = {0x03, 0x00};
    append(out, bytes(last_block, 2));
    unsigned char t[8];
    if (encoding_ == Encoding::gzip) {
      put_le32(t, static_cast<std::uint32_t>(running_));
      put_le32(t + 4, static_cast<std::uint32_t>(stats_.bytes_in & 0xFFFFFFFFu));
      append(out, bytes(t, 8));
    } else {
      put_be32(t, static_cast<std::uint32_t>(running_));
      append(out, bytes(t, 4));
    }
    return count(out, before);
  }

  /// `end_to` into a new string.
  Result<std::string> end() {
    std::string out;
    if (auto r = end_to(out); !r) return r.error();
    return out;
  }

  /// Gives the deflater back now (a no-op when released already), keeping the last
  /// `idle_dictionary` bytes of history. The next batch continues the same stream.
  void release() noexcept {
    if (z_ == nullptr) return;
    keep_dictionary();
    drop_deflater();
    ++stats_.releases;
  }

  /// Gives the deflater back if no batch was compressed since the previous call; returns whether
  /// the stream is released now. Call it from the timer that sends heartbeats: a stream idle for
  /// a whole interval costs `idle_dictionary` bytes instead of the deflater.
  bool release_idle() noexcept {
    const bool idle = !busy_since_check_;
    busy_since_check_ = false;
    if (idle) release();
    return z_ == nullptr;
  }

  /// True while a deflater is held (between the first batch after a release and the next release).
  bool active() const noexcept { return z_ != nullptr; }
  /// True after `end_to`.
  bool ended() const noexcept { return ended_; }

  /// Heap bytes this stream holds now beyond the object itself: zlib's allocations (counted
  /// through its allocator hooks) plus the kept history.
  std::size_t memory() const noexcept {
    return (z_ != nullptr ? z_->heap.bytes + sizeof(detail::ZStream) : 0) + dict_size_;
  }

  CompressorStats stats() const noexcept {
    CompressorStats s = stats_;
    s.zlib_bytes = z_ != nullptr ? z_->heap.bytes : 0;
    s.dictionary_bytes = dict_size_;
    return s;
  }

 private:
  static std::string_view bytes(const unsigned char* p, std::size_t n) noexcept {
    return {reinterpret_cast<const char*>(p), n};
  }
  static void put_le32(unsigned char* p, std::uint32_t v) noexcept {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
  }
  static void put_be32(unsigned char* p, std::uint32_t v) noexcept {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (24 - 8 * i));
  }

  template <class Buffer>
  static void append(Buffer& out, std::string_view p) {
    if (p.empty()) return;
    std::memcpy(detail::grow(out, p.size()), p.data(), p.size());
  }

  template <class Buffer>
  Result<std::size_t> count(const Buffer& out, std::size_t before) noexcept {
    const std::size_t n = out.size() - before;
    stats_.bytes_out += n;
    return n;
  }

  template <class Batch, class F>
  static void for_each_piece(const Batch& batch, F&& f) {
    if constexpr (detail::is_byte_view<Batch>::value) {
      f(std::string_view(batch));
    } else {
      for (const auto& piece : batch) f(std::string_view(piece));
    }
  }

  std::error_code fail(std::error_code ec) noexcept {
    failed_ = true;
    drop_deflater();
    return ec;
  }

  /// Writes the stream header once.
  template <class Buffer>
  Result<void> start(Buffer& out) {
    if (started_) return {};
    started_ = true;
    if (encoding_ == Encoding::gzip) {
      // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown)
      const unsigned char h[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
      append(out, bytes(h, 10));
    } else {
      unsigned char h[2];
      detail::zlib_header(h, opts_.window_bits, opts_.level);
      append(out, bytes(h, 2));
    }
    return {};
  }

  void update_check(std::string_view p) noexcept {
    while (!p.empty()) {
      const std::size_t n = std::min(p.size(), detail::zlib_piece);
      const auto* b = reinterpret_cast<const Bytef*>(p.data());
      running_ = encoding_ == Encoding::gzip ? crc32(running_, b, static_cast<uInt>(n))
                                             : adler32(running_, b, static_cast<uInt>(n));
      p.remove_prefix(n);
    }
  }

  Result<void> make_deflater() {
    auto z = std::make_unique<detail::ZStream>();
    // Raw deflate (negative window bits): the wrapper is ours, so a later deflater can go on.
    int rc = deflateInit2(&z->s, opts_.level, Z_DEFLATED, -opts_.window_bits, opts_.mem_level,
                          Z_DEFAULT_STRATEGY);
    if (rc != Z_OK) return errc::compression_failed;
    if (dict_size_ > 0) {
      rc = deflateSetDictionary(&z->s, dict_.get(), static_cast<uInt>(dict_size_));
      dict_.reset();
      dict_size_ = 0;
      if (rc != Z_OK) {
        deflateEnd(&z->s);
        return errc::compression_failed;
      }
    }
    z_ = std::move(z);
    return {};
  }

  void keep_dictionary() noexcept {
    dict_.reset();
    dict_size_ = 0;
#if ZLIB_VERNUM >= 0x1290
    if (opts_.idle_dictionary == 0 || z_ == nullptr) return;
    uInt have = 0;
    if (deflateGetDictionary(&z_->s, Z_NULL, &have) != Z_OK || have == 0) return;
    std::unique_ptr<Bytef[]> window(new (std::nothrow) Bytef[have]);
    if (!window || deflateGetDictionary(&z_->s, window.get(), &have) != Z_OK) return;
    const std::size_t keep = std::min<std::size_t>(have, opts_.idle_dictionary);
    if (keep == have) {
      dict_ = std::move(window);
    } else {
      dict_.reset(new (std::nothrow) Bytef[keep]);
      if (!dict_) return;
      std::memcpy(dict_.get(), window.get() + (have - keep), keep);
    }
    dict_size_ = keep;
#endif
  }

  void drop_deflater() noexcept {
    if (z_ == nullptr) return;
    deflateEnd(&z_->s);
    z_.reset();
  }

  /// Feeds `in` (or nothing, to flush) to the deflater, growing `out` as needed.
  template <class Buffer>
  bool deflate_into(Buffer& out, std::string_view in, int flush) {
    z_stream& s = z_->s;
    for (;;) {
      const std::size_t piece = std::min(in.size(), detail::zlib_piece);
      s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
      s.avail_in = static_cast<uInt>(piece);
      for (;;) {
        // A flush writes what the deflater still holds of the batch: at most about its size.
        const std::size_t held = flush == Z_SYNC_FLUSH ? unflushed_ : 0;
        const std::size_t room = s.avail_in + s.avail_in / 8 + held + 64;
        const std::size_t old = out.size();
        s.next_out = reinterpret_cast<Bytef*>(detail::grow(out, room));
        s.avail_out = static_cast<uInt>(room);
        const bool last = piece == in.size();
        const int rc = deflate(&s, last ? flush : Z_NO_FLUSH);
        out.resize(old + (room - s.avail_out));
        if (rc == Z_STREAM_ERROR) return false;
        if (s.avail_out != 0 && s.avail_in == 0) break;
      }
      in.remove_prefix(piece);
      unflushed_ = flush == Z_SYNC_FLUSH ? 0 : unflushed_ + piece;
      if (in.empty()) return true;
    }
  }

  Encoding encoding_;
  CompressorOptions opts_;
  std::unique_ptr<detail::ZStream> z_;
  std::unique_ptr<Bytef[]> dict_;
  std::size_t dict_size_ = 0;
  uLong running_ = 0;  // CRC-32 (gzip) or Adler-32 (deflate) of everything taken
  std::size_t unflushed_ = 0;  // bytes taken since the last flush
  bool started_ = false;
  bool ended_ = false;
  bool failed_ = false;
  bool busy_since_check_ = false;
  CompressorStats stats_;
};

/// The wire format a Decompressor reads. `auto_detect` tells gzip, zlib and raw deflate apart
/// from the first bytes (HTTP "deflate" was sent raw by some servers: auto covers both).
enum class Format : unsigned char { auto_detect, gzip, zlib, raw, identity };

/// Bounds on what a Decompressor produces: untrusted compressed input must not turn into
/// unbounded memory.
struct DecompressorLimits {
  /// Most bytes one `decompress_to` call appends; the call stops there (reporting the input it
  /// consumed) and the caller hands the rest in after consuming the output.
  std::size_t max_output = std::size_t{256} * 1024;
  /// Most output bytes per input byte over the stream, once past `ratio_grace`: more is a
  /// decompression bomb (`errc::decompression_limit`). Event streams compress 3x to 30x; repeated
  /// identical events batched together can reach ~100x.
  std::size_t max_ratio = 256;
  /// Output allowed before `max_ratio` applies (a short stream of tiny repeated events).
  std::size_t ratio_grace = std::size_t{1024} * 1024;
};

/// What one `decompress_to` call did.
struct Inflated {
  std::size_t consumed = 0;  ///< input bytes used; hand the rest to the next call
  std::size_t produced = 0;  ///< bytes appended to the output
  /// The output bound was reached: consume the output, then call again (with the rest of the
  /// input, or none) — zlib may hold more output for input already consumed.
  bool more = false;
};

/// The client side: inflates a gzip, zlib or raw deflate response body chunk by chunk, split
/// anywhere. Errors (corrupt data, a bomb) are sticky: every later call returns the same one.
/// Never throws on input.
class Decompressor {
 public:
  explicit Decompressor(Format format = Format::auto_detect,
                        const DecompressorLimits& limits = {}) noexcept
      : format_(format), limits_(limits) {
    if (limits_.max_output == 0) limits_.max_output = 1;
    if (limits_.max_ratio == 0) limits_.max_ratio = 1;
  }

  /// A decompressor for a response's `Content-Encoding` value: gzip/x-gzip, deflate (zlib or
  /// raw), identity or empty (bytes pass through); anything else is `errc::unsupported_encoding`.
  static Result<Decompressor> for_content_encoding(std::string_view value,
                                                   const DecompressorLimits& limits = {}) {
    while (!value.empty() && detail::is_ows(value.front())) value.remove_prefix(1);
    while (!value.empty() && detail::is_ows(value.back())) value.remove_suffix(1);
    if (value.empty() || detail::iequal_ascii(value, "identity"))
      return Decompressor(Format::identity, limits);
    if (detail::iequal_ascii(value, "gzip") || detail::iequal_ascii(value, "x-gzip"))
      return Decompressor(Format::gzip, limits);
    if (detail::iequal_ascii(value, "deflate")) return Decompressor(Format::auto_detect, limits);
    return errc::unsupported_encoding;
  }

  Decompressor(Decompressor&& o) noexcept { *this = std::move(o); }
  Decompressor& operator=(Decompressor&& o) noexcept {
    if (this != &o) {
      drop();
      format_ = o.format_;
      limits_ = o.limits_;
      z_ = std::move(o.z_);
      head_[0] = o.head_[0];
      head_size_ = o.head_size_;
      done_ = o.done_;
      error_ = o.error_;
      total_in_ = o.total_in_;
      total_out_ = o.total_out_;
    }
    return *this;
  }
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;
  ~Decompressor() { drop(); }

  /// Inflates from `in`, appending at most `limits.max_output` bytes to `out`. Returns the input
  /// consumed (all of it unless the output bound was reached: call again with the rest) and the
  /// bytes produced; or `errc::invalid_compressed_data` (corrupt data, bad header or checksum,
  /// bytes after the end), `errc::decompression_limit` (a bomb), `errc::compression_failed`
  /// (zlib out of memory).
  template <class Buffer>
  Result<Inflated> decompress_to(Buffer& out, std::string_view in) {
    if (error_) return error_;
    Inflated r;
    if (format_ == Format::identity) {
      const std::size_t n = std::min(in.size(), limits_.max_output);
      if (n != 0) std::memcpy(detail::grow(out, n), in.data(), n);
      r.consumed = r.produced = n;
      r.more = n < in.size();
      total_in_ += n;
      total_out_ += n;
      return r;
    }
    if (z_ == nullptr) {
      // The format shows in the first two bytes (one for gzip). A lone first byte is kept until
      // the second arrives; one byte never inflates to output, so it can be fed alone after.
      if (format_ == Format::auto_detect) {
        unsigned char b[2] = {0, 0};
        std::size_t have = head_size_;
        if (have == 1) b[0] = head_[0];
        for (std::size_t i = 0; have < 2 && i < in.size(); ++i)
          b[have++] = static_cast<unsigned char>(in[i]);
        if (have == 0) return r;
        if (have == 1 && b[0] != 0x1f) {
          head_[0] = b[0];
          head_size_ = 1;
          in.remove_prefix(1);
          r.consumed = 1;
          return r;
        }
        format_ = detect(b[0], b[1]);
      }
      if (auto s = start(); !s) return set_error(s.error());
      if (head_size_ == 1) {
        head_size_ = 0;
        const char byte = static_cast<char>(head_[0]);
        auto h = run(out, std::string_view(&byte, 1), r.produced);
        if (!h) return set_error(h.error());
      }
    }
    auto used = run(out, in, r.produced);
    if (!used) return set_error(used.error());
    r.consumed += *used;
    r.more = r.produced >= limits_.max_output;
    return r;
  }

  /// True once the end of the compressed stream (and its trailer) has been read and checked.
  bool done() const noexcept { return done_; }
  /// The sticky error, if any.
  std::error_code error() const noexcept { return error_; }
  std::uint64_t total_in() const noexcept { return total_in_; }
  std::uint64_t total_out() const noexcept { return total_out_; }
  /// Bytes zlib holds now (its state and window).
  std::size_t memory() const noexcept {
    return z_ != nullptr ? z_->heap.bytes + sizeof(detail::ZStream) : 0;
  }

 private:
  /// gzip starts with 0x1f (no zlib or raw stream can); zlib with a CMF/FLG pair whose check
  /// holds; anything else is taken as raw deflate.
  static Format detect(unsigned char b0, unsigned char b1) noexcept {
    if (b0 == 0x1f) return Format::gzip;
    const unsigned cmf = b0, flg = b1;
    const bool zlib = (cmf & 0x0f) == 8 && (cmf >> 4) <= 7 && (cmf * 256 + flg) % 31 == 0;
    return zlib ? Format::zlib : Format::raw;
  }

  Result<void> start() {
    const Format f = format_;
    const int bits = f == Format::gzip ? 16 + 15 : f == Format::zlib ? 15 : -15;
    auto z = std::make_unique<detail::ZStream>();
    if (inflateInit2(&z->s, bits) != Z_OK) return errc::compression_failed;
    z_ = std::move(z);
    return {};
  }

  Result<Inflated> set_error(std::error_code ec) noexcept {
    error_ = ec;
    drop();
    return ec;
  }

  void drop() noexcept {
    if (z_ == nullptr) return;
    inflateEnd(&z_->s);
    z_.reset();
  }

  /// Inflates from `in` into `out` while the call's output budget lasts; returns bytes consumed.
  template <class Buffer>
  Result<std::size_t> run(Buffer& out, std::string_view in, std::size_t& produced) {
    z_stream& s = z_->s;
    std::size_t consumed = 0;
    while (produced < limits_.max_output) {
      if (done_) {
        if (in.empty()) break;
        // gzip allows members one after another (what `gzip -d` reads); nothing else may follow.
        if (format_ != Format::gzip || static_cast<unsigned char>(in.front()) != 0x1f)
          return errc::invalid_compressed_data;
        if (inflateReset(&s) != Z_OK) return errc::compression_failed;
        done_ = false;
      }
      const std::size_t piece = std::min(in.size(), detail::zlib_piece);
      // Output room: a few times the input (zero-filled by resize, so not a fixed 64 KB).
      const std::size_t room = std::min(limits_.max_output - produced,
                                        std::clamp<std::size_t>(piece * 4, 4096, 65536));
      const std::size_t old = out.size();
      s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
      s.avail_in = static_cast<uInt>(piece);
      s.next_out = reinterpret_cast<Bytef*>(detail::grow(out, room));
      s.avail_out = static_cast<uInt>(room);
      const int rc = inflate(&s, Z_NO_FLUSH);
      const std::size_t got = room - s.avail_out;
      const std::size_t used = piece - s.avail_in;
      out.resize(old + got);
      produced += got;
      consumed += used;
      in.remove_prefix(used);
      total_in_ += used;
      total_out_ += got;
      if (total_out_ > limits_.ratio_grace &&
          total_out_ / limits_.max_ratio > total_in_)
        return errc::decompression_limit;
      if (rc == Z_STREAM_END) {
        done_ = true;
        continue;
      }
      if (rc == Z_BUF_ERROR) break;  // no progress possible: needs more input
      if (rc == Z_MEM_ERROR) return errc::compression_failed;
      if (rc != Z_OK) return errc::invalid_compressed_data;
      if (in.empty() && s.avail_out != 0) break;  // all input used, all output given
    }
    return consumed;
  }

  Format format_ = Format::auto_detect;
  DecompressorLimits limits_;
  std::unique_ptr<detail::ZStream> z_;
  unsigned char head_[1] = {0};
  std::size_t head_size_ = 0;
  bool done_ = false;
  std::error_code error_;
  std::uint64_t total_in_ = 0;
  std::uint64_t total_out_ = 0;
};

/// What `compression()` gives the adapters: the codings offered, the compressor of each stream,
/// and when an idle stream gives its deflater back.
struct CompressOptions {
  /// The codings offered (a client that accepts neither gets a plain stream).
  NegotiateOptions codings;
  /// Each stream's compressor settings (level, window, memory, history kept when idle).
  CompressorOptions compressor;
  /// A stream that writes nothing for this long releases its deflater (`Compressor::release`),
  /// keeping `compressor.idle_dictionary` bytes of history; zero: never.
  std::chrono::milliseconds idle_release{std::chrono::seconds(30)};
};

namespace detail {

/// A `StreamCoder` over a Compressor.
class CompressorCoder final : public StreamCoder {
 public:
  CompressorCoder(Encoding e, const CompressorOptions& o) : z_(e, o) {}
  std::string_view content_encoding() const noexcept override {
    return encoding_name(z_.encoding());
  }
  Result<std::size_t> encode_to(std::string& out, const std::vector<Frame>& batch) override {
    return z_.compress_to(out, batch);
  }
  Result<std::size_t> encode_to(std::string& out, std::string_view bytes) override {
    return z_.compress_to(out, bytes);
  }
  Result<std::size_t> end_to(std::string& out) override { return z_.end_to(out); }
  void release() noexcept override { z_.release(); }
  bool active() const noexcept override { return z_.active(); }
  CodingStats stats() const noexcept override {
    const CompressorStats s = z_.stats();
    return {s.bytes_in, s.bytes_out};
  }
  const Compressor& compressor() const noexcept { return z_; }

 private:
  Compressor z_;
};

class Compression final : public StreamCoding {
 public:
  explicit Compression(const CompressOptions& o) : opts_(o) {}
  std::unique_ptr<StreamCoder> negotiate(std::string_view accept_encoding) const override {
    const Encoding e = negotiate_encoding(accept_encoding, opts_.codings);
    if (e == Encoding::identity) return nullptr;
    return std::make_unique<CompressorCoder>(e, opts_.compressor);
  }
  std::chrono::milliseconds idle_release() const noexcept override { return opts_.idle_release; }

 private:
  CompressOptions opts_;
};

}  // namespace detail

/// gzip/deflate for the adapters' streams: `ServeOptions::compression` (ssepp::asio) or
/// `EndpointOptions::compression` (ssepp::httplib) = `ssepp::compression()`. Each request gets
/// the coding its Accept-Encoding prefers (plain when it accepts neither, or the header is
/// absent or malformed), each batch a sync flush.
inline std::shared_ptr<const StreamCoding> compression(const CompressOptions& options = {}) {
  return std::make_shared<const detail::Compression>(options);
}

SSEPP_END_NAMESPACE
