// Limits a client cannot get around: message and startup packet sizes, client_login_timeout in every phase,
// a flood of connections that never log in, per-database and per-user client limits, the per-address rate.
#include <catch2/catch.hpp>
#include <memory>
#include <vector>

#include "bounded.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"
#include "pgmux/protocol/builders.hpp"
#include "raw_socket.hpp"

using namespace pgmux::test;

namespace {

std::string startup_packet(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string out;
  pgmux::protocol::append_startup(out, params);
  return out;
}

// A startup packet for user app, database app, padded with application_name to exactly `length` bytes.
std::string startup_of_length(std::size_t length) {
  std::string bare = startup_packet({{"user", "app"}, {"database", "app"}, {"application_name", ""}});
  return startup_packet(
      {{"user", "app"}, {"database", "app"}, {"application_name", std::string(length - bare.size(), 'x')}});
}

// Whether a libpq login failed with `sqlstate`'s message text.
bool refused_with(const Connection& c, const std::string& text) {
  return !c.ok() && c.error().find(text) != std::string::npos;
}

}  // namespace

TEST_CASE("an authentication answer over 64 KiB, or of another type, is refused with 08P01", "[limits]") {
  Pgmux mux(TestPostgres::shared());
  INFO(mux.log_tail());
  // Postgres's own limits: a password or SASL message of at most 65,535 bytes, and only 'p' in reply.
  for (const std::string& answer : {"p" + be32(70000) + std::string(100, 'x'), "Q" + be32(9) + "SELECT"}) {
    RawSocket raw(mux.port());
    REQUIRE(raw.connected());
    REQUIRE(raw.send_all(startup_of_length(200)));
    char type = 0;
    std::string body;
    REQUIRE(raw.read_message(type, body, 5s));
    REQUIRE(type == 'R');
    REQUIRE(raw.send_all(answer));
    std::string received;
    CHECK(raw.read_until_closed(received, 5s));
    CHECK(error_response_sqlstate(received) == "08P01");
  }
  Connection still(mux.conninfo());  // and everyone else is served
  CHECK(still.ok());
}

TEST_CASE("a startup packet of 10,000 bytes is read and one of 10,001 is refused with 08P01", "[limits]") {
  Pgmux mux(TestPostgres::shared());
  {
    RawSocket fits(mux.port());
    REQUIRE(fits.connected());
    std::string packet = startup_of_length(10000);
    REQUIRE(packet.size() == 10000);
    REQUIRE(fits.send_all(packet));
    char type = 0;
    std::string body;
    REQUIRE(fits.read_message(type, body, 5s));
    CHECK(type == 'R');  // asked for a password: the packet was accepted
  }
  RawSocket over(mux.port());
  REQUIRE(over.connected());
  std::string packet = startup_of_length(10001);
  REQUIRE(packet.size() == 10001);
  REQUIRE(over.send_all(packet));
  std::string received;
  CHECK(over.read_until_closed(received, 5s));
  CHECK(error_response_sqlstate(received) == "08P01");
  CHECK(received.find("invalid length of startup packet") != std::string::npos);
}

TEST_CASE("a message over max_packet_size gets 08P01 while other clients keep working", "[limits]") {
  Pgmux mux(TestPostgres::shared(), {.pool_yaml = "  max_packet_size: 65536\n"});
  Connection bystander(mux.conninfo());
  REQUIRE(bystander.ok());
  Connection big(mux.conninfo());
  REQUIRE(big.ok());
  // Within the limit, then one byte of text over it.
  CHECK(exec_bounded(big.get(), "SELECT length('" + std::string(60000, 'a') + "')").value() == "60000");
  Outcome over = exec_bounded(big.get(), "SELECT length('" + std::string(70000, 'a') + "')", 10s);
  CHECK_FALSE(over.timed_out);
  CHECK_FALSE(over.ok());
  INFO(over.error);
  CHECK(over.error.find("invalid message length") != std::string::npos);
  CHECK(over.sqlstate == "08P01");
  CHECK(bystander.value("SELECT 1") == "1");
  Connection fresh(mux.conninfo());
  REQUIRE(fresh.ok());
  CHECK(fresh.value("SELECT 2") == "2");
}

