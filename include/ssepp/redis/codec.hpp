// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// What the Redis bus and bridge read and write, without hiredis: stream entry ids and their
// order, a target and an event as the fields of a stream entry, and the Pub/Sub interop JSON.
// Everything here reads untrusted text and never throws on it.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/detail/json_lite.hpp>
#include <ssepp/encoder.hpp>
#include <ssepp/error.hpp>
#include <ssepp/event.hpp>
#include <ssepp/history.hpp>
#include <ssepp/result.hpp>
#include <ssepp/target.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE

/// How Redis stream entry ids compare ("1700000000000-0", or "1700000000000" meaning "-0"): by
/// (milliseconds, sequence), negative, zero or positive like `a <=> b`; `std::nullopt` when either
/// is not a stream id. Kept for code that orders Redis entry ids; a sharded `RedisStreamBus`'s
/// event ids compare with `shard_position_order`.
inline std::optional<int> stream_id_order(std::string_view a, std::string_view b) noexcept {
  auto parse = [](std::string_view s) -> std::optional<std::pair<std::uint64_t, std::uint64_t>> {
    auto dash = s.find('-');
    auto ms = detail::parse_u64(s.substr(0, dash));
    if (!ms) return std::nullopt;
    if (dash == std::string_view::npos) return std::pair<std::uint64_t, std::uint64_t>(*ms, 0);
    auto seq = detail::parse_u64(s.substr(dash + 1));
    if (!seq) return std::nullopt;
    return std::pair<std::uint64_t, std::uint64_t>(*ms, *seq);
  };
  auto x = parse(a);
  auto y = parse(b);
  if (!x || !y) return std::nullopt;
  return detail::three_way(*x, *y);
}

/// How the event ids of a sharded `RedisStreamBus` compare: an id is the delivering node's read
/// position on every shard ("p0.p1.p2", one decimal per shard; one shard: a plain decimal).
/// Negative when every position of `a` is at or before `b`'s (and one before), positive the
/// other way, zero when equal; `std::nullopt` when they are not ids of the same number of
/// shards, or neither is at or before the other (ids of two nodes that read different streams).
inline std::optional<int> shard_position_order(std::string_view a, std::string_view b) noexcept {
  bool before = false, after = false;
  while (true) {
    auto da = a.find('.');
    auto db = b.find('.');
    auto x = detail::parse_u64(a.substr(0, da));
    auto y = detail::parse_u64(b.substr(0, db));
    if (!x || !y) return std::nullopt;
    before = before || *x < *y;
    after = after || *x > *y;
    if ((da == std::string_view::npos) != (db == std::string_view::npos)) return std::nullopt;
    if (da == std::string_view::npos) break;
    a.remove_prefix(da + 1);
    b.remove_prefix(db + 1);
  }
  if (before && after) return std::nullopt;
  return before ? -1 : after ? 1 : 0;
}

/// The shard, out of `shards` (at least 1), a stream key lives on: a jump consistent hash
/// (Lamping and Veach) of the key's 64-bit FNV-1a hash. Adding a shard moves about 1/n of the
/// keys, all to the new shard.
inline std::size_t redis_shard_of(std::string_view key, std::size_t shards) noexcept {
  std::uint64_t h = 14695981039346656037ULL;
  for (char c : key) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  std::int64_t b = -1, j = 0;
  const auto n = static_cast<std::int64_t>(shards);
  while (j < n) {
    b = j;
    h = h * 2862933555777941757ULL + 1;
    j = static_cast<std::int64_t>(static_cast<double>(b + 1) *
                                  (static_cast<double>(std::int64_t{1} << 31) /
                                   static_cast<double>((h >> 33) + 1)));
  }
  return b < 0 ? 0 : static_cast<std::size_t>(b);
}

namespace detail {

/// Reads a position id ("p0.p1...", see `shard_position_order`) of exactly `shards` parts.
inline std::optional<std::vector<std::uint64_t>> parse_positions(std::string_view id,
                                                                 std::size_t shards) {
  std::vector<std::uint64_t> out;
  while (true) {
    auto dot = id.find('.');
    auto v = parse_u64(id.substr(0, dot));
    if (!v || out.size() == shards) return std::nullopt;
    out.push_back(*v);
    if (dot == std::string_view::npos) break;
    id.remove_prefix(dot + 1);
  }
  if (out.size() != shards) return std::nullopt;
  return out;
}

/// The text of a position id.
inline std::string format_positions(const std::vector<std::uint64_t>& p) {
  std::string out;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (i) out += '.';
    out += std::to_string(p[i]);
  }
  return out;
}

