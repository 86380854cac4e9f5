// The Boost.Beast side of the demo: listener, HTTP sessions, event streams.
#pragma once

#include "app.hpp"

namespace demo {

/// Listens on `app.options().host:port` with `threads` io_context threads until SIGINT or
/// SIGTERM. Prints "ssepp-demo listening on http://HOST:PORT/" as its first line of standard
/// output once the socket is bound (port 0 picks a free one). Returns the process exit status.
int serve(App& app);

}  // namespace demo
