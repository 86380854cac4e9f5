// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// The replay buffer behind Last-Event-ID resumption: what was sent, to whom (`Target`), under
// which id, and how ids compare.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/encoder.hpp>
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

/// The outcome of a Last-Event-ID lookup.
enum class Replay {
  none,     ///< no Last-Event-ID was given
  found,    ///< the id is known: every later matching event was replayed (maybe none)
  unknown,  ///< the id is not in the history and not older than it (another server, a restart,
            ///< a forged id): the host should send a snapshot
  too_old,  ///< the id is older than everything kept: events were missed; send a snapshot
};

/// The enumerator's name: "none", "found", "unknown" or "too_old" (empty for a value outside
/// the enumeration).
constexpr std::string_view to_string(Replay r) noexcept {
  switch (r) {
    case Replay::none: return "none";
    case Replay::found: return "found";
    case Replay::unknown: return "unknown";
    case Replay::too_old: return "too_old";
  }
  return {};
}

/// How event ids compare, for telling "too old" from "unknown": negative, zero or positive like
/// `a <=> b`, or `std::nullopt` when either is not an id of this scheme.
using IdOrder = std::optional<int> (*)(std::string_view a, std::string_view b) noexcept;

namespace detail {
/// Parses a decimal uint64 (digits only, no sign, no overflow).
inline std::optional<std::uint64_t> parse_u64(std::string_view s) noexcept {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}
template <class T>
int three_way(const T& a, const T& b) noexcept {
  return a < b ? -1 : (b < a ? 1 : 0);
}
}  // namespace detail

/// The broadcaster's own ids: decimal integers ("1", "2", ...), compared by value.
inline std::optional<int> decimal_id_order(std::string_view a, std::string_view b) noexcept {
  auto x = detail::parse_u64(a);
  auto y = detail::parse_u64(b);
  if (!x || !y) return std::nullopt;
  return detail::three_way(*x, *y);
}

/// Bounds of a `History`.
struct HistoryOptions {
  /// Entries kept at most (oldest evicted first). 0 keeps none: every id but the newest is
  /// then "too old" or "unknown".
  std::size_t max_entries = 1024;
  /// Entries older than this are dropped by `expire`. Zero or negative: no age limit.
  std::chrono::milliseconds max_age = std::chrono::minutes(5);
  /// How ids compare (only used to tell `too_old` from `unknown`).
  IdOrder order = decimal_id_order;
};

/// One sent event as the history keeps it.
struct HistoryEntry {
  std::string id;                                ///< the event's id (as sent)
  Target target;                                 ///< who it was sent to
  Frame frame;                                   ///< the encoded bytes, shared with the live send
  std::chrono::steady_clock::time_point at{};    ///< when it was recorded
};

/// Replay buffer: the last events sent, bounded by count and by age, in send order.
///
/// Not thread-safe by itself (the broadcaster guards it). Memory: one ring of entries up to
/// `max_entries`; each entry shares its frame with the live send. In steady state `push` reuses
/// the evicted entry's storage.
class History {
 public:
  using Clock = std::chrono::steady_clock;

  explicit History(HistoryOptions options = {}) : options_(options) {}

  /// Records an event sent with `id` to `target`. Evicts the oldest entry when full.
  void push(std::string id, const Target& target, Frame frame, Clock::time_point at) {
    last_id_ = id;
    has_last_ = true;
    if (options_.max_entries == 0) return;
    HistoryEntry* slot;
    if (count_ == options_.max_entries) {
      slot = &ring_[head_];
      head_ = next(head_);
      dropped_id_.swap(slot->id);
      has_dropped_ = true;
    } else {
      if (count_ == ring_.size()) grow();
      slot = &ring_[index(count_)];
      ++count_;
    }
    slot->id = std::move(id);
    slot->target = target;
    slot->frame = std::move(frame);
    slot->at = at;
  }

