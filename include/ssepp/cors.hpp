// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// CORS for cross-origin EventSource and fetch: which origins may read a stream, with or without
// credentials, and the answer to a preflight. No HTTP stack inside: headers are returned as a
// short list of string views the host's stack copies into its response.
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/http.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

SSEPP_BEGIN_NAMESPACE

/// Who may open a stream or call an API from another origin (cross-origin EventSource and
/// fetch). Origins are compared exactly, as browsers send them: "https://app.example.com:8443".
struct CorsOptions {
  /// Allowed origins. "*" allows any origin, but only without credentials: a `*` answer never
  /// carries `Access-Control-Allow-Credentials`, and a browser refuses `*` with credentials.
  /// The opaque origin "null" (sandboxed frames, file://) never matches a listed entry.
  std::vector<std::string> origins;
  /// Allow cookies and HTTP authentication (`new EventSource(url, {withCredentials: true})`,
  /// `fetch(..., {credentials: "include"})`) for listed origins only.
  bool credentials = false;
  /// Methods a preflight allows.
  std::string methods = "GET, POST, OPTIONS";
  /// Request headers a preflight allows (Last-Event-ID for EventSource reconnection).
  std::string headers = "Last-Event-ID, Cache-Control, Content-Type, Authorization";
  /// How long a browser may cache a preflight answer.
  std::chrono::seconds max_age{600};
};

/// A CORS policy built once and asked per request. The returned headers are views into the
/// request's `origin` and into this object: keep both alive until the headers are copied.
class Cors {
 public:
  explicit Cors(CorsOptions opts = {})
      : opts_(std::move(opts)), max_age_(std::to_string(opts_.max_age.count())) {
    for (const auto& o : opts_.origins) {
      if (o == "*") any_ = true;
    }
  }

  /// Whether `origin` is listed exactly (and may be answered with credentials).
  bool listed(std::string_view origin) const noexcept {
    if (origin.empty() || origin == "null") return false;
    for (const auto& o : opts_.origins)
      if (o != "*" && o == origin) return true;
    return false;
  }

  /// Whether a request from `origin` may read the response.
  bool allowed(std::string_view origin) const noexcept {
    return listed(origin) || (any_ && !origin.empty());
  }

  /// Headers for the response to a request carrying `Origin: origin` (empty when the request has
  /// no Origin header): `Access-Control-Allow-Origin` echoing a listed origin (with
  /// `Access-Control-Allow-Credentials: true` when credentials are on) or `*` for the rest when
  /// "*" is listed, and `Vary: Origin` whenever the answer depends on the origin. Nothing else
  /// for an origin that is not allowed: the browser then hides the response from the page.
  HeaderFields headers(std::string_view origin) const noexcept {
    HeaderFields h;
    if (origin.empty()) return h;
    bool varies = has_listed();
    if (listed(origin)) {
      h.push_back({"Access-Control-Allow-Origin", origin});
      if (opts_.credentials) h.push_back({"Access-Control-Allow-Credentials", "true"});
    } else if (any_) {
      h.push_back({"Access-Control-Allow-Origin", "*"});
    }
    if (varies) h.push_back({"Vary", "Origin"});
    return h;
  }

  /// Headers for the answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`):
  /// `headers(origin)` plus the allowed methods, request headers and max age when `origin` is
  /// allowed. Answer the preflight with 204 either way.
  HeaderFields preflight_headers(std::string_view origin) const noexcept {
    HeaderFields h = headers(origin);
    if (!allowed(origin)) return h;
    h.push_back({"Access-Control-Allow-Methods", opts_.methods});
    h.push_back({"Access-Control-Allow-Headers", opts_.headers});
    h.push_back({"Access-Control-Max-Age", max_age_});
    return h;
  }

  const CorsOptions& options() const noexcept { return opts_; }

 private:
  bool has_listed() const noexcept {
    for (const auto& o : opts_.origins)
      if (o != "*") return true;
    return false;
  }

  CorsOptions opts_;
  std::string max_age_;
  bool any_ = false;
};

SSEPP_END_NAMESPACE
