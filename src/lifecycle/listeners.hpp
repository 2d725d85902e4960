// The listening sockets each worker accepts on: opened here, or inherited from an older pgmux.
#pragma once

#include <memory>
#include <vector>

#include "net/asio.hpp"
#include "pgmux/config/config.hpp"

namespace pgmux::lifecycle {

using Contexts = std::vector<std::unique_ptr<asio::io_context>>;

// A worker may accept on more than one socket per address: those a takeover inherited and its own.
struct WorkerListeners {
  std::vector<net::Acceptor> postgres;
  std::vector<net::Acceptor> http;
  std::vector<net::Acceptor> metrics;  // listen.metrics: worker 0 only (one worker is plenty for it)
};

// One SO_REUSEPORT listener per worker for listen.postgres and listen.http, and one on worker 0 for
// listen.metrics. With `inherited` (a takeover), those sockets are spread over the workers first and the
// port is known to be ours; without, the ports must be free.
struct InheritedSockets {
  std::vector<int> postgres, http, metrics;  // listening file descriptors
};
std::vector<WorkerListeners> open_listeners(const config::Config& config, Contexts& contexts,
                                            const InheritedSockets* inherited);

}  // namespace pgmux::lifecycle
