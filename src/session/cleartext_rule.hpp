// The one rule for passwords in clear text: over TLS, from loopback, or where the config allows it.
#pragma once

#include "net/asio.hpp"

namespace pgmux::session {

// A password in clear text (auth_type plain, or sent before it was asked for) may cross a connection that
// TLS encrypts (wss:// included), or that never leaves the machine; anywhere else only with
// allow_plaintext_password: true (or its deprecated alias http.allow_cleartext_password).
inline bool cleartext_password_allowed(bool tls, bool loopback, bool allow_plaintext_password) {
  return tls || loopback || allow_plaintext_password;
}

// 127.0.0.0/8, ::1, and ::ffff:127.0.0.0/104 (an IPv4 client of a dual-stack listener).
inline bool is_loopback(const asio::ip::address& address) {
  if (address.is_loopback()) return true;
  return address.is_v6() && address.to_v6().is_v4_mapped() &&
         asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).is_loopback();
}

}  // namespace pgmux::session
