// Logging in through pgmux: each authentication method, right and wrong, and the errors a client gets.
#include <catch2/catch.hpp>

#include "bounded.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;

namespace {

Pgmux& shared_pgmux() {
  static Pgmux instance(TestPostgres::shared());
  return instance;
}

bool error_mentions(const Connection& c, const std::string& text) {
  return c.error().find(text) != std::string::npos;
}

}  // namespace

TEST_CASE("a client logs in with SCRAM and pgmux logs in to Postgres with the keys from that login",
          "[login]") {
  Connection c(shared_pgmux().conninfo("app", "app-secret"));
  REQUIRE(c.ok());
  CHECK(c.value("SELECT current_user") == "app");
  CHECK(c.value("SELECT 40 + 2") == "42");
}

TEST_CASE("a wrong SCRAM password is refused with 28P01", "[login]") {
  Connection c(shared_pgmux().conninfo("app", "wrong"));
  REQUIRE_FALSE(c.ok());
  CHECK(error_mentions(c, "password authentication failed for user \"app\""));
}

TEST_CASE("an unknown user fails like a wrong password", "[login]") {
  Connection c(shared_pgmux().conninfo("nobody", "whatever"));
  REQUIRE_FALSE(c.ok());
  CHECK(error_mentions(c, "password authentication failed for user \"nobody\""));
}

TEST_CASE("a user stored as an md5 hash logs in with md5 on both sides", "[login]") {
  Connection good(shared_pgmux().conninfo("md5user", "md5-secret"));
  REQUIRE(good.ok());
  CHECK(good.value("SELECT current_user") == "md5user");
  Connection bad(shared_pgmux().conninfo("md5user", "wrong"));
  REQUIRE_FALSE(bad.ok());
  CHECK(error_mentions(bad, "password authentication failed"));
}

TEST_CASE("a plain-text user logs in with SCRAM and pgmux answers Postgres's cleartext request", "[login]") {
  Connection c(shared_pgmux().conninfo("plainuser", "plain-secret"));
  REQUIRE(c.ok());
  CHECK(c.value("SELECT current_user") == "plainuser");
}

TEST_CASE("auth_type md5 challenges md5 users with md5 and still checks the password", "[login]") {
  Pgmux mux(TestPostgres::shared(), {.auth_type = "md5"});
  Connection md5(mux.conninfo("md5user", "md5-secret"));
  REQUIRE(md5.ok());
  Connection plain(mux.conninfo("plainuser", "plain-secret"));
  REQUIRE(plain.ok());
  Connection wrong(mux.conninfo("plainuser", "nope"));
  REQUIRE_FALSE(wrong.ok());
  CHECK(error_mentions(wrong, "password authentication failed"));
  // A SCRAM-only secret cannot check md5, so that user gets SCRAM instead.
  Connection scram(mux.conninfo("app", "app-secret"));
  REQUIRE(scram.ok());
}

TEST_CASE("auth_type plain accepts the password checked against any kind of secret", "[login]") {
  Pgmux mux(TestPostgres::shared(), {.auth_type = "plain"});
  for (auto [user, password] :
       {std::pair{"app", "app-secret"}, {"md5user", "md5-secret"}, {"plainuser", "plain-secret"}}) {
    Connection c(mux.conninfo(user, password));
    INFO(user);
    REQUIRE(c.ok());
    CHECK(c.value("SELECT current_user") == user);
  }
  Connection wrong(mux.conninfo("app", "wrong"));
  CHECK_FALSE(wrong.ok());
}

TEST_CASE("a database forced to a backend user logs in as that user", "[login]") {
  Connection c(shared_pgmux().conninfo("plainuser", "plain-secret", "forced"));
  REQUIRE(c.ok());
  CHECK(c.value("SELECT current_user") == "app");
}

TEST_CASE("an unknown database is refused with 3D000", "[login]") {
  Connection c(shared_pgmux().conninfo("app", "app-secret", "nosuchdb"));
  REQUIRE_FALSE(c.ok());
  CHECK(error_mentions(c, "database \"nosuchdb\" does not exist"));
}

TEST_CASE("clients beyond max_client_conn are refused with 53300 and the others keep working", "[login]") {
  Pgmux mux(TestPostgres::shared(), {.max_client_conn = 2});
  Connection first(mux.conninfo()), second(mux.conninfo());
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  Connection third(mux.conninfo());
  REQUIRE_FALSE(third.ok());
  CHECK(error_mentions(third, "no more connections allowed"));
  CHECK(first.value("SELECT 1") == "1");
}

TEST_CASE("TLS is declined with 'N': sslmode=prefer falls back to plaintext, require fails", "[login]") {
  Connection prefer(shared_pgmux().conninfo() + " sslmode=prefer");
  REQUIRE(prefer.ok());
  Connection require(shared_pgmux().conninfo() + " sslmode=require");
  CHECK_FALSE(require.ok());
}

TEST_CASE("the client gets the server's parameters and its own application_name", "[login]") {
  Connection c(shared_pgmux().conninfo() + " application_name=checker");
  REQUIRE(c.ok());
  CHECK(std::string(PQparameterStatus(c.get(), "server_version")).starts_with("15."));
  CHECK(std::string(PQparameterStatus(c.get(), "application_name")) == "checker");
  CHECK(PQbackendPID(c.get()) != 0);
}

TEST_CASE("once a pool knows its server's parameters, a login waits for no backend", "[login]") {
  // The only backend is inside another client's transaction: logins still complete, with the parameters
  // pgmux remembered, and their first query then waits for the backend.
  Pgmux mux(TestPostgres::shared(), {.pool_size = 1, .query_wait_timeout = "20s"});
  INFO(mux.log_tail());
  Connection holder(mux.conninfo());
  REQUIRE(holder.ok());
  holder.exec("BEGIN");
  CHECK(holder.value("SELECT 'holding'") == "holding");
  std::vector<std::unique_ptr<Connection>> logins;
  for (int i = 0; i < 5; ++i) {
    // connect_timeout bounds the wait should a login need the backend after all.
    logins.push_back(std::make_unique<Connection>(mux.conninfo() + " connect_timeout=5"));
    REQUIRE(logins.back()->ok());
    CHECK(std::string(PQparameterStatus(logins.back()->get(), "server_version")).starts_with("15."));
  }
  REQUIRE(PQsendQuery(logins[0]->get(), "SELECT 'after the holder'") == 1);
  holder.exec("COMMIT");
  bool timed_out = false;
  Result r = next_result(logins[0]->get(), std::chrono::steady_clock::now() + 20s, timed_out);
  REQUIRE(r);
  REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
  CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "after the holder");
}