/// The stream a target part is carried on: `<prefix>:c:<channel>`, `<prefix>:p:<pool>`,
/// `<prefix>:u:<user>`, `<prefix>:k:<high 32 bits of the client id>` (the node holding it).
inline std::string stream_key(std::string_view prefix, const Target::Selector& s) {
  std::string key(prefix);
  switch (s.kind) {
    case Target::Kind::channel: key += ":c:"; break;
    case Target::Kind::pool: key += ":p:"; break;
    case Target::Kind::user: key += ":u:"; break;
    case Target::Kind::client: return key + ":k:" + std::to_string(s.client >> 32);
  }
  return key + s.name;
}

/// The stream of `Target::all()`.
inline std::string all_stream_key(std::string_view prefix) { return std::string(prefix) + ":all"; }

/// A stream entry id "<counter>-0" as its counter; nullopt for anything else.
inline std::optional<std::uint64_t> entry_counter(std::string_view id) noexcept {
  auto dash = id.find('-');
  if (dash == std::string_view::npos || id.substr(dash + 1) != "0") return std::nullopt;
  return parse_u64(id.substr(0, dash));
}

/// A target as one stream-entry field: "*" for all, else each part as <kind><length>:<name>
/// with kind k (client id), u (user), p (pool) or c (channel). Any byte may appear in a name.
inline std::string encode_target(const Target& t) {
  if (t.is_all()) return "*";
  std::string out;
  for (const auto& s : t.selectors()) {
    std::string name = s.kind == Target::Kind::client ? std::to_string(s.client) : s.name;
    out += s.kind == Target::Kind::client ? 'k'
           : s.kind == Target::Kind::user ? 'u'
           : s.kind == Target::Kind::pool ? 'p'
                                          : 'c';
    out += std::to_string(name.size());
    out += ':';
    out += name;
  }
  return out;
}

/// The target `encode_target` wrote; nullopt for anything else.
inline std::optional<Target> decode_target(std::string_view text) {
  if (text == "*") return Target::all();
  Target t;
  if (text.empty()) return std::nullopt;
  while (!text.empty()) {
    char kind = text.front();
    text.remove_prefix(1);
    std::size_t len = 0, i = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9' && i < 10)
      len = len * 10 + static_cast<std::size_t>(text[i++] - '0');
    if (i == 0 || i >= text.size() || text[i] != ':' || text.size() - i - 1 < len) return std::nullopt;
    std::string name(text.substr(i + 1, len));
    text.remove_prefix(i + 1 + len);
    if (kind == 'u') {
      t |= Target::user(name);
    } else if (kind == 'p') {
      t |= Target::pool(std::move(name));
    } else if (kind == 'c') {
      t |= Target::channel(std::move(name));
    } else if (kind == 'k') {
      auto id = parse_u64(name);
      if (!id) return std::nullopt;
      t |= Target::client(*id);
    } else {
      return std::nullopt;
    }
  }
  return t;
}

/// The fields of the stream entry that carries `ev` to `target` (target, data, then event,
/// comment and retry when set). Holds the encoded strings the field views point into.
class EntryFields {
 public:
  EntryFields(const Target& target, const Event& ev)
      : target_(encode_target(target)),
        retry_(ev.retry ? std::to_string(ev.retry->count()) : std::string()) {}

  /// Appends field, value, ... to `out`: views into this and `ev`, which must outlive them.
  void append_to(std::vector<std::string_view>& out, const Event& ev) const {
    out.insert(out.end(), {"target", target_, "data", ev.data});
    if (!ev.type.empty()) out.insert(out.end(), {"event", ev.type});
    if (!ev.comment.empty()) out.insert(out.end(), {"comment", ev.comment});
    if (ev.retry) out.insert(out.end(), {"retry", retry_});
  }

 private:
  std::string target_;
  std::string retry_;
};

