// TLS driven with OpenSSL on a TCP socket, and a tunnel handing its plaintext to a socketpair.
#pragma once

#include <string>

#include "net/asio.hpp"
#include "net/tls_context.hpp"

namespace pgmux::net {

// Runs the TLS handshake of `ssl` (accept or connect side, as set on it) over `tcp`, which it attaches to
// `ssl`. Empty on success, else why it failed (for the log and, on the server side, the client's error).
asio::awaitable<std::string> tls_handshake(Socket& tcp, SSL* ssl);

// After a handshake: a tunnel coroutine on tcp's executor takes the TCP socket and `ssl`, and the returned
// socket (one end of a socketpair, typed as a TCP socket like a WebSocket client's) carries the plaintext.
// The session and the relay use it as they would the TCP socket, and know nothing of TLS. Closing it sends
// close_notify and closes the TCP connection; the peer closing makes it read end-of-file.
Socket start_tls_tunnel(Socket tcp, SslPtr ssl, error_code& ec);

}  // namespace pgmux::net
