// Specifies the TLS contexts built from the config: a file that does not load is refused by key name.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

#include "net/tls_context.hpp"

TEST_CASE("a certificate file that is not PEM is refused with its key's name", "[tls][config]") {
  char name[] = "/tmp/pgmux-tls-test-XXXXXX";
  int fd = mkstemp(name);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(name) << "not a certificate\n";
  pgmux::config::TlsConfig tls;
  tls.cert_file = tls.key_file = name;
  tls.mode = pgmux::config::TlsMode::allow;
  CHECK_THROWS_WITH(pgmux::net::make_server_tls(tls),
                    Catch::Matchers::StartsWith("tls.cert_file: cannot load"));
  std::remove(name);
}
