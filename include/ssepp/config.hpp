// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
#pragma once

/// Library version: major * 10000 + minor * 100 + patch.
#define SSEPP_VERSION_MAJOR 0
#define SSEPP_VERSION_MINOR 1
#define SSEPP_VERSION_PATCH 0
#define SSEPP_VERSION (SSEPP_VERSION_MAJOR * 10000 + SSEPP_VERSION_MINOR * 100 + SSEPP_VERSION_PATCH)

// Everything lives in a versioned inline namespace (spelled `ssepp::` by users) so two copies of
// different versions embedded in one program do not link into each other silently.
#define SSEPP_ABI_NAMESPACE v0
#define SSEPP_BEGIN_NAMESPACE \
  namespace ssepp {           \
  inline namespace SSEPP_ABI_NAMESPACE {
#define SSEPP_END_NAMESPACE \
  }                         \
  }

// Exceptions are used only for programmer errors (e.g. encode() of an invalid event): such a call
// throws ssepp::Error and has a `try_` twin (try_encode, Frame::try_from_event, ...) returning
// ssepp::Result<T> instead, the convention of every fallible call (see result.hpp). With
// -fno-exceptions a would-be throw aborts with the message.
#if defined(__cpp_exceptions) || defined(__EXCEPTIONS) || defined(_CPPUNWIND)
#  define SSEPP_HAS_EXCEPTIONS 1
#else
#  define SSEPP_HAS_EXCEPTIONS 0
#endif

// Under C++20 the requirements on template parameters are real concepts.
#if defined(__cpp_concepts) && __cpp_concepts >= 201907L
#  define SSEPP_HAS_CONCEPTS 1
#else
#  define SSEPP_HAS_CONCEPTS 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define SSEPP_LIKELY(x) __builtin_expect(!!(x), 1)
#  define SSEPP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#  define SSEPP_LIKELY(x) (x)
#  define SSEPP_UNLIKELY(x) (x)
#endif
