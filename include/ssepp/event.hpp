// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
#pragma once

#include <ssepp/config.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <utility>

SSEPP_BEGIN_NAMESPACE

/// One SSE message: what `encode` writes and what a client's EventSource dispatches.
///
/// Plain aggregate; the `with_*` setters allow one-expression construction:
/// `ssepp::Event{}.with_type("price").with_data(json).with_id("7")`. On an lvalue they return
/// `Event&`; on a temporary they return an `Event` by value, so binding the result to a
/// `const Event&` extends the life of a real object instead of leaving a dangling reference.
struct Event {
  /// Payload. May contain any bytes, line breaks included (LF, CR and CRLF each become a new
  /// `data:` line, so content can never forge a field). Clients see line breaks as LF.
  std::string data;
  /// Event type (`event:` field). Empty means the default type, `message`. No CR or LF.
  std::string type;
  /// Event id (`id:` field), which becomes the client's Last-Event-ID. No CR, LF or NUL.
  /// An empty id is valid and resets the client's Last-Event-ID.
  std::optional<std::string> id;
  /// Reconnection time hint (`retry:` field). Not negative.
  std::optional<std::chrono::milliseconds> retry;
  /// Comment written before the fields (`: text`); ignored by clients, seen in traces.
  /// Empty means none. Line breaks start a new comment line.
  std::string comment;

  Event& with_data(std::string v) & { data = std::move(v); return *this; }
  Event& with_type(std::string v) & { type = std::move(v); return *this; }
  Event& with_id(std::string v) & { id = std::move(v); return *this; }
  Event& with_retry(std::chrono::milliseconds v) & { retry = v; return *this; }
  Event& with_comment(std::string v) & { comment = std::move(v); return *this; }
  // On a temporary the setters return a new Event (moved from it), not a reference to it: a
  // reference would outlive the temporary in `const Event& e = Event{}.with_data(s);`.
  Event with_data(std::string v) && { data = std::move(v); return std::move(*this); }
  Event with_type(std::string v) && { type = std::move(v); return std::move(*this); }
  Event with_id(std::string v) && { id = std::move(v); return std::move(*this); }
  Event with_retry(std::chrono::milliseconds v) && { retry = v; return std::move(*this); }
  Event with_comment(std::string v) && { comment = std::move(v); return std::move(*this); }

  /// The type a client dispatches: `type`, or "message" when empty.
  const std::string& effective_type() const noexcept {
    static const std::string message = "message";
    return type.empty() ? message : type;
  }

  friend bool operator==(const Event& a, const Event& b) {
    return a.data == b.data && a.type == b.type && a.id == b.id && a.retry == b.retry &&
           a.comment == b.comment;
  }
  friend bool operator!=(const Event& a, const Event& b) { return !(a == b); }
};

SSEPP_END_NAMESPACE
