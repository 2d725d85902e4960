// What the kernel says about the TCP listeners on a port: how many there are and what waits in their queues.
#include "tcp_listeners.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace pgmux::test {

std::vector<int> accept_queues(int port) {
  // The kernel prints an address as the hex of its network-order bytes read as a native integer, a port in
  // plain hex; state 0A is LISTEN, whose rx_queue is the accept queue's length.
  char wanted[32];
  std::snprintf(wanted, sizeof wanted, "%08X:%04X", static_cast<unsigned>(htonl(INADDR_LOOPBACK)), port);
  std::vector<int> queues;
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queue;
    if (!(fields >> slot >> local >> remote >> state >> queue)) continue;
    if (state != "0A" || local != wanted) continue;
    // tx_queue:rx_queue, both hex
    queues.push_back(static_cast<int>(std::stoul(queue.substr(queue.find(':') + 1), nullptr, 16)));
  }
  return queues;
}

}  // namespace pgmux::test
