// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// HTTP dates (RFC 9110 section 5.6.7) and `Retry-After` (section 10.2.3): IMF-fixdate and the
// obsolete RFC 850 and asctime forms a recipient must accept, and delta-seconds. Untrusted input:
// anything malformed yields nothing, never an exception. Internal to the client.
#pragma once

#include <ssepp/config.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

SSEPP_BEGIN_NAMESPACE
namespace detail {

using SysTime = std::chrono::system_clock::time_point;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

/// The civil year of a time point (for RFC 850's two-digit years).
inline std::int64_t civil_year(SysTime t) noexcept {
  // Hinnant's civil_from_days, year only.
  using Days = std::chrono::duration<std::int64_t, std::ratio<86400>>;
  std::int64_t z = std::chrono::floor<Days>(t.time_since_epoch()).count() + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
}

/// A small cursor over a date string.
class DateScanner {
 public:
  explicit DateScanner(std::string_view s) noexcept : s_(s) {}
  bool done() const noexcept { return s_.empty(); }
  bool lit(std::string_view t) noexcept {
    if (s_.substr(0, t.size()) != t) return false;
    s_.remove_prefix(t.size());
    return true;
  }
  /// Exactly `n` digits.
  bool digits(unsigned n, unsigned& out) noexcept {
    if (s_.size() < n) return false;
    unsigned v = 0;
    for (unsigned i = 0; i < n; ++i) {
      char c = s_[i];
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    s_.remove_prefix(n);
    out = v;
    return true;
  }
  /// One of `names` (case-sensitive, as RFC 9110 requires); its index.
  template <std::size_t N>
  bool name(const std::string_view (&names)[N], unsigned& out) noexcept {
    for (unsigned i = 0; i < N; ++i)
      if (lit(names[i])) {
        out = i;
        return true;
      }
    return false;
  }

 private:
  std::string_view s_;
};

inline constexpr std::string_view day_names[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
inline constexpr std::string_view long_day_names[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                                      "Friday", "Saturday", "Sunday"};
inline constexpr std::string_view month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/// A validated date and time of day as a time point, or nothing.
inline std::optional<SysTime> make_time(std::int64_t year, unsigned month, unsigned day,
                                        unsigned hour, unsigned minute, unsigned second) noexcept {
  static constexpr unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month >= 12 || day == 0 || day > mdays[month]) return std::nullopt;
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month == 1 && day == 29 && !leap) return std::nullopt;
  if (hour > 23 || minute > 59 || second > 60) return std::nullopt;  // 60: a leap second
  const std::int64_t secs = days_from_civil(year, month + 1, day) * 86400 + hour * 3600LL +
                            minute * 60LL + second;
  // Years 0000..9999 do not all fit a nanosecond system_clock: saturate instead of overflowing.
  using std::chrono::seconds;
  const auto hi = std::chrono::duration_cast<seconds>(SysTime::duration::max()).count() - 1;
  const auto lo = std::chrono::duration_cast<seconds>(SysTime::duration::min()).count() + 1;
  if (secs >= hi) return SysTime(std::chrono::duration_cast<SysTime::duration>(seconds(hi)));
  if (secs <= lo) return SysTime(std::chrono::duration_cast<SysTime::duration>(seconds(lo)));
  return SysTime(std::chrono::duration_cast<SysTime::duration>(seconds(secs)));
}

/// Parses an HTTP-date in any of RFC 9110's three forms:
///   IMF-fixdate  `Sun, 06 Nov 1994 08:49:37 GMT`
///   RFC 850      `Sunday, 06-Nov-94 08:49:37 GMT` (two-digit year: a date more than 50 years
///                after `now`'s year is taken from the previous century)
///   asctime      `Sun Nov  6 08:49:37 1994`
inline std::optional<SysTime> parse_http_date(std::string_view s, SysTime now) noexcept {
  unsigned wd = 0, day = 0, mon = 0, y = 0, h = 0, mi = 0, sec = 0;
  auto clock = [&](DateScanner& p) {
    return p.digits(2, h) && p.lit(":") && p.digits(2, mi) && p.lit(":") && p.digits(2, sec);
  };
  {  // IMF-fixdate
    DateScanner p(s);
    if (p.name(day_names, wd) && p.lit(", ") && p.digits(2, day) && p.lit(" ") &&
        p.name(month_names, mon) && p.lit(" ") && p.digits(4, y) && p.lit(" ") && clock(p) &&
        p.lit(" GMT") && p.done())
      return make_time(y, mon, day, h, mi, sec);
  }
  {  // RFC 850
    DateScanner p(s);
    if (p.name(long_day_names, wd) && p.lit(", ") && p.digits(2, day) && p.lit("-") &&
        p.name(month_names, mon) && p.lit("-") && p.digits(2, y) && p.lit(" ") && clock(p) &&
        p.lit(" GMT") && p.done()) {
      const std::int64_t this_year = civil_year(now);
      std::int64_t year = this_year - this_year % 100 + y;
      if (year > this_year + 50) year -= 100;
      return make_time(year, mon, day, h, mi, sec);
    }
  }
  {  // asctime: the day of month is two digits or a space and one digit
    DateScanner p(s);
    if (p.name(day_names, wd) && p.lit(" ") && p.name(month_names, mon) && p.lit(" ") &&
        (p.lit(" ") ? p.digits(1, day) : p.digits(2, day)) && p.lit(" ") && clock(p) &&
        p.lit(" ") && p.digits(4, y) && p.done())
      return make_time(y, mon, day, h, mi, sec);
  }
  return std::nullopt;
}

/// The longest `Retry-After` taken literally (about 31 years): longer ones saturate here, so a
/// transport adding it to a nanosecond clock cannot overflow.
inline constexpr std::chrono::seconds max_retry_after{1'000'000'000};

/// Parses a `Retry-After` value: delta-seconds, or an HTTP-date measured from `now` (the
/// response's `Date` if it had one, else the caller's wall clock; nothing when neither is known).
/// Returns the wait (zero for a date in the past), or nothing when the value is malformed.
inline std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view v,
                                                                  std::optional<SysTime> now) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.empty()) return std::nullopt;
  if (v.front() >= '0' && v.front() <= '9') {
    std::int64_t secs = 0;
    for (char c : v) {
      if (c < '0' || c > '9') return std::nullopt;
      secs = std::min<std::int64_t>(secs * 10 + (c - '0'), max_retry_after.count());
    }
    return std::chrono::milliseconds(std::chrono::seconds(secs));
  }
  if (!now) return std::nullopt;
  auto when = parse_http_date(v, *now);
  if (!when) return std::nullopt;
  // In milliseconds (a difference of two nanosecond time points from untrusted dates could
  // overflow); flooring `now` rounds the wait up: never back before the server's time.
  using std::chrono::milliseconds;
  const auto wait = std::chrono::floor<milliseconds>(when->time_since_epoch()) -
                    std::chrono::floor<milliseconds>(now->time_since_epoch());
  if (wait <= milliseconds(0)) return milliseconds(0);
  return std::min<milliseconds>(wait, max_retry_after);
}

}  // namespace detail
SSEPP_END_NAMESPACE
