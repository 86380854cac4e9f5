// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
// Internals of ssepp::asio: what differs between the next layers an event stream can sit on
// (a TCP socket, a beast::tcp_stream, a TLS stream over either), in one place.
#pragma once

#include <ssepp/config.hpp>

#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/system/error_code.hpp>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>

#if defined(__unix__) || defined(__APPLE__)
#  include <sys/socket.h>
#  include <sys/types.h>
#  include <sys/uio.h>
#endif

SSEPP_BEGIN_NAMESPACE
namespace detail {

namespace net = ::boost::asio;
namespace beast = ::boost::beast;

/// The socket at the bottom of a layer stack: the socket itself, or a beast::basic_stream's.
template <class Protocol, class Executor>
net::basic_stream_socket<Protocol, Executor>& socket_of(
    net::basic_stream_socket<Protocol, Executor>& s) noexcept {
  return s;
}
template <class Protocol, class Executor, class RatePolicy>
typename beast::basic_stream<Protocol, Executor, RatePolicy>::socket_type& socket_of(
    beast::basic_stream<Protocol, Executor, RatePolicy>& s) noexcept {
  return s.socket();
}

/// A beast::basic_stream's own timeout is turned off: the event stream keeps its own.
template <class Protocol, class Executor>
void no_layer_timeout(net::basic_stream_socket<Protocol, Executor>&) noexcept {}
template <class Protocol, class Executor, class RatePolicy>
void no_layer_timeout(beast::basic_stream<Protocol, Executor, RatePolicy>& s) {
  s.expires_never();
}

/// The layer an `EventStreams` stream keeps: a `beast::basic_stream` without a rate limit gives
/// up its socket (its impl, with three timers, is about 0.5 KB per idle stream and the event
/// stream keeps its own timer); anything else is kept as it is.
template <class Layer>
struct stream_layer {
  using type = Layer;
  static Layer&& take(Layer& l) noexcept { return std::move(l); }
};
template <class Protocol, class Executor>
struct stream_layer<beast::basic_stream<Protocol, Executor, beast::unlimited_rate_policy>> {
  using type = net::basic_stream_socket<Protocol, Executor>;
  static type take(beast::basic_stream<Protocol, Executor, beast::unlimited_rate_policy>& l) {
    return l.release_socket();
  }
};

/// An allocator that allocates exactly what is asked. Given to long-lived operations (an event
/// stream's read watch): the default handler allocator reuses the thread's cached blocks, often
/// a much larger one freed by the HTTP read just before, for as long as the operation pends.
template <class T>
struct ExactAllocator {
  using value_type = T;
  ExactAllocator() noexcept = default;
  template <class U>
  ExactAllocator(const ExactAllocator<U>&) noexcept {}  // NOLINT: converting, as allocators do
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }
  friend bool operator==(const ExactAllocator&, const ExactAllocator&) noexcept { return true; }
  friend bool operator!=(const ExactAllocator&, const ExactAllocator&) noexcept { return false; }
};

template <class T>
using lowest_layer_of = std::decay_t<decltype(beast::get_lowest_layer(std::declval<T&>()))>;

/// True when the next layer is the connection itself (no TLS in between): frames are then
/// written straight to the socket, many buffers per system call.
template <class NextLayer>
inline constexpr bool is_plain_layer_v = std::is_same_v<lowest_layer_of<NextLayer>, NextLayer>;

/// True for layers with a closing handshake of their own (TLS close_notify).
template <class T, class = void>
struct has_async_shutdown : std::false_type {};
template <class T>
struct has_async_shutdown<T, std::void_t<decltype(std::declval<T&>().async_shutdown(
                                 std::declval<void (*)(boost::system::error_code)>()))>>
    : std::true_type {};

/// True for the errors that mean the peer went away (closed, reset, or cut TLS short) rather
/// than a fault on our side.
inline bool is_client_gone(const boost::system::error_code& ec) noexcept {
  namespace err = net::error;
  if (ec == err::eof || ec == err::connection_reset || ec == err::broken_pipe ||
      ec == err::connection_aborted || ec == err::not_connected)
    return true;
  // ssl::error::stream_truncated (the peer closed without close_notify), named without
  // including the OpenSSL headers into every plain-socket user.
  return ec.value() == 1 && std::strcmp(ec.category().name(), "asio.ssl.stream") == 0;
}

/// Writes as much of `count` buffers as the socket takes now, without blocking: one system call
/// for up to 1024 buffers (Asio's own write_some passes at most 64). Returns the bytes written;
/// `ec` is would_block when the socket is full.
template <class Socket>
std::size_t send_now(Socket& socket, const net::const_buffer* buffers, std::size_t count,
                     boost::system::error_code& ec) {
#if defined(__unix__) || defined(__APPLE__)
  constexpr std::size_t max_iov = 1024;
  std::array<::iovec, max_iov> iov;
  const std::size_t n = count < max_iov ? count : max_iov;
  for (std::size_t i = 0; i < n; ++i) {
    iov[i].iov_base = const_cast<void*>(buffers[i].data());
    iov[i].iov_len = buffers[i].size();
  }
  ::msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = static_cast<decltype(msg.msg_iovlen)>(n);
  int flags = MSG_DONTWAIT;
#  ifdef MSG_NOSIGNAL
  flags |= MSG_NOSIGNAL;  // a closed peer is an error code, not SIGPIPE
#  endif
  for (;;) {
    const ::ssize_t r = ::sendmsg(socket.native_handle(), &msg, flags);
    if (r >= 0) {
      ec = {};
      return static_cast<std::size_t>(r);
    }
    if (errno == EINTR) continue;
    ec.assign(errno, boost::asio::error::get_system_category());
    if (ec == net::error::try_again) ec = net::error::would_block;
    return 0;
  }
#else
  struct Range {
    const net::const_buffer* first;
    const net::const_buffer* last;
    const net::const_buffer* begin() const noexcept { return first; }
    const net::const_buffer* end() const noexcept { return last; }
  };
  return socket.write_some(Range{buffers, buffers + count}, ec);
#endif
}

/// "<hex size>\r\n" of one HTTP/1.1 chunk.
struct ChunkSize {
  std::array<char, 20> text{};
  std::size_t size = 0;
  void set(std::size_t n) noexcept {
    static constexpr char digits[] = "0123456789abcdef";
    char tmp[16];
    std::size_t len = 0;
    do {
      tmp[len++] = digits[n & 15u];
      n >>= 4;
    } while (n != 0);
    size = 0;
    while (len > 0) text[size++] = tmp[--len];
    text[size++] = '\r';
    text[size++] = '\n';
  }
};

}  // namespace detail
SSEPP_END_NAMESPACE
