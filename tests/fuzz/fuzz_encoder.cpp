// Encoder round trip: any event either is rejected for the right reason with nothing written, or
// encodes to bytes that ssepp::Parser reads back as exactly that event (line breaks as LF),
// however the bytes are split.
#include <ssepp/encoder.hpp>
#include <ssepp/parser.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include "../support/normalise.hpp"

#include <cstdlib>
#include <string>
#include <vector>

namespace {

using testing_sse::normalised;

bool has_any(const std::string& s, std::string_view set) {
  return s.find_first_of(set) != std::string::npos;
}

struct Seen {
  std::vector<std::string> types, datas, ids;
  std::vector<long long> retries;
  void on_event(const ssepp::EventView& ev) {
    types.emplace_back(ev.type);
    datas.emplace_back(ev.data);
    ids.emplace_back(ev.id);
  }
  void on_retry(std::chrono::milliseconds ms) { retries.push_back(ms.count()); }
};

#include "check.hpp"

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider in(bytes, size);
  ssepp::Event ev;
  ev.type = in.ConsumeRandomLengthString(32);
  if (in.ConsumeBool()) ev.id = in.ConsumeRandomLengthString(32);
  if (in.ConsumeBool()) ev.retry = std::chrono::milliseconds(in.ConsumeIntegral<std::int32_t>());
  if (in.ConsumeBool()) ev.comment = in.ConsumeRandomLengthString(64);
  ev.data = in.ConsumeRemainingBytesAsString();

  std::string out = "x";
  const std::error_code ec = ssepp::encode_to(out, ev).error();
  const bool bad_type = has_any(ev.type, std::string_view("\r\n", 2));
  const bool bad_id = ev.id && has_any(*ev.id, std::string_view("\r\n\0", 3));
  const bool bad_retry = ev.retry && ev.retry->count() < 0;
  if (bad_type || bad_id || bad_retry) {
    CHECK(out == "x");  // nothing written
    CHECK(ec == (bad_type ? ssepp::errc::invalid_event_type
                          : bad_id ? ssepp::errc::invalid_event_id : ssepp::errc::invalid_retry));
    auto frame = ssepp::Frame::try_from_event(ev);
    CHECK(!frame && frame.error() == ec);
    CHECK(ssepp::validate(ev).error() == ec);
    return 0;
  }
  CHECK(!ec);
  const std::string stream = out.substr(1);
  CHECK(ssepp::Frame::from_event(ev).view() == stream);
  CHECK(stream.size() >= 2 && stream.compare(stream.size() - 2, 2, "\n\n") == 0);
  CHECK(stream.find('\r') == std::string::npos);

  // Parse whole, then split at a point chosen from the data: same single event both times.
  for (std::size_t split : {stream.size(), ev.data.size() % (stream.size() + 1)}) {
    ssepp::ParserOptions opts;
    opts.limits.max_line = 1 << 20;
    ssepp::Parser parser(opts);
    Seen seen;
    CHECK(parser.feed(std::string_view(stream).substr(0, split), seen));
    CHECK(parser.feed(std::string_view(stream).substr(split), seen));
    CHECK(seen.types.size() == 1);
    CHECK(seen.types[0] == (ev.type.empty() ? "message" : ev.type));
    CHECK(seen.datas[0] == normalised(ev.data));
    CHECK(seen.ids[0] == ev.id.value_or(""));
    if (ev.retry)
      CHECK(seen.retries.size() == 1 && seen.retries[0] == ev.retry->count());
    else
      CHECK(seen.retries.empty());
  }
  return 0;
}
