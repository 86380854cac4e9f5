// The broadcaster's registry on its own: random adds, removes, joins, leaves and selections
// against a plain model. After every step the registry's cross-links must hold and every
// selection must be exactly the model's.
#include <ssepp/detail/broadcaster_registry.hpp>

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "check.hpp"

namespace {

struct Sink {};
using Registry = ssepp::detail::Registry<Sink>;
using ssepp::ClientId;
using ssepp::Target;

const char* const users[] = {"", "ann", "bob"};
const char* const groups[] = {"t1", "user:bob", "ann", "bob", "user:ann"};  // pools and channels

struct Model {
  std::string user;
  std::set<std::string> pools, channels;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider in(bytes, size);
  Registry reg;
  std::map<ClientId, Model> model;
  ClientId next = 1;
  std::vector<Registry::Client*> out;
  while (in.remaining_bytes() > 0) {
    switch (in.ConsumeIntegralInRange(0, 5)) {
      case 0: {  // add
        Model m;
        m.user = in.PickValueInArray(users);
        Registry::Names names;
        names.user = m.user;
        for (const char* g : groups)
          if (in.ConsumeBool()) {
            m.pools.insert(g);
            names.pools.emplace_back(g);
          }
        for (const char* g : groups)
          if (in.ConsumeBool()) {
            m.channels.insert(g);
            names.channels.emplace_back(g);
          }
        reg.add(next, Sink{}, std::move(names), Registry::Clock::time_point{});
        model[next++] = std::move(m);
        break;
      }
      case 1: {  // remove one
        if (model.empty()) break;
        auto it = std::next(model.begin(),
                            static_cast<long>(in.ConsumeIntegralInRange<std::size_t>(0, model.size() - 1)));
        Registry::Client* c = reg.find(it->first);
        CHECK(c != nullptr);
        Registry::Node node = reg.remove(*c);
        CHECK(node.key() == it->first && node.mapped().removed);
        model.erase(it);
        break;
      }
      case 2: {  // remove everyone (rarely)
        if (in.ConsumeIntegralInRange(0, 15) != 0) break;
        CHECK(reg.remove_all().size() == model.size());
        model.clear();
        break;
      }
      case 3: {  // join or leave
        if (model.empty()) break;
        auto it = std::next(model.begin(),
                            static_cast<long>(in.ConsumeIntegralInRange<std::size_t>(0, model.size() - 1)));
        std::string ch = in.PickValueInArray(groups);
        Registry::Client& c = *reg.find(it->first);
        if (in.ConsumeBool()) CHECK(reg.join(c, ch) == it->second.channels.insert(ch).second);
        else CHECK(reg.leave(c, ch) == (it->second.channels.erase(ch) == 1));
        break;
      }
      default: {  // select
        Target t;
        if (in.ConsumeIntegralInRange(0, 9) == 0) t = Target::all();
        for (int parts = in.ConsumeIntegralInRange(0, 3); parts > 0; --parts) {
          switch (in.ConsumeIntegralInRange(0, 3)) {
            case 0: t |= Target::user(in.PickValueInArray(users)); break;
            case 1: t |= Target::pool(in.PickValueInArray(groups)); break;
            case 2: t |= Target::channel(in.PickValueInArray(groups)); break;
            default: t |= Target::client(in.ConsumeIntegralInRange<ClientId>(0, next)); break;
          }
        }
        const bool unknown = reg.select(t, out);
        std::vector<ClientId> got;
        for (auto* c : out) got.push_back(c->id);
        std::sort(got.begin(), got.end());
        CHECK(std::adjacent_find(got.begin(), got.end()) == got.end());  // each once
        std::vector<ClientId> want;
        for (auto& [id, entry] : model)
          if (const Model& m = entry; t.matches(
                  id, m.user, [&](std::string_view p) { return m.pools.count(std::string(p)) != 0; },
                  [&](std::string_view c) { return m.channels.count(std::string(c)) != 0; }))
            want.push_back(id);
        CHECK(got == want);
        const bool single_client = t.is_direct() && t.selectors().size() == 1;
        CHECK(unknown == (single_client && model.count(t.selectors()[0].client) == 0));
        break;
      }
    }
    CHECK(reg.size() == model.size());
    CHECK(reg.consistent());
  }
  for (auto& [id, m] : model) {
    auto info = reg.info(*reg.find(id));
    CHECK(info.user == m.user);
    CHECK(std::set<std::string>(info.pools.begin(), info.pools.end()) == m.pools);
    CHECK(std::set<std::string>(info.channels.begin(), info.channels.end()) == m.channels);
  }
  return 0;
}
