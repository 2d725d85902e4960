// How a client session ends when the client leaves at once: pgmux frees it only after its own handlers are
// done.
#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "libpq.hpp"
#include "pgmux.hpp"
#include "raw_socket.hpp"

using namespace pgmux::test;
using namespace std::chrono_literals;

namespace {

std::string startup_packet(const std::string& user, const std::string& database) {
  const std::string body =
      be32(196608) + "user" + '\0' + user + '\0' + "database" + '\0' + database + '\0' + '\0';
  return be32(static_cast<std::uint32_t>(body.size() + 4)) + body;
}

const std::string kTerminate = std::string("X") + be32(4);

}  // namespace

TEST_CASE("a client that logs in and says Terminate in the same write ends cleanly, and pgmux serves on",
          "[session]") {
  // With trust, the startup packet is the whole login: the Terminate is already waiting when the relay
  // starts, so the session ends inside its first read. (That once freed the session under serve(), which read
  // it afterwards: under tests/sanitize.sh AddressSanitizer stops pgmux there and this test fails.)
  Pgmux mux(TestPostgres::shared(), {.auth_type = "trust"});
  for (int i = 0; i < 20; ++i) {
    RawSocket raw(mux.port());
    REQUIRE(raw.connected());
    REQUIRE(raw.send_all(startup_packet("app", "forced") + kTerminate));
    std::string received;
    if (!raw.read_until_closed(received, 10s))
      FAIL("client " << i << " was not closed; " << mux.state() << "\n" << mux.log_tail());
    // AuthenticationOk, the server's parameters, BackendKeyData and ReadyForQuery, then the close.
    CHECK(received.starts_with(std::string("R") + be32(8) + be32(0)));
    CHECK(received.find(std::string("Z") + be32(5) + "I") != std::string::npos);
  }
  Connection steady(mux.conninfo("app", "", "forced"));
  if (!steady.ok()) FAIL(steady.error() << mux.state() << "\n" << mux.log_tail());
  CHECK(steady.value("SELECT 1") == "1");
}
