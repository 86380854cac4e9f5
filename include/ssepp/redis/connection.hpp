// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// The hiredis side of the Redis bus: one blocking connection (commands, pipelined commands,
// pushed replies, an interrupt from another thread) and stream entries read from replies.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/event.hpp>
#include <ssepp/redis/codec.hpp>
#include <ssepp/redis/options.hpp>
#include <ssepp/target.hpp>

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

#include <cerrno>

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

SSEPP_BEGIN_NAMESPACE
namespace detail {

/// Keeps a write to a closed connection (Redis gone, or a stop() that shut the socket down) from
/// raising SIGPIPE, whose default action ends the host process: hiredis writes with write(2)
/// without MSG_NOSIGNAL, and a library must not change the process's signal dispositions. Blocks
/// SIGPIPE on this thread while alive and discards one raised meanwhile.
class SigpipeGuard {
 public:
  SigpipeGuard() noexcept {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    blocked_ = pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
    // Only a SIGPIPE the thread already blocked can be pending: that one is not ours to discard.
    was_pending_ = blocked_ && sigismember(&old_, SIGPIPE) == 1 && pending();
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;
  ~SigpipeGuard() {
    if (!blocked_) return;
    if (!was_pending_ && pending()) {
      const timespec zero{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  bool pending() const noexcept {
    sigset_t set;
    sigemptyset(&set);
    return sigpending(&set) == 0 && sigismember(&set, SIGPIPE) == 1;
  }

  sigset_t pipe_{};
  sigset_t old_{};
  bool was_pending_ = false;
  bool blocked_ = false;
};

struct RedisReplyFree {
  void operator()(redisReply* r) const noexcept {
    if (r) freeReplyObject(r);
  }
};
using RedisReplyPtr = std::unique_ptr<redisReply, RedisReplyFree>;

struct RedisContextFree {
  void operator()(redisContext* c) const noexcept {
    if (c) redisFree(c);
  }
};

/// One blocking hiredis connection. Not thread-safe; `interrupt()` may be called from another
/// thread to wake a blocked command (it shuts the socket down).
class RedisConnection {
 public:
  bool connect(const RedisOptions& o, std::string& error) {
    close();
    timeval tv = to_timeval(o.timeout);
    std::unique_ptr<redisContext, RedisContextFree> c(
        redisConnectWithTimeout(o.host.c_str(), o.port, tv));
    if (!c || c->err) {
      error = c ? c->errstr : "cannot allocate a Redis context";
      return false;
    }
    redisSetTimeout(c.get(), tv);
    {
      std::lock_guard<std::mutex> lock(fd_mutex_);
      fd_ = c->fd;
    }
    ctx_ = std::move(c);
    if (!o.password.empty()) {
      auto r = command({"AUTH", o.password}, error);
      if (!r) {  // refused: a connection that never authenticated is no connection
        error = "AUTH: " + error;
        close();
        return false;
      }
    }
    return true;
  }

  bool connected() const noexcept { return ctx_ != nullptr; }

  /// Sets the read timeout for the next commands (e.g. longer than an XREAD BLOCK).
  void set_timeout(std::chrono::milliseconds t) {
    if (ctx_) redisSetTimeout(ctx_.get(), to_timeval(t));
  }

  /// Runs one command. On a transport error the connection is closed and nullptr returned; an
  /// error reply is returned as nullptr too, with its text in `error`.
  RedisReplyPtr command(std::initializer_list<std::string_view> args, std::string& error) {
    return command_argv(std::vector<std::string_view>(args), error);
  }

  RedisReplyPtr command_argv(const std::vector<std::string_view>& args, std::string& error) {
    if (!ctx_) {
      error = "not connected";
      return nullptr;
    }
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    argv.reserve(args.size());
    lens.reserve(args.size());
    for (auto a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    SigpipeGuard no_sigpipe;
    RedisReplyPtr r(static_cast<redisReply*>(
        redisCommandArgv(ctx_.get(), static_cast<int>(argv.size()), argv.data(), lens.data())));
    return checked(std::move(r), error);
  }

  /// Queues one command without sending it (pipelining): the next `next_reply` writes every
  /// queued command in one go, then reads the first reply; each further `next_reply` reads the
  /// next. False when not connected (or out of memory).
  bool append_argv(const std::vector<std::string_view>& args, std::string& error) {
    if (!ctx_) {
      error = "not connected";
      return false;
    }
    argv_.clear();
    lens_.clear();
    for (auto a : args) {
      argv_.push_back(a.data());
      lens_.push_back(a.size());
    }
    if (redisAppendCommandArgv(ctx_.get(), static_cast<int>(argv_.size()), argv_.data(),
                               lens_.data()) != REDIS_OK) {
      error = ctx_->err ? ctx_->errstr : "cannot queue a command";
      close();
      return false;
    }
    return true;
  }

  /// Reads the next reply: a pushed one (Pub/Sub) or that of a command queued by `append_argv`.
  RedisReplyPtr next_reply(std::string& error) {
    if (!ctx_) {
      error = "not connected";
      return nullptr;
    }
    void* raw = nullptr;
    SigpipeGuard no_sigpipe;  // flushes pending output, if any
    if (redisGetReply(ctx_.get(), &raw) != REDIS_OK) raw = nullptr;
    return checked(RedisReplyPtr(static_cast<redisReply*>(raw)), error);
  }

  /// Wakes a command blocked in another thread: it fails and the connection closes.
  void interrupt() noexcept {
    std::lock_guard<std::mutex> lock(fd_mutex_);
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }

  void close() noexcept {
    {
      std::lock_guard<std::mutex> lock(fd_mutex_);
      fd_ = -1;
    }
    ctx_.reset();
  }

 private:
  static timeval to_timeval(std::chrono::milliseconds ms) {
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(ms.count() / 1000);
    tv.tv_usec = static_cast<decltype(tv.tv_usec)>((ms.count() % 1000) * 1000);
    return tv;
  }

  RedisReplyPtr checked(RedisReplyPtr r, std::string& error) {
    if (!r) {
      error = ctx_ && ctx_->err ? ctx_->errstr : "connection lost";
      close();
      return nullptr;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      error.assign(r->str, r->len);
      return nullptr;
    }
    return r;
  }

  std::unique_ptr<redisContext, RedisContextFree> ctx_;
  std::vector<const char*> argv_;
  std::vector<std::size_t> lens_;
  std::mutex fd_mutex_;
  int fd_ = -1;
};

inline std::string_view reply_text(const redisReply* r) noexcept {
  if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)) return {};
  return {r->str, r->len};
}

/// A stream entry ([id, [field, value, ...]]) as a target and an event carrying the entry id.
inline bool decode_entry(const redisReply* entry, Target& target, Event& ev) {
  if (!entry || entry->type != REDIS_REPLY_ARRAY || entry->elements != 2) return false;
  const redisReply* fields = entry->element[1];
  if (!fields || fields->type != REDIS_REPLY_ARRAY) return false;
  return decode_entry_items(
      reply_text(entry->element[0]), fields->elements,
      [&](std::size_t i) { return reply_text(fields->element[i]); }, target, ev);
}

}  // namespace detail
SSEPP_END_NAMESPACE
