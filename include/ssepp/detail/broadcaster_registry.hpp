// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// The broadcaster's registry: clients, users, pools, channels and who is in what. Single-threaded
// (the broadcaster guards it with its registry lock); no sink is ever called from here.
#pragma once

#include <ssepp/broadcaster_options.hpp>
#include <ssepp/config.hpp>
#include <ssepp/target.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE
namespace detail {

/// A vector of trivially copyable values in 16 bytes (pointer + 32-bit size and capacity) that
/// keeps ONE value inline: a group with a single member (a user with one tab) needs no heap
/// block. Used for group member lists, where memory per idle client matters.
template <class T>
class InlineOneVector {
  // NOLINTNEXTLINE(bugprone-sizeof-expression): T is a pointer type here, by design
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= sizeof(void*),
                "InlineOneVector holds small trivially copyable values");

 public:
  InlineOneVector() noexcept = default;
  InlineOneVector(const InlineOneVector&) = delete;
  InlineOneVector& operator=(const InlineOneVector&) = delete;
  ~InlineOneVector() {
    if (cap_ > 1) delete[] heap_;
  }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::size_t capacity() const noexcept { return cap_ == 0 ? 1 : cap_; }
  T* begin() noexcept { return cap_ > 1 ? heap_ : &one_; }
  T* end() noexcept { return begin() + size_; }
  const T* begin() const noexcept { return cap_ > 1 ? heap_ : &one_; }
  const T* end() const noexcept { return begin() + size_; }
  T& operator[](std::size_t i) noexcept { return begin()[i]; }
  T& back() noexcept { return begin()[size_ - 1]; }

  void push_back(T v) {
    if (size_ == capacity()) regrow(capacity() * 2);
    begin()[size_++] = v;
  }
  void pop_back() noexcept { --size_; }

  /// Gives memory back when at most a quarter is used (and the block is not tiny).
  void shrink() {
    if (cap_ > 64 && size_ < cap_ / 4) regrow(size_ <= 1 ? 1 : std::size_t(size_) * 2);
  }

 private:
  void regrow(std::size_t cap) {
    T* old = cap_ > 1 ? heap_ : nullptr;
    T* from = begin();
    if (cap <= 1) {
      T v = size_ ? from[0] : T{};
      one_ = v;
      cap_ = 1;
    } else {
      T* block = new T[cap];
      if (size_) std::memcpy(block, from, size_ * sizeof(T));  // NOLINT(bugprone-sizeof-expression)
      heap_ = block;
      cap_ = static_cast<std::uint32_t>(cap);
    }
    delete[] old;
  }

  union {
    T one_;
    T* heap_;
  };
  std::uint32_t size_ = 0;
  std::uint32_t cap_ = 0;  // 0 or 1: the inline slot; more: heap_
};

/// Who is connected and in which groups, for `Broadcaster<S>`. Groups are users, pools and
/// channels, three separate namespaces. Every operation is a few hash lookups and pointer moves;
/// `select` allocates nothing once `out` has grown.
///
/// Memory per client: one record (48 bytes plus the sink) and one 12-byte `Membership` per
/// group it is in, in one exact-size array (user first, then pools, then channels); per group, a
/// map node and a member list that keeps one member inline.
template <class S>
class Registry {
 public:
  using Clock = std::chrono::steady_clock;
  struct Client;

  /// A user, pool or channel: its members, and its name (the key of its map node). 24 bytes.
  struct Group {
    InlineOneVector<Client*> members;
    const std::string* name = nullptr;
  };

  /// A client's place in a group: `group()->members[index] == client`. 12 bytes (the pointer
  /// kept as two 32-bit halves); the group's kind follows from the position in the client's array.
  struct Membership {
    Membership() = default;
    Membership(Group* g, std::uint32_t i) noexcept : index(i) { set_group(g); }
    Group* group() const noexcept {
      auto v = static_cast<std::uintptr_t>(lo);
      if constexpr (sizeof(std::uintptr_t) > 4) v |= static_cast<std::uintptr_t>(hi) << 16 << 16;
      return reinterpret_cast<Group*>(v);  // NOLINT(performance-no-int-to-ptr): packed pointer
    }
    void set_group(Group* g) noexcept {
      auto v = reinterpret_cast<std::uintptr_t>(g);
      lo = static_cast<std::uint32_t>(v);
      hi = sizeof(std::uintptr_t) > 4 ? static_cast<std::uint32_t>(v >> 16 >> 16) : 0;
    }
    std::uint32_t lo = 0;
    std::uint32_t hi = 0;
    std::uint32_t index = 0;
  };

