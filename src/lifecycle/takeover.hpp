// Zero-downtime restart: a new pgmux receives the running one's listening sockets, then the old one drains.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "lifecycle/listeners.hpp"
#include "net/asio.hpp"
#include "pgmux/config/config.hpp"

namespace pgmux::lifecycle {

// The abstract Unix socket (per network namespace, no file to clean up) on which the pgmux serving
// `postgres` offers its listeners.
std::string takeover_address(const config::Endpoint& postgres);

// The new process's side, before its workers run: asks the pgmux already serving these addresses for its
// listening sockets. nullopt when none answers and the Postgres port is free (start as usual). While the port
// is held but nobody offers sockets yet (a pgmux just started, or one that took over and waits for the name),
// asks again for up to 10 s. Throws std::runtime_error if one answered but the handover failed, or nobody
// offered sockets within that time.
struct Handover {
  InheritedSockets sockets;
  int connection = -1;  // kept open until confirm(): the old process serves on until then
  int old_pid = 0;
};
std::optional<Handover> request_takeover(const config::Config& config);
// Tells the old process that this one accepts on its sockets now, so it may stop and drain.
void confirm_takeover(Handover& handover);

// The running process's side: answers takeover requests from processes of the same user. `sockets` lists
// this process's listening sockets; `handed_over` runs (on the executor's thread) once the new process has
// confirmed. Retries binding while an older process still holds the address.
asio::awaitable<void> offer_takeover(std::string address, std::function<InheritedSockets()> sockets,
                                     std::function<void(int new_pid)> handed_over);

}  // namespace pgmux::lifecycle
