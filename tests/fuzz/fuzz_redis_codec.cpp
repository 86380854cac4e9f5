// The Redis codec on hostile input (stream entries another node or anyone with write access to
// the stream wrote, Pub/Sub JSON any service published, ids from a client): never crash, never
// throw, and what it accepts keeps its promises (a decoded entry re-encodes to itself, an
// accepted message is a valid event, the id orders are antisymmetric, position ids round-trip).
// Needs no hiredis.
#include <ssepp/redis/codec.hpp>

#ifdef __HIREDIS_H
#  error "the Redis codec must not include hiredis"
#endif

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "check.hpp"

namespace {

bool decode(std::string_view id, const std::vector<std::string_view>& items, ssepp::Target& t,
            ssepp::Event& ev) {
  return ssepp::detail::decode_entry_items(
      id, items.size(), [&](std::size_t i) { return items[i]; }, t, ev);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider in(bytes, size);
  switch (in.ConsumeIntegralInRange<int>(0, 4)) {
    case 0: {  // a stream entry: id, then field/value items
      const std::string id = in.ConsumeRandomLengthString(64);
      std::vector<std::string> owned;
      const int n = in.ConsumeIntegralInRange<int>(0, 12);
      for (int i = 0; i < n; ++i) owned.push_back(in.ConsumeRandomLengthString(256));
      std::vector<std::string_view> items(owned.begin(), owned.end());
      ssepp::Target target;
      ssepp::Event ev;
      if (!decode(id, items, target, ev)) break;
      CHECK(ssepp::validate(ev).has_value());
      CHECK(ev.id && *ev.id == id);
      // What was accepted re-encodes to the same target and event.
      ssepp::detail::EntryFields fields(target, ev);
      std::vector<std::string_view> again;
      fields.append_to(again, ev);
      ssepp::Target target2;
      ssepp::Event ev2;
      CHECK(decode(id, again, target2, ev2));
      CHECK(target2 == target);
      CHECK(ev2 == ev);
      break;
    }
    case 1: {  // a target field
      const std::string text = in.ConsumeRemainingBytesAsString();
      auto t = ssepp::detail::decode_target(text);
      if (!t) break;
      auto back = ssepp::detail::decode_target(ssepp::detail::encode_target(*t));
      CHECK(back && *back == *t);
      break;
    }
    case 2: {  // a Pub/Sub message
      const std::string text = in.ConsumeRemainingBytesAsString();
      std::string why;
      auto m = ssepp::parse_pubsub_message(text, &why);
      if (m) {
        CHECK(ssepp::validate(m->event).has_value());
      } else {
        CHECK(m.error() == ssepp::errc::invalid_message);
        CHECK(!why.empty());
      }
      break;
    }
    case 3: {  // two position ids of a sharded bus (from clients' Last-Event-ID)
      const std::string a = in.ConsumeRandomLengthString(48);
      const std::string b = in.ConsumeRemainingBytesAsString();
      auto ab = ssepp::shard_position_order(a, b);
      auto ba = ssepp::shard_position_order(b, a);
      CHECK(ab.has_value() == ba.has_value());
      if (ab) {
        CHECK(*ab == -*ba);
        CHECK(*ssepp::shard_position_order(a, a) == 0);
      }
      for (std::size_t n = 1; n <= 4; ++n) {
        auto p = ssepp::detail::parse_positions(a, n);
        if (!p) continue;
        CHECK(p->size() == n);
        CHECK(ssepp::detail::parse_positions(ssepp::detail::format_positions(*p), n) == p);
      }
      (void)ssepp::redis_shard_of(a, 1 + a.size() % 7);
      CHECK(ssepp::redis_shard_of(a, 3) < 3);
      break;
    }
    default: {  // two stream ids
      const std::string a = in.ConsumeRandomLengthString(48);
      const std::string b = in.ConsumeRemainingBytesAsString();
      auto ab = ssepp::stream_id_order(a, b);
      auto ba = ssepp::stream_id_order(b, a);
      CHECK(ab.has_value() == ba.has_value());
      if (ab) {
        CHECK(*ab == -*ba);
        CHECK(*ssepp::stream_id_order(a, a) == 0);
      }
      break;
    }
  }
  return 0;
}
