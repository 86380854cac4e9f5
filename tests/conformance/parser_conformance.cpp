// Conformance of ssepp::Parser with WHATWG HTML 9.2 "Server-sent events": 9.2.5 "Parsing an event
// stream" and 9.2.6 "Interpreting an event stream" (plus the Encoding Standard's UTF-8 decode it
// calls for), rule by rule. Each case is data: an input stream and the log it must produce. Every
// case is parsed whole, byte by byte, split in two at every offset, and through the pull face;
// all runs must give the expected log. Cases on valid UTF-8 also run with Utf8::replace, which
// must change nothing.
#include "conformance/cases.hpp"
#include "conformance/event_log.hpp"

#include <ssepp/parser.hpp>

#include "support/catch.hpp"

#include <string>
#include <vector>

namespace {

using conformance::Case;
using conformance::cases;
using sselog::ev;

void check_case(const Case& c, ssepp::ParserOptions options) {
  sselog::Outcome expected;
  expected.log = c.log;
  expected.last_event_id = c.last_id;
  for (const auto& entry : c.log)
    if (entry.rfind("retry ", 0) == 0) expected.retry = std::stoll(entry.substr(6));

  const std::string& in = c.input;
  {
    INFO("whole");
    auto got = sselog::parse_whole(in, options);
    CHECK(got.log == expected.log);
    CHECK(got == expected);
  }
  {
    INFO("byte by byte");
    CHECK(sselog::parse_bytewise(in, options) == expected);
  }
  for (std::size_t cut = 0; cut <= in.size(); ++cut) {
    INFO("split at " << cut);
    auto got = sselog::parse_cuts(in, {cut}, options);
    if (!(got == expected)) {
      CHECK(got.log == expected.log);
      CHECK(got == expected);
      break;  // one failing offset says enough
    }
  }
  {
    INFO("pull face, byte by byte");
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < in.size(); ++i) cuts.push_back(i);
    CHECK(sselog::parse_pull(in, cuts, options) == expected);
  }
}

}  // namespace

TEST_CASE("conformance: every case, whole, byte by byte and split at every offset") {
  for (const Case& c : cases()) {
    INFO("case: " << c.name << "\nrule: " << c.rule << "\ninput: " << sselog::quote(c.input));
    check_case(c, c.options);
    // Valid UTF-8 decodes to itself: replacing must change nothing.
    if (c.options.utf8 == ssepp::Utf8::pass_through &&
        ssepp::detail::utf8_valid(c.input.data(), c.input.size())) {
      INFO("again with Utf8::replace");
      ssepp::ParserOptions o = c.options;
      o.utf8 = ssepp::Utf8::replace;
      check_case(c, o);
    }
  }
}

TEST_CASE("conformance: the harness detects a wrong log") {
  // A deliberately wrong expectation must not compare equal (guards against a vacuous harness).
  auto got = sselog::parse_whole("data: a\n\n");
  CHECK(got.log == std::vector<std::string>{ev("message", "a")});
  CHECK_FALSE(got.log == std::vector<std::string>{ev("message", "b")});
  CHECK_FALSE(sselog::parse_whole("data: a\n\n").log.empty());
}
