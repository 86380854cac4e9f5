// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
// ssepp::asio (CMake target ssepp::asio): serve event streams from a Boost.Asio / Boost.Beast
// server, over TCP or TLS. Not part of ssepp.hpp: the core includes no HTTP stack.
#pragma once

#include <ssepp/asio/serve.hpp>   // EventStreams: answer a Beast request with a stream; shutdown
#include <ssepp/asio/stream.hpp>  // EventStream<NextLayer>: one stream over a socket or TLS
