#include <ssepp/target.hpp>

#include "support/catch.hpp"

#include <string>
#include <string_view>
#include <vector>

using ssepp::Target;

namespace {
auto in(std::vector<std::string> names) {
  return [names](std::string_view n) {
    for (auto& x : names)
      if (x == n) return true;
    return false;
  };
}
}  // namespace

TEST_CASE("Target: what matches") {
  auto pools = in({"tenant:a", "user:alice"});
  auto channels = in({"news"});
  auto matches = [&](const Target& t) { return t.matches(7, "alice", pools, channels); };
  CHECK(matches(Target::all()));
  CHECK(matches(Target::client(7)));
  CHECK_FALSE(matches(Target::client(8)));
  CHECK(matches(Target::pool("tenant:a")));
  CHECK(matches(Target::user("alice")));
  CHECK_FALSE(matches(Target::user("bob")));
  CHECK(matches(Target::users({"bob", "alice"})));
  CHECK(matches(Target::channel("news")));
  CHECK_FALSE(matches(Target::pool("news")));  // separate namespaces
  CHECK_FALSE(matches(Target::channel("tenant:a")));
  CHECK(matches(Target::channels({"sport", "news"})));
  CHECK_FALSE(matches(Target::channels({"sport", "weather"})));
  CHECK(matches(Target::pool("x") | Target::channel("news")));
  CHECK_FALSE(matches(Target()));
}

TEST_CASE("Target: users and pools are separate namespaces, whatever the names look like") {
  auto no_channel = in({});
  // A client in a pool named "user:bob" is not user bob...
  CHECK_FALSE(Target::user("bob").matches(1, "", in({"user:bob"}), no_channel));
  // ...and user bob is not in the pool "user:bob".
  CHECK_FALSE(Target::pool("user:bob").matches(1, "bob", in({}), no_channel));
  CHECK(Target::user("bob").matches(1, "bob", in({}), no_channel));
  CHECK(Target::pool("user:bob").matches(1, "", in({"user:bob"}), no_channel));
  // An anonymous client matches no user part, not even an empty name.
  CHECK_FALSE(Target::user("").matches(1, "", in({""}), no_channel));
  CHECK(Target::user("bob") != Target::pool("user:bob"));
  CHECK(Target::user("bob") != Target::channel("bob"));
  CHECK((Target::user("bob") | Target::pool("user:bob")).selectors().size() == 2);
}

TEST_CASE("Target: unions, duplicates and directness") {
  CHECK(Target().empty());
  CHECK(Target::all().is_all());
  CHECK((Target::pool("a") | Target::all()).is_all());
  CHECK(Target::client(1).is_direct());
  CHECK((Target::client(1) | Target::client(2)).is_direct());
  CHECK_FALSE((Target::client(1) | Target::channel("c")).is_direct());
  CHECK_FALSE(Target::user("u").is_direct());
  CHECK_FALSE(Target::all().is_direct());
  auto t = Target::channel("a") | Target::channel("a") | Target::channels({"a", "b", "b"});
  CHECK(t.selectors().size() == 2);
  CHECK(Target::users({"x", "x"}).selectors().size() == 1);
  CHECK(Target::user("bob").selectors()[0].kind == Target::Kind::user);
  CHECK(Target::user("bob").selectors()[0].name == "bob");
}

TEST_CASE("Target: valid names") {
  const std::string longest(ssepp::max_group_name, 'x');
  CHECK(Target().valid());
  CHECK(Target::all().valid());
  CHECK(Target::client(0).valid());
  CHECK((Target::user(longest) | Target::pool("p") | Target::channel("c")).valid());
  CHECK_FALSE(Target::user("").valid());
  CHECK_FALSE(Target::pool("").valid());
  CHECK_FALSE((Target::channel("c") | Target::channel(longest + "x")).valid());
  CHECK(ssepp::valid_group_name("a"));
  CHECK_FALSE(ssepp::valid_group_name(""));
  static_assert(ssepp::valid_group_name("user:bob"));
}

TEST_CASE("to_string(Target::Kind) names the enumerators") {
  CHECK(ssepp::to_string(Target::Kind::client) == "client");
  CHECK(ssepp::to_string(Target::Kind::pool) == "pool");
  CHECK(ssepp::to_string(Target::Kind::channel) == "channel");
  CHECK(ssepp::to_string(Target::Kind::user) == "user");
  static_assert(ssepp::to_string(Target::Kind::user) == "user");
}