  /// Drops entries recorded `max_age` or longer before `now`; returns how many.
  std::size_t expire(Clock::time_point now) noexcept {
    if (options_.max_age.count() <= 0) return 0;
    std::size_t n = 0;
    while (count_ != 0 && now - ring_[head_].at >= options_.max_age) {
      ring_[head_].frame = Frame();
      dropped_id_.swap(ring_[head_].id);
      has_dropped_ = true;
      head_ = next(head_);
      --count_;
      ++n;
    }
    if (count_ == 0) head_ = 0;
    return n;
  }

  /// Looks up `last_id` and appends to `out`, oldest first, the frame of every later entry for
  /// which `match(const HistoryEntry&)` is true. Returns:
  /// - `found` when `last_id` is an entry's id, the newest id ever recorded (even if expired), or
  ///   the id of the newest entry that left the buffer (nothing after it was dropped);
  /// - `too_old` when it is not kept but compares (by `order`) older than the oldest kept entry
  ///   (or than the newest id ever recorded, when nothing is kept);
  /// - `unknown` otherwise; `none` when `last_id` is empty.
  /// Cost: a backwards scan for the id, then one `match` call per later entry.
  template <class Match>
  Replay replay_after(std::string_view last_id, Match&& match, std::vector<Frame>& out) const {
    if (last_id.empty()) return Replay::none;
    for (std::size_t i = count_; i-- > 0;) {
      if (at(i).id == last_id) {
        for (std::size_t j = i + 1; j < count_; ++j)
          if (match(at(j))) out.push_back(at(j).frame);
        return Replay::found;
      }
    }
    if (has_last_ && last_id == last_id_) return Replay::found;
    if (has_dropped_ && last_id == dropped_id_) {
      for (std::size_t j = 0; j < count_; ++j)
        if (match(at(j))) out.push_back(at(j).frame);
      return Replay::found;
    }
    if (options_.order == nullptr) return Replay::unknown;
    for (std::size_t i = 0; i < count_; ++i) {
      if (auto c = options_.order(last_id, at(i).id)) return *c < 0 ? Replay::too_old : Replay::unknown;
    }
    if (has_last_) {
      if (auto c = options_.order(last_id, last_id_)) return *c < 0 ? Replay::too_old : Replay::unknown;
    }
    return Replay::unknown;
  }

  /// Entries kept.
  std::size_t size() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }
  /// The i-th kept entry, 0 = oldest.
  const HistoryEntry& at(std::size_t i) const noexcept { return ring_[index(i)]; }
  /// The id most recently recorded (kept after its entry expires); empty when none.
  const std::string& last_id() const noexcept { return last_id_; }
  /// Drops every entry (the last id is kept).
  void clear() noexcept {
    for (std::size_t i = 0; i < count_; ++i) ring_[index(i)].frame = Frame();
    head_ = count_ = 0;
  }
  const HistoryOptions& options() const noexcept { return options_; }

 private:
  std::size_t index(std::size_t i) const noexcept {
    std::size_t k = head_ + i;
    return k >= ring_.size() ? k - ring_.size() : k;
  }
  std::size_t next(std::size_t k) const noexcept { return k + 1 == ring_.size() ? 0 : k + 1; }

  void grow() {
    std::size_t cap = ring_.empty() ? 16 : ring_.size() * 2;
    if (cap > options_.max_entries) cap = options_.max_entries;
    std::vector<HistoryEntry> bigger(cap);
    for (std::size_t i = 0; i < count_; ++i) bigger[i] = std::move(ring_[index(i)]);
    ring_.swap(bigger);
    head_ = 0;
  }

  HistoryOptions options_;
  std::vector<HistoryEntry> ring_;
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  std::string last_id_;
  std::string dropped_id_;  // id of the newest entry evicted or expired
  bool has_last_ = false;
  bool has_dropped_ = false;
};

SSEPP_END_NAMESPACE
