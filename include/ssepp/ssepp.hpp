// ssepp — Server-Sent Events for C++. MIT licence, see LICENSE.
//
// Umbrella header: every part except the optional Redis bus (<ssepp/redis.hpp>).
#pragma once

#include <ssepp/config.hpp>
#include <ssepp/error.hpp>
#include <ssepp/result.hpp>
#include <ssepp/event.hpp>
#include <ssepp/encoder.hpp>
#include <ssepp/parser.hpp>
#include <ssepp/sink.hpp>
#include <ssepp/mailbox.hpp>
#include <ssepp/target.hpp>
#include <ssepp/history.hpp>
#include <ssepp/broadcaster_options.hpp>
#include <ssepp/broadcaster.hpp>
#include <ssepp/http.hpp>
#include <ssepp/cors.hpp>
#include <ssepp/client.hpp>
#include <ssepp/testing.hpp>
#include <ssepp/format.hpp>
