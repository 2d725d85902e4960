// The socketpair a tunnel (TLS, WebSocket) feeds a session through: one end typed as a TCP socket for the
// session and the relay, which know no other kind, the other a local socket for the tunnel.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "net/asio.hpp"

namespace pgmux::net {

// Opens the pair into two unopened sockets; on failure `ec` says why and neither is left open.
template <class TunnelEnd>
void open_socket_pair(Socket& session_end, TunnelEnd& tunnel_end, error_code& ec) {
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
    ec = error_code(errno, boost::system::system_category());
    return;
  }
  session_end.assign(tcp::v4(), ends[0], ec);
  if (ec) {
    ::close(ends[0]);
    ::close(ends[1]);
    return;
  }
  tunnel_end.assign(asio::local::stream_protocol(), ends[1], ec);
  if (ec) {
    ::close(ends[1]);
    error_code ignored;
    session_end.close(ignored);
  }
}

}  // namespace pgmux::net
