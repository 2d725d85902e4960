// What the kernel says about the TCP listeners on a port: how many there are and what waits in their queues.
#pragma once

#include <vector>

namespace pgmux::test {

// The accept queue length (connections handshaken and not yet accepted) of every IPv4 socket listening on
// 127.0.0.1:`port`, from /proc/net/tcp: one entry per listener, in no particular order.
std::vector<int> accept_queues(int port);

}  // namespace pgmux::test
