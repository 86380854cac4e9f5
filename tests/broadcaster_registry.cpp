// The broadcaster's registry on its own (detail::Registry): who is in which user, pool and
// channel, what a target selects, and that every cross-link survives any order of operations.
#include <ssepp/detail/broadcaster_registry.hpp>

#include "support/catch.hpp"

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

using ssepp::ClientId;
using ssepp::Target;

namespace {

struct Sink {
  int tag = 0;
};
using Registry = ssepp::detail::Registry<Sink>;
using Strings = std::vector<std::string>;
const Registry::Clock::time_point t0{};

Registry::Names names(std::string user, Strings pools = {}, Strings channels = {}) {
  return Registry::Names{std::move(user), std::move(pools), std::move(channels)};
}

std::vector<ClientId> select(Registry& reg, const Target& t, bool* unknown = nullptr) {
  std::vector<Registry::Client*> out{nullptr};  // select replaces what was there
  bool u = reg.select(t, out);
  if (unknown) *unknown = u;
  std::vector<ClientId> ids;
  for (auto* c : out) ids.push_back(c->id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

using Ids = std::vector<ClientId>;

}  // namespace

TEST_CASE("registry: add, find, info and counts") {
  Registry reg;
  reg.add(1, Sink{11}, names("alice", {"tenant:a", "role:x"}, {"news"}), t0);
  reg.add(2, Sink{22}, names("", {"tenant:a"}), t0);
  CHECK(reg.size() == 2);
  CHECK(reg.pool_count() == 3);  // user alice, tenant:a, role:x
  CHECK(reg.channel_count() == 1);
  REQUIRE(reg.find(1));
  CHECK(reg.find(1)->sink.tag == 11);
  CHECK_FALSE(reg.find(3));
  auto info = reg.info(*reg.find(1));
  CHECK(info.id == 1);
  CHECK(info.user == "alice");
  CHECK(info.pools == Strings{"tenant:a", "role:x"});
  CHECK(info.channels == Strings{"news"});
  auto anon = reg.info(*reg.find(2));
  CHECK(anon.user.empty());
  CHECK(anon.pools == Strings{"tenant:a"});
  CHECK(reg.all().size() == 2);
  CHECK(reg.consistent());
}

TEST_CASE("registry: what each kind of target selects, each client once") {
  Registry reg;
  reg.add(1, Sink{}, names("bob"), t0);
  reg.add(2, Sink{}, names("", {"user:bob"}), t0);  // a pool, not the user
  reg.add(3, Sink{}, names("carol", {"user:bob"}, {"user:bob", "x"}), t0);
  reg.add(4, Sink{}, names("bob", {}, {"x"}), t0);
  CHECK(select(reg, Target::all()) == Ids{1, 2, 3, 4});
  CHECK(select(reg, Target()).empty());
  CHECK(select(reg, Target::user("bob")) == Ids{1, 4});
  CHECK(select(reg, Target::pool("user:bob")) == Ids{2, 3});
  CHECK(select(reg, Target::channel("user:bob")) == Ids{3});
  CHECK(select(reg, Target::channel("x")) == Ids{3, 4});
  CHECK(select(reg, Target::pool("x")).empty());
  CHECK(select(reg, Target::user("nobody")).empty());
  CHECK(select(reg, Target::client(3)) == Ids{3});
  CHECK(select(reg, Target::user("bob") | Target::channel("x") | Target::client(1) |
                        Target::client(99)) == Ids{1, 3, 4});
  CHECK(select(reg, Target::users({"bob", "carol"}) | Target::pool("user:bob")) == Ids{1, 2, 3, 4});
  bool unknown = false;
  CHECK(select(reg, Target::client(99), &unknown).empty());
  CHECK(unknown);
  CHECK(select(reg, Target::client(1) | Target::client(99), &unknown) == Ids{1});
  CHECK_FALSE(unknown);  // only a single unknown client is reported
  // Selecting twice in a row stamps afresh: nobody is skipped the second time.
  for (int i = 0; i < 3; ++i) CHECK(select(reg, Target::channel("x") | Target::user("bob")) == Ids{1, 3, 4});
}

TEST_CASE("registry: join and leave, groups appear and disappear with their members") {
  Registry reg;
  auto& a = reg.add(1, Sink{}, names("", {}, {"x"}), t0);
  auto& b = reg.add(2, Sink{}, names(""), t0);
  CHECK(reg.join(b, "x"));
  CHECK_FALSE(reg.join(b, "x"));  // already in
  CHECK(reg.join(b, "y"));
  CHECK(reg.in_channel(b, "y"));
  CHECK(reg.channel_count() == 2);
  CHECK(select(reg, Target::channel("x")) == Ids{1, 2});
  CHECK(reg.leave(a, "x"));
  CHECK_FALSE(reg.leave(a, "x"));
  CHECK_FALSE(reg.leave(a, "never"));
  CHECK(select(reg, Target::channel("x")) == Ids{2});
  CHECK(reg.leave(b, "x"));
  CHECK(reg.channel_count() == 1);  // "x" is forgotten once empty
  CHECK(reg.info(b).channels == Strings{"y"});
  CHECK(reg.consistent());
}

TEST_CASE("registry: a removed client is out of every group; its record lives with the node") {
  Registry reg;
  for (ClientId id = 1; id <= 6; ++id)
    reg.add(id, Sink{static_cast<int>(id)}, names("u", {"p"}, {"c"}), t0);
  std::vector<Registry::Client*> before;
  (void)reg.select(Target::all(), before);
  Registry::Client* third = reg.find(3);
  {
    Registry::Node node = reg.remove(*third);
    CHECK(node.key() == 3);
    CHECK(third->removed);  // the record is still there, and marked
    CHECK(third->sink.tag == 3);
    CHECK(&node.mapped() == third);
    CHECK_FALSE(reg.find(3));
    CHECK(select(reg, Target::user("u")) == Ids{1, 2, 4, 5, 6});
    CHECK(select(reg, Target::pool("p")) == Ids{1, 2, 4, 5, 6});
    CHECK(select(reg, Target::channel("c")) == Ids{1, 2, 4, 5, 6});
    CHECK(reg.consistent());
  }
  // Remove from the middle, the ends, everything: links stay right at every step.
  for (ClientId id : {ClientId{1}, ClientId{6}, ClientId{4}, ClientId{2}, ClientId{5}}) {
    (void)reg.remove(*reg.find(id));
    CHECK(reg.consistent());
  }
  CHECK(reg.size() == 0);
  CHECK(reg.pool_count() == 0);
  CHECK(reg.channel_count() == 0);
}

TEST_CASE("registry: remove_all hands back every record") {
  Registry reg;
  for (ClientId id = 1; id <= 100; ++id)
    reg.add(id, Sink{static_cast<int>(id)}, names("u" + std::to_string(id % 7), {"p"}, {"c" + std::to_string(id % 3)}), t0);
  auto nodes = reg.remove_all();
  CHECK(nodes.size() == 100);
  int sum = 0;
  for (auto& n : nodes) {
    CHECK(n.mapped().removed);
    sum += n.mapped().sink.tag;
  }
  CHECK(sum == 5050);
  CHECK(reg.size() == 0);
  CHECK(reg.pool_count() == 0);
  CHECK(reg.channel_count() == 0);
  CHECK(select(reg, Target::all()).empty());
  CHECK(reg.consistent());
  reg.add(1, Sink{}, names("u1"), t0);  // and it is usable again
  CHECK(select(reg, Target::user("u1")) == Ids{1});
}

TEST_CASE("registry: random operations agree with a plain model") {
  // The model: per client its user, pools and channels; a target's members computed naively.
  struct Model {
    std::string user;
    std::set<std::string> pools, channels;
  };
  const Strings users = {"", "ann", "bob"};
  const Strings pool_names = {"t1", "t2", "user:bob", "ann"};
  const Strings channel_names = {"c1", "c2", "bob", "user:ann"};
  for (unsigned seed = 1; seed <= 20; ++seed) {
    std::minstd_rand rng(seed);
    auto pick = [&](const Strings& v) { return v[rng() % v.size()]; };
    Registry reg;
    std::map<ClientId, Model> model;
    ClientId next = 1;
    for (int step = 0; step < 400; ++step) {
      switch (rng() % 6) {
        case 0:
        case 1: {  // add
          Model m;
          m.user = pick(users);
          Strings p, c;
          for (const auto& n : pool_names)
            if (rng() % 3 == 0) {
              m.pools.insert(n);
              p.push_back(n);
            }
          for (const auto& n : channel_names)
            if (rng() % 3 == 0) {
              m.channels.insert(n);
              c.push_back(n);
            }
          reg.add(next, Sink{}, names(m.user, p, c), t0);
          model[next++] = m;
          break;
        }
        case 2: {  // remove
          if (model.empty()) break;
          auto it = std::next(model.begin(), static_cast<long>(rng() % model.size()));
          (void)reg.remove(*reg.find(it->first));
          model.erase(it);
          break;
        }
        case 3:
        case 4: {  // join or leave
          if (model.empty()) break;
          auto it = std::next(model.begin(), static_cast<long>(rng() % model.size()));
          std::string ch = pick(channel_names);
          Registry::Client& c = *reg.find(it->first);
          if (rng() % 2) CHECK(reg.join(c, ch) == it->second.channels.insert(ch).second);
          else CHECK(reg.leave(c, ch) == (it->second.channels.erase(ch) == 1));
          break;
        }
        default: {  // select
          Target t;
          for (int parts = 1 + static_cast<int>(rng() % 3); parts > 0; --parts) {
            switch (rng() % 4) {
              case 0: t |= Target::user(pick(Strings{"ann", "bob"})); break;
              case 1: t |= Target::pool(pick(pool_names)); break;
              case 2: t |= Target::channel(pick(channel_names)); break;
              default: t |= Target::client(1 + rng() % next); break;
            }
          }
          Ids want;
          for (auto& [id, entry] : model)
            if (const Model& m = entry; t.matches(
                    id, m.user, [&](std::string_view p) { return m.pools.count(std::string(p)) != 0; },
                    [&](std::string_view c) { return m.channels.count(std::string(c)) != 0; }))
              want.push_back(id);
          REQUIRE(select(reg, t) == want);
        }
      }
      REQUIRE(reg.size() == model.size());
      REQUIRE(reg.consistent());
    }
    for (auto& [id, m] : model) {
      auto info = reg.info(*reg.find(id));
      CHECK(info.user == m.user);
      CHECK(std::set<std::string>(info.pools.begin(), info.pools.end()) == m.pools);
      CHECK(std::set<std::string>(info.channels.begin(), info.channels.end()) == m.channels);
    }
  }
}

TEST_CASE("registry: idle clients, a write counting as made at the previous tick") {
  using namespace std::chrono_literals;
  Registry reg;
  auto& quiet = reg.add(1, Sink{}, names(""), t0);
  auto& busy = reg.add(2, Sink{}, names(""), t0 + 5s);
  std::vector<Registry::Client*> out;
  reg.select_idle(t0 + 9s, t0, 10s, out);
  CHECK(out.empty());
  reg.select_idle(t0 + 10s, t0 + 9s, 10s, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0] == &quiet);
  CHECK(quiet.last_activity == t0 + 10s);
  busy.written = true;  // written somewhere after the tick at 10 s
  reg.select_idle(t0 + 16s, t0 + 10s, 10s, out);
  CHECK(out.empty());  // busy counts as active at 10 s
  CHECK_FALSE(busy.written);
  reg.select_idle(t0 + 20s, t0 + 16s, 10s, out);
  REQUIRE(out.size() == 2);
}
