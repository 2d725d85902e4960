// Specifies the one rule for passwords in clear text: over TLS, from loopback, or allowed by the config.
#include <catch2/catch.hpp>

#include "session/cleartext_rule.hpp"

using pgmux::session::cleartext_password_allowed;
using pgmux::session::is_loopback;
namespace ip = boost::asio::ip;

TEST_CASE("a cleartext password is accepted over TLS, from loopback, or with allow_plaintext_password",
          "[tls][login]") {
  for (bool tls : {false, true})
    for (bool loopback : {false, true})
      for (bool allowed : {false, true})
        CHECK(cleartext_password_allowed(tls, loopback, allowed) == (tls || loopback || allowed));
  // The case that matters: a remote client without TLS and no opt-in.
  CHECK_FALSE(cleartext_password_allowed(false, false, false));
}

TEST_CASE("loopback means 127/8, ::1 and IPv4 loopback mapped into IPv6", "[tls][login]") {
  CHECK(is_loopback(ip::make_address("127.0.0.1")));
  CHECK(is_loopback(ip::make_address("127.4.5.6")));
  CHECK(is_loopback(ip::make_address("::1")));
  CHECK(is_loopback(ip::make_address("::ffff:127.0.0.1")));
  CHECK_FALSE(is_loopback(ip::make_address("10.0.0.1")));
  CHECK_FALSE(is_loopback(ip::make_address("::ffff:10.0.0.1")));
  CHECK_FALSE(is_loopback(ip::make_address("2001:db8::1")));
}