  /// One connection: 48 bytes plus the sink. `sink`, `written` and `last_activity` belong to the
  /// broadcaster's delivery side; the rest to the registry.
  struct Client {
    Client(S&& s, ClientId i) : sink(std::move(s)), id(i) {}
    ~Client() { delete[] groups; }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    S sink;                // first, with `written`: what a delivery touches
    bool written = false;  // written since the last tick
    bool has_user = false;
    bool removed = false;     // taken out of the registry (the record lives on until freed)
    std::uint32_t epoch = 0;  // dedupe stamp of the last multi-part selection
    ClientId id;
    Clock::time_point last_activity{};  // last write as of the previous tick
    Membership* groups = nullptr;       // user, pools, channels
    std::uint32_t group_count = 0;
    std::uint32_t group_cap = 0;
    std::uint32_t pool_count = 0;  // memberships before the channels (user included)
    std::uint32_t all_index = 0;   // position in the list of every client

    Membership* begin() noexcept { return groups; }
    Membership* end() noexcept { return groups + group_count; }
    const Membership* begin() const noexcept { return groups; }
    const Membership* end() const noexcept { return groups + group_count; }

    void reserve_groups(std::size_t n) {
      if (n <= group_cap) return;
      auto* block = new Membership[n];
      for (std::uint32_t k = 0; k < group_count; ++k) block[k] = groups[k];
      delete[] groups;
      groups = block;
      group_cap = static_cast<std::uint32_t>(n);
    }
    void add_group(const Membership& m) {
      if (group_count == group_cap) reserve_groups(group_cap + (group_cap < 4 ? 2 : group_cap / 2));
      groups[group_count++] = m;
    }
    void remove_group(std::size_t k) noexcept { groups[k] = groups[--group_count]; }
  };

  using ClientMap = std::unordered_map<ClientId, Client>;
  /// A client taken out of the registry: its record (and sink) stay alive as long as the node.
  using Node = typename ClientMap::node_type;

  /// What a new client is in. Names must be valid (`valid_group_name`) and distinct per kind;
  /// the caller checks (the registry trusts them).
  struct Names {
    std::string user;  ///< empty: anonymous
    std::vector<std::string> pools;
    std::vector<std::string> channels;
  };

  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  /// Clients registered.
  std::size_t size() const noexcept { return clients_.size(); }
  /// Users and pools with members (users count as pools in the statistics).
  std::size_t pool_count() const noexcept { return pools_.size() + users_.size(); }
  /// Channels with members.
  std::size_t channel_count() const noexcept { return channels_.size(); }
  /// Every registered client, in no particular order.
  const std::vector<Client*>& all() const noexcept { return all_; }

  Client* find(ClientId id) noexcept {
    auto it = clients_.find(id);
    return it == clients_.end() ? nullptr : &it->second;
  }
  const Client* find(ClientId id) const noexcept {
    auto it = clients_.find(id);
    return it == clients_.end() ? nullptr : &it->second;
  }

  /// Registers a client under a new id, in its user, pools and channels.
  Client& add(ClientId id, S&& sink, Names&& names, Clock::time_point now) {
    Client& c = clients_.try_emplace(id, std::move(sink), id).first->second;
    c.last_activity = now;
    c.reserve_groups((names.user.empty() ? 0 : 1) + names.pools.size() + names.channels.size());
    if (!names.user.empty()) {
      add_member(c, users_, std::move(names.user));
      c.has_user = true;
    }
    for (std::string& p : names.pools) add_member(c, pools_, std::move(p));
    c.pool_count = c.group_count;
    for (std::string& ch : names.channels) add_member(c, channels_, std::move(ch));
    c.all_index = static_cast<std::uint32_t>(all_.size());
    all_.push_back(&c);
    return c;
  }

  /// Takes a client out of every group and out of the registry. Its record stays valid (pointers
  /// to it too) until the returned node is destroyed.
  Node remove(Client& c) {
    unlink(c);
    return clients_.extract(c.id);
  }

  /// Takes every client out at once.
  std::vector<Node> remove_all() {
    std::vector<Node> nodes;
    nodes.reserve(clients_.size());
    for (Client* c : all_) {
      c->group_count = 0;
      c->removed = true;
    }
    all_.clear();
    shrink(all_);
    users_.clear();
    pools_.clear();
    channels_.clear();
    while (!clients_.empty()) nodes.push_back(clients_.extract(clients_.begin()));
    return nodes;
  }

