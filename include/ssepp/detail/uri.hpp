// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// RFC 3986 URI references: split into components (appendix B), resolve a reference against a
// base (section 5.2, strict), recompose (section 5.3). Generic: any scheme, no validation beyond
// the split — the client's `Url` checks what an http(s) request needs. Internal to the client.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/detail/ascii.hpp>

#include <cstddef>
#include <string>
#include <string_view>

SSEPP_BEGIN_NAMESPACE
namespace detail {

/// The five components of a URI reference; an absent component differs from an empty one.
struct UriRef {
  std::string scheme;
  std::string authority;
  std::string path;
  std::string query;
  std::string fragment;
  bool has_scheme = false;
  bool has_authority = false;
  bool has_query = false;
  bool has_fragment = false;
};

/// Splits a URI reference as RFC 3986 appendix B's regular expression does. Never fails: every
/// string is some reference (validation is the caller's).
inline UriRef parse_uri_reference(std::string_view s) {
  UriRef r;
  // scheme: ^([^:/?#]+):  — the first ':' before any '/', '?' or '#', after at least one char.
  std::size_t colon = s.find_first_of(":/?#");
  if (colon != std::string_view::npos && colon > 0 && s[colon] == ':') {
    r.has_scheme = true;
    r.scheme = std::string(s.substr(0, colon));
    s.remove_prefix(colon + 1);
  }
  if (s.size() >= 2 && s[0] == '/' && s[1] == '/') {
    s.remove_prefix(2);
    std::size_t end = s.find_first_of("/?#");
    r.has_authority = true;
    r.authority = std::string(s.substr(0, end));
    s.remove_prefix(end == std::string_view::npos ? s.size() : end);
  }
  std::size_t end = s.find_first_of("?#");
  r.path = std::string(s.substr(0, end));
  s.remove_prefix(end == std::string_view::npos ? s.size() : end);
  if (!s.empty() && s[0] == '?') {
    end = s.find('#');
    r.has_query = true;
    r.query = std::string(s.substr(1, end == std::string_view::npos ? end : end - 1));
    s.remove_prefix(end == std::string_view::npos ? s.size() : end);
  }
  if (!s.empty() && s[0] == '#') {
    r.has_fragment = true;
    r.fragment = std::string(s.substr(1));
  }
  return r;
}

/// RFC 3986 section 5.2.4: removes "." and ".." segments.
inline std::string remove_dot_segments(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  auto starts = [&](std::string_view p) { return in.substr(0, p.size()) == p; };
  auto pop_last = [&] {
    std::size_t slash = out.rfind('/');
    out.erase(slash == std::string::npos ? 0 : slash);
  };
  while (!in.empty()) {
    if (starts("../")) {
      in.remove_prefix(3);
    } else if (starts("./") || starts("/./")) {
      in.remove_prefix(2);  // "./x" -> "x", "/./x" -> "/x"
    } else if (in == "/.") {
      in = "/";
    } else if (starts("/../")) {
      in.remove_prefix(3);  // "/../x" -> "/x"
      pop_last();
    } else if (in == "/..") {
      in = "/";
      pop_last();
    } else if (in == "." || in == "..") {
      in = {};
    } else {
      // Move the first segment (with its leading '/', up to the next '/') to the output.
      std::size_t next = in.find('/', 1);
      if (next == std::string_view::npos) next = in.size();
      out.append(in.substr(0, next));
      in.remove_prefix(next);
    }
  }
  return out;
}

/// RFC 3986 section 5.2.3: merges a relative-path reference with the base path.
inline std::string merge_paths(const UriRef& base, std::string_view ref_path) {
  if (base.has_authority && base.path.empty()) return "/" + std::string(ref_path);
  std::size_t slash = base.path.rfind('/');
  if (slash == std::string::npos) return std::string(ref_path);
  return base.path.substr(0, slash + 1) + std::string(ref_path);
}

/// RFC 3986 section 5.2.2 (strict): the target of `ref` against `base` (which should have a
/// scheme; its fragment is ignored).
inline UriRef resolve(const UriRef& base, const UriRef& ref) {
  UriRef t;
  if (ref.has_scheme) {
    t = ref;
    t.path = remove_dot_segments(ref.path);
  } else {
    if (ref.has_authority) {
      t.has_authority = true;
      t.authority = ref.authority;
      t.path = remove_dot_segments(ref.path);
      t.has_query = ref.has_query;
      t.query = ref.query;
    } else {
      if (ref.path.empty()) {
        t.path = base.path;
        t.has_query = ref.has_query || base.has_query;
        t.query = ref.has_query ? ref.query : base.query;
      } else {
        t.path = ref.path[0] == '/' ? remove_dot_segments(ref.path)
                                    : remove_dot_segments(merge_paths(base, ref.path));
        t.has_query = ref.has_query;
        t.query = ref.query;
      }
      t.has_authority = base.has_authority;
      t.authority = base.authority;
    }
    t.has_scheme = base.has_scheme;
    t.scheme = base.scheme;
  }
  t.has_fragment = ref.has_fragment;
  t.fragment = ref.fragment;
  return t;
}

/// RFC 3986 section 5.3: the reference as a string.
inline std::string recompose(const UriRef& r) {
  std::string out;
  if (r.has_scheme) out.append(r.scheme).push_back(':');
  if (r.has_authority) out.append("//").append(r.authority);
  out.append(r.path);
  if (r.has_query) out.append("?").append(r.query);
  if (r.has_fragment) out.append("#").append(r.fragment);
  return out;
}

/// `ref` resolved against `base`, both as strings.
inline std::string resolve_reference(std::string_view base, std::string_view ref) {
  return recompose(resolve(parse_uri_reference(base), parse_uri_reference(ref)));
}

}  // namespace detail
SSEPP_END_NAMESPACE
