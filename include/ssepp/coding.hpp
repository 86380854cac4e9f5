// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// The content coding of an event stream's body, as the adapters (ssepp::asio, ssepp::httplib)
// see it: an interface with no codec behind it. `<ssepp/compress.hpp>` (target ssepp::compress,
// zlib) provides gzip and deflate (`ssepp::compression()`); an adapter that is given none sends
// plain bytes, so the adapters themselves never need zlib.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/encoder.hpp>
#include <ssepp/result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

SSEPP_BEGIN_NAMESPACE

/// What a `StreamCoder` took and gave.
struct CodingStats {
  std::uint64_t bytes_in = 0;   ///< body bytes before coding (the SSE bytes)
  std::uint64_t bytes_out = 0;  ///< bytes after coding (what goes on the wire, before framing)
};

/// One response body's coder (one per stream, used by its writer only): every call codes a
/// whole batch and ends in a flush, so the client decodes all of the batch at once and no event
/// is held back.
class StreamCoder {
 public:
  virtual ~StreamCoder() = default;
  /// The `Content-Encoding` token, e.g. "gzip".
  virtual std::string_view content_encoding() const noexcept = 0;
  /// Appends the coded batch to `out` (nothing for an empty batch); returns the bytes appended.
  /// An error leaves the stream unusable: close the connection.
  virtual Result<std::size_t> encode_to(std::string& out, const std::vector<Frame>& batch) = 0;
  /// As above for bytes already encoded (the preamble, first events).
  virtual Result<std::size_t> encode_to(std::string& out, std::string_view bytes) = 0;
  /// Appends the end of the body (a trailer) for a graceful close.
  virtual Result<std::size_t> end_to(std::string& out) = 0;
  /// Gives back the memory an idle stream does not need; the next batch continues the body.
  virtual void release() noexcept = 0;
  /// True while it holds that memory (since the first batch after a release).
  virtual bool active() const noexcept = 0;
  virtual CodingStats stats() const noexcept = 0;
};

/// A server's coding policy: which coding each request gets, and when idle streams give their
/// coder's memory back. Shared (const) by every stream of a server.
class StreamCoding {
 public:
  virtual ~StreamCoding() = default;
  /// A coder for a request whose `Accept-Encoding` is `accept_encoding` (several header lines
  /// joined with ", "; empty when absent), or nullptr: send the body plain.
  virtual std::unique_ptr<StreamCoder> negotiate(std::string_view accept_encoding) const = 0;
  /// How long a stream writes nothing before its coder is released (zero: never).
  virtual std::chrono::milliseconds idle_release() const noexcept = 0;
};

SSEPP_END_NAMESPACE