  /// Adds `c` to a channel (a valid name). False when it was already in it.
  bool join(Client& c, std::string_view channel) {
    if (channel_index(c, channel) != npos) return false;
    add_member(c, channels_, std::string(channel));
    return true;
  }

  /// Takes `c` out of a channel. False when it was not in it.
  bool leave(Client& c, std::string_view channel) {
    std::size_t k = channel_index(c, channel);
    if (k == npos) return false;
    remove_member(c, k);
    c.remove_group(k);
    return true;
  }

  bool in_channel(const Client& c, std::string_view channel) const noexcept {
    return channel_index(c, channel) != npos;
  }

  /// `c`'s user, pools and channels.
  ClientInfo info(const Client& c) const {
    ClientInfo info;
    info.id = c.id;
    for (std::size_t k = 0; k < c.group_count; ++k) {
      const std::string& name = *c.groups[k].group()->name;
      if (k == 0 && c.has_user) info.user = name;
      else if (k < c.pool_count) info.pools.push_back(name);
      else info.channels.push_back(name);
    }
    return info;
  }

  /// Replaces `out` with the clients `target` matches, each once. Returns true when the target
  /// is one client that is not registered. Cost: one hash lookup per part, one pointer per
  /// recipient; a union of several parts stamps each client to drop duplicates.
  bool select(const Target& target, std::vector<Client*>& out) {
    out.clear();
    if (target.is_all()) {
      out.assign(all_.begin(), all_.end());
      return false;
    }
    const auto& parts = target.selectors();
    if (parts.size() == 1) {  // one part: no duplicates possible
      const Target::Selector& s = parts[0];
      if (s.kind == Target::Kind::client) {
        Client* c = find(s.client);
        if (c == nullptr) return true;
        out.push_back(c);
      } else if (const Group* g = find_group(s)) {
        out.assign(g->members.begin(), g->members.end());
      }
      return false;
    }
    if (++epoch_ == 0) {  // wrapped: forget every old stamp
      for (Client* c : all_) c->epoch = 0;
      epoch_ = 1;
    }
    const std::uint32_t stamp = epoch_;
    auto add = [&](Client* c) {
      if (c->epoch != stamp) {
        c->epoch = stamp;
        out.push_back(c);
      }
    };
    for (const Target::Selector& s : parts) {
      if (s.kind == Target::Kind::client) {
        if (Client* c = find(s.client)) add(c);
      } else if (const Group* g = find_group(s)) {
        for (Client* c : g->members) add(c);
      }
    }
    return false;
  }

  /// As `select`, leaving out every client `except` matches (each selected client once).
  bool select_except(const Target& target, const Target& except, std::vector<Client*>& out) {
    if (except.empty()) return select(target, out);
    out.clear();
    if (except.is_all()) return false;
    if (++epoch_ == 0) {
      for (Client* c : all_) c->epoch = 0;
      epoch_ = 1;
    }
    const std::uint32_t stamp = epoch_;
    auto each = [&](const Target& t, auto&& f) {
      if (t.is_all()) {
        for (Client* c : all_) f(c);
        return;
      }
      for (const Target::Selector& s : t.selectors()) {
        if (s.kind == Target::Kind::client) {
          if (Client* c = find(s.client)) f(c);
        } else if (const Group* g = find_group(s)) {
          for (Client* c : g->members) f(c);
        }
      }
    };
    each(except, [&](Client* c) { c->epoch = stamp; });
    each(target, [&](Client* c) {
      if (c->epoch != stamp) {
        c->epoch = stamp;
        out.push_back(c);
      }
    });
    return false;
  }

  /// True when a user, pool or channel has members here, or a client is registered.
  bool has(const Target::Selector& s) const {
    if (s.kind == Target::Kind::client) return find(s.client) != nullptr;
    return find_group(s) != nullptr;
  }

  /// Replaces `out` with the clients nothing was written to for `interval` as of `now`, and
  /// marks them written now (for a heartbeat). A write since the previous tick (`written`)
  /// counts as made at that tick, `last_tick`: idleness costs no clock read per delivery.
  template <class Duration>
  void select_idle(Clock::time_point now, Clock::time_point last_tick, Duration interval,
                   std::vector<Client*>& out) {
    out.clear();
    for (Client* c : all_) {
      if (c->written) {
        c->written = false;
        if (c->last_activity < last_tick) c->last_activity = last_tick;
      }
      if (now - c->last_activity >= interval) {
        c->last_activity = now;
        out.push_back(c);
      }
    }
  }