TEST_CASE("client_login_timeout cuts a client stalled in any phase of its login", "[limits]") {
  Pgmux mux(TestPostgres::shared(), {.pool_yaml = "  client_login_timeout: 1s\n"});
  auto closed_in_time = [](RawSocket& socket) {
    std::string received;
    auto start = std::chrono::steady_clock::now();
    bool closed = socket.read_until_closed(received, 10s);
    auto took = std::chrono::steady_clock::now() - start;
    INFO("closed after " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    CHECK(closed);
    CHECK(took < 5s);
  };
  SECTION("a startup packet that never completes") {
    RawSocket half(mux.port());
    REQUIRE(half.connected());
    std::string packet = startup_packet({{"user", "app"}, {"database", "app"}});
    REQUIRE(half.send_all(packet.substr(0, packet.size() / 2)));
    closed_in_time(half);
  }
  SECTION("a startup packet sent a byte at a time, too slowly") {
    RawSocket drip(mux.port());
    REQUIRE(drip.connected());
    std::string packet = startup_packet({{"user", "app"}, {"database", "app"}});
    // Each byte is well inside the timeout; all of them are not.
    std::size_t sent = 0;
    std::string ignored;
    while (sent < packet.size() && drip.send_all(packet.substr(sent, 1))) {
      ++sent;
      if (drip.read_until_closed(ignored, 200ms)) break;  // doubles as the pause between bytes
    }
    CHECK(sent < packet.size());
  }
  SECTION("a client that never answers the password request") {
    RawSocket mute(mux.port());
    REQUIRE(mute.connected());
    REQUIRE(mute.send_all(startup_packet({{"user", "app"}, {"database", "app"}})));
    char type = 0;
    std::string body;
    REQUIRE(mute.read_message(type, body, 5s));
    CHECK(type == 'R');
    closed_in_time(mute);
  }
  Connection fine(mux.conninfo());
  REQUIRE(fine.ok());
}

TEST_CASE("2,000 connections that never log in are cut at client_login_timeout while others keep working",
          "[limits]") {
  // Without TCP_DEFER_ACCEPT, so that the silent half reaches pgmux too (with it, the kernel keeps them).
  Pgmux mux(TestPostgres::shared(), {.max_client_conn = 2500,
                                     .pool_yaml = "  client_login_timeout: 2s\n",
                                     .extra_yaml = "tcp_defer_accept: false\n"});
  Connection steady(mux.conninfo());
  REQUIRE(steady.ok());
  std::vector<std::unique_ptr<RawSocket>> flood;
  std::string partial = startup_packet({{"user", "app"}, {"database", "app"}}).substr(0, 6);
  for (int i = 0; i < 2000; ++i) {
    flood.push_back(std::make_unique<RawSocket>(mux.port()));
    REQUIRE(flood.back()->connected());
    if (i % 2 == 0) REQUIRE(flood.back()->send_all(partial));  // half send a fragment, half nothing
  }
  // While they are all there, a real client logs in and works.
  Connection during(mux.conninfo());
  REQUIRE(during.ok());
  CHECK(during.value("SELECT 1") == "1");
  CHECK(steady.value("SELECT 2") == "2");
  // Every one of them is closed by pgmux, not left open.
  auto deadline = std::chrono::steady_clock::now() + 30s;
  int closed = 0;
  for (auto& socket : flood) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    std::string ignored;
    if (left.count() > 0 && socket->read_until_closed(ignored, left)) ++closed;
  }
  CHECK(closed == 2000);
  Connection after(mux.conninfo());
  REQUIRE(after.ok());
  CHECK(after.value("SELECT 3") == "3");
}

TEST_CASE("max_db_client_connections: the next login to that database gets 53300 until one leaves",
          "[limits]") {
  Pgmux mux(TestPostgres::shared(), {.pool_yaml = "  max_db_client_connections: 2\n"});
  auto first = std::make_unique<Connection>(mux.conninfo());
  Connection second(mux.conninfo("plainuser", "plain-secret"));
  REQUIRE(first->ok());
  REQUIRE(second.ok());
  Connection third(mux.conninfo("md5user", "md5-secret"));
  CHECK(refused_with(third, "no more connections allowed for database \"app\" (max_db_client_connections)"));
  // Another database is counted apart.
  Connection other(mux.conninfo("app", "app-secret", "forced"));
  REQUIRE(other.ok());
  CHECK(second.value("SELECT 1") == "1");
  first.reset();
  // pgmux notices the departure a moment later.
  CHECK(wait_until([&] { return Connection(mux.conninfo("md5user", "md5-secret")).ok(); }, 5s));
}

TEST_CASE("max_user_client_connections counts a user across databases; a user's own setting overrides it",
          "[limits]") {
  Pgmux mux(
      TestPostgres::shared(),
      {.pool_yaml = "  max_user_client_connections: 2\n",
       .users_yaml = "  - name: solo\n    password: solo-secret\n    max_user_client_connections: 1\n"});
  auto first = std::make_unique<Connection>(mux.conninfo());
  Connection second(mux.conninfo("app", "app-secret", "forced"));
  REQUIRE(first->ok());
  REQUIRE(second.ok());
  Connection third(mux.conninfo());
  CHECK(refused_with(third, "no more connections allowed for user \"app\" (max_user_client_connections)"));
  Connection someone_else(mux.conninfo("plainuser", "plain-secret"));
  REQUIRE(someone_else.ok());
  // solo exists only in pgmux: database "forced" logs in to Postgres as app.
  Connection solo(mux.conninfo("solo", "solo-secret", "forced"));
  REQUIRE(solo.ok());
  Connection solo_again(mux.conninfo("solo", "solo-secret", "forced"));
  CHECK(refused_with(solo_again, "(max_user_client_connections)"));
  // A wrong password is told as such, not that the user is full: the limit is checked after authentication.
  Connection wrong(mux.conninfo("app", "wrong"));
  CHECK(refused_with(wrong, "password authentication failed"));
  first.reset();
  CHECK(wait_until([&] { return Connection(mux.conninfo()).ok(); }, 5s));
}

TEST_CASE("client_connection_rate_per_ip refuses connections beyond the burst with 53300 and recovers",
          "[limits]") {
  // One token every two seconds, three at most: three quick logins pass, the fourth is refused.
  Pgmux mux(TestPostgres::shared(), {.pool_yaml = "  client_connection_rate_per_ip: 0.5\n"
                                                  "  client_connection_burst_per_ip: 3\n"});
  std::vector<std::unique_ptr<Connection>> quick;
  for (int i = 0; i < 3; ++i) {
    quick.push_back(std::make_unique<Connection>(mux.conninfo()));
    REQUIRE(quick.back()->ok());
  }
  RawSocket fourth(mux.port());
  REQUIRE(fourth.connected());
  REQUIRE(fourth.send_all(startup_packet({{"user", "app"}, {"database", "app"}})));
  std::string received;
  CHECK(fourth.read_until_closed(received, 5s));
  CHECK(error_response_sqlstate(received) == "53300");
  CHECK(received.find("too many connection attempts") != std::string::npos);
  // Those already in are not affected, and the bucket refills.
  CHECK(quick[0]->value("SELECT 1") == "1");
  CHECK(wait_until([&] { return Connection(mux.conninfo()).ok(); }, 6s));
}