/// Reads a stream entry: its id and `count` items (field, value, field, value, ...), item `i`
/// being `item(i)` (a string_view). True with the target and the event (its id the entry id)
/// when the entry is well formed: a non-empty id, an even count, a readable target, a decimal
/// retry, and an event `validate` accepts. Unknown fields are ignored.
template <class Item>
bool decode_entry_items(std::string_view id, std::size_t count, Item&& item, Target& target,
                        Event& ev) {
  if (id.empty() || count % 2 != 0) return false;
  ev = Event{};
  ev.id = std::string(id);
  bool has_target = false;
  for (std::size_t i = 0; i + 1 < count; i += 2) {
    std::string_view k = item(i), v = item(i + 1);
    if (k == "target") {
      auto t = decode_target(v);
      if (!t) return false;
      target = std::move(*t);
      has_target = true;
    } else if (k == "event") {
      ev.type = std::string(v);
    } else if (k == "data") {
      ev.data = std::string(v);
    } else if (k == "comment") {
      ev.comment = std::string(v);
    } else if (k == "retry") {
      auto ms = v.size() <= 12 ? parse_u64(v) : std::nullopt;
      if (!ms) return false;
      ev.retry = std::chrono::milliseconds(static_cast<long long>(*ms));
    }
  }
  return has_target && validate(ev).has_value();
}

/// parse_pubsub_message's reader: false with the reason in `error`.
inline bool read_pubsub_message(std::string_view text, Target& target, Event& ev,
                                std::string& error) {
  std::vector<detail::JsonMember> top;
  if (!detail::JsonReader(text).object(top, error)) return false;
  ev = Event{};
  target = Target::all();
  for (const auto& m : top) {
    if (m.key == "target") {
      if (m.is_null) continue;
      std::vector<detail::JsonMember> t;
      if (m.is_string || !detail::JsonReader(m.value).object(t, error) || t.size() != 1) {
        if (error.empty()) error = "target must be an object with one key";
        return false;
      }
      const auto& sel = t.front();
      if (sel.key == "all" && sel.value == "true") continue;
      if (!sel.is_string || sel.value.empty()) {
        error = "target value must be a non-empty string";
        return false;
      }
      if (sel.key == "channel") {
        target = Target::channel(sel.value);
      } else if (sel.key == "user") {
        target = Target::user(sel.value);
      } else if (sel.key == "pool") {
        target = Target::pool(sel.value);
      } else if (sel.key == "client") {
        auto id = detail::parse_u64(sel.value);
        if (!id) {
          error = "client must be a decimal id";
          return false;
        }
        target = Target::client(*id);
      } else {
        error = "unknown target kind \"" + sel.key + "\"";
        return false;
      }
    } else if (m.key == "event") {
      if (!m.is_string) return error = "event must be a string", false;
      ev.type = m.value;
    } else if (m.key == "data") {
      ev.data = m.value;
    } else if (m.key == "id") {
      if (!m.is_string) return error = "id must be a string", false;
      ev.id = m.value;
    } else if (m.key == "retry") {
      auto ms = !m.is_string && m.value.size() <= 12 ? detail::parse_u64(m.value) : std::nullopt;
      if (!ms) return error = "retry must be a non-negative integer", false;
      ev.retry = std::chrono::milliseconds(static_cast<long long>(*ms));
    } else {
      error = "unknown key \"" + m.key + "\"";
      return false;
    }
  }
  if (auto valid = validate(ev); !valid) {
    error = valid.error().message();
    return false;
  }
  return true;
}

}  // namespace detail

/// One Pub/Sub interop message: who it is for, and the event.
struct PubSubMessage {
  Target target;
  Event event;
};

/// Reads one Pub/Sub interop message:
/// `{"target": {"channel": "…"} | {"user": "…"} | {"pool": "…"} | {"client": "…"} | {"all": true},
///   "event": "…", "data": "…" (or any JSON value, delivered as its JSON text), "id": "…",
///   "retry": ms}`; every key but data optional, no target means everyone.
/// Anything else fails with `errc::invalid_message` (never an exception: the text is untrusted).
/// The code says only "malformed"; when `why` is given it receives the reason in words, e.g.
/// `unknown key "extra"` or `event type contains a line break (CR or LF)`, for a log line or a
/// reply to the publisher.
inline Result<PubSubMessage> parse_pubsub_message(std::string_view text,
                                                  std::string* why = nullptr) {
  PubSubMessage m;
  std::string error;
  if (detail::read_pubsub_message(text, m.target, m.event, error)) return m;
  if (why) *why = error.empty() ? make_error_code(errc::invalid_message).message() : std::move(error);
  return errc::invalid_message;
}

SSEPP_END_NAMESPACE