  /// Whether every cross-link holds (each membership points at its place in its group and back,
  /// the list of every client matches the map, no empty group is kept). For tests: O(size).
  bool consistent() const {
    if (all_.size() != clients_.size()) return false;
    std::size_t links = 0;
    for (const auto& kv : clients_) {
      const Client& c = kv.second;
      if (c.removed || c.id != kv.first) return false;
      if (c.all_index >= all_.size() || all_[c.all_index] != &c) return false;
      if (c.pool_count > c.group_count || (c.has_user && c.pool_count == 0)) return false;
      for (std::size_t k = 0; k < c.group_count; ++k) {
        const Membership& m = c.groups[k];
        const Group* g = m.group();
        if (g == nullptr || m.index >= g->members.size()) return false;
        if (g->members.begin()[m.index] != &c) return false;
        const GroupMap& map = map_of(c, k);
        auto it = map.find(*g->name);
        if (it == map.end() || &it->second != g) return false;
      }
      links += c.group_count;
    }
    std::size_t members = 0;
    for (const GroupMap* map : {&users_, &pools_, &channels_})
      for (const auto& kv : *map) {
        if (kv.second.members.empty() || kv.second.name != &kv.first) return false;
        members += kv.second.members.size();
      }
    return members == links;
  }

 private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  using GroupMap = std::unordered_map<std::string, Group>;

  const Group* find_group(const Target::Selector& s) const {
    const GroupMap& map = s.kind == Target::Kind::channel ? channels_
                          : s.kind == Target::Kind::user  ? users_
                                                          : pools_;
    auto it = map.find(s.name);
    return it == map.end() ? nullptr : &it->second;
  }

  /// The map of `c`'s k-th membership: its user first, then pools, then channels.
  GroupMap& map_of(const Client& c, std::size_t k) noexcept {
    return k == 0 && c.has_user ? users_ : k < c.pool_count ? pools_ : channels_;
  }
  const GroupMap& map_of(const Client& c, std::size_t k) const noexcept {
    return k == 0 && c.has_user ? users_ : k < c.pool_count ? pools_ : channels_;
  }

  void add_member(Client& c, GroupMap& map, std::string name) {
    auto [it, fresh] = map.try_emplace(std::move(name));
    Group& g = it->second;
    if (fresh) g.name = &it->first;
    c.add_group(Membership(&g, static_cast<std::uint32_t>(g.members.size())));
    g.members.push_back(&c);
  }

  /// Takes `c` out of the group of its k-th membership; erases the group when it empties.
  void remove_member(const Client& c, std::size_t k) {
    const Membership& m = c.groups[k];
    Group& g = *m.group();
    Client* last = g.members.back();
    if (m.index + 1 != g.members.size()) {
      g.members[m.index] = last;
      for (Membership& lm : *last)
        if (lm.group() == &g) {
          lm.index = m.index;
          break;
        }
    }
    g.members.pop_back();
    if (g.members.empty()) {
      GroupMap& map = map_of(c, k);
      // cppcheck-suppress mismatchingContainerIterator ; `map` is one of the three, by reference
      map.erase(map.find(*g.name));
    } else {
      g.members.shrink();
    }
  }

  /// Takes a client out of every group and the list of every client.
  void unlink(Client& c) {
    for (std::uint32_t k = 0; k < c.group_count; ++k) remove_member(c, k);
    c.group_count = 0;
    Client* last = all_.back();
    all_[c.all_index] = last;
    last->all_index = c.all_index;
    all_.pop_back();
    shrink(all_);
    c.removed = true;
  }

  /// Gives memory back after a crowd left (a vector at a quarter of its capacity).
  static void shrink(std::vector<Client*>& v) {
    if (v.capacity() > 64 && v.size() < v.capacity() / 4) v.shrink_to_fit();
  }

  std::size_t channel_index(const Client& c, std::string_view channel) const noexcept {
    for (std::size_t k = c.pool_count; k < c.group_count; ++k)
      if (*c.groups[k].group()->name == channel) return k;
    return npos;
  }

  ClientMap clients_;
  GroupMap users_;
  GroupMap pools_;
  GroupMap channels_;
  std::vector<Client*> all_;
  std::uint32_t epoch_ = 0;
};

}  // namespace detail
SSEPP_END_NAMESPACE
