// auth_query: users that exist only in Postgres log in through pgmux with the verifier fetched by auth_user;
// wrong passwords and missing users fail alike, and a lookup that cannot run fails clearly and in time.
#include <catch2/catch.hpp>
#include <chrono>

#include "libpq.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;

namespace {

// A role in the shared Postgres, created on first use (psql runs through a shell, so no $$ quoting).
void ensure_role(const std::string& name, const std::string& options) {
  const TestPostgres& postgres = TestPostgres::shared();
  if (postgres.psql("SELECT count(*) FROM pg_roles WHERE rolname = '" + name + "'") == "0")
    postgres.psql("CREATE ROLE " + name + " " + options);
}

// An auth_user allowed to read pg_shadow, and a user pgmux's config never lists, with a SCRAM password.
void create_roles() {
  ensure_role("pgmux_auth", "LOGIN SUPERUSER PASSWORD 'auth-secret'");
  ensure_role("db_only", "LOGIN PASSWORD 'only-secret'");
}

PgmuxOptions with_auth_query(PgmuxOptions options = {}) {
  options.extra_yaml += "auth_user: pgmux_auth\n";
  options.users_yaml += "  - name: pgmux_auth\n    password: auth-secret\n";
  return options;
}

std::string error_with_user(const Connection& c, const std::string& user) {
  std::string text = c.error();
  std::string quoted = "\"" + user + "\"";
  if (auto at = text.find(quoted); at != std::string::npos) text.replace(at, quoted.size(), "\"USER\"");
  return text;
}

}  // namespace

TEST_CASE("a user only Postgres knows logs in through auth_query with SCRAM and runs queries",
          "[auth-query]") {
  create_roles();
  Pgmux mux(TestPostgres::shared(), with_auth_query());
  Connection first(mux.conninfo("db_only", "only-secret"));
  REQUIRE(first.ok());
  CHECK(first.value("SELECT current_user") == "db_only");
  // pgmux logged in to Postgres with the keys from the client's own proof, as for a listed verifier; a
  // second client of the same user reuses or opens backends the same way.
  Connection second(mux.conninfo("db_only", "only-secret"));
  REQUIRE(second.ok());
  first.value("BEGIN");
  first.value("SELECT 1");  // holds one backend, so the second needs its own
  CHECK(second.value("SELECT current_user") == "db_only");
  first.value("COMMIT");
  // Listed users are untouched by auth_query.
  Connection listed(mux.conninfo("app", "app-secret"));
  REQUIRE(listed.ok());
}

TEST_CASE("through auth_query a wrong password and a user Postgres lacks are refused alike with 28P01",
          "[auth-query]") {
  create_roles();
  Pgmux mux(TestPostgres::shared(), with_auth_query());
  Connection wrong(mux.conninfo("db_only", "not-it"));
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().find("password authentication failed for user \"db_only\"") != std::string::npos);
  Connection missing(mux.conninfo("no_such_role", "not-it"));
  REQUIRE_FALSE(missing.ok());
  CHECK(error_with_user(missing, "no_such_role") == error_with_user(wrong, "db_only"));
  // A role without a password (NULL in pg_shadow) is the same as no role.
  ensure_role("no_password", "LOGIN");
  Connection nopass(mux.conninfo("no_password", "not-it"));
  REQUIRE_FALSE(nopass.ok());
  CHECK(error_with_user(nopass, "no_password") == error_with_user(wrong, "db_only"));
  Connection right(mux.conninfo("db_only", "only-secret"));
  CHECK(right.ok());
}

TEST_CASE("when auth_user's server cannot be reached the login fails with a clear error in bounded time",
          "[auth-query]") {
  create_roles();
  // Database "down" points at a port nobody listens on.
  PgmuxOptions options = with_auth_query({.pool_yaml = "  server_connect_timeout: 2s\n",
                                          .databases_yaml = "  down:\n    host: 127.0.0.1\n    port: 1\n"
                                                            "    dbname: app\n"});
  Pgmux mux(TestPostgres::shared(), options);
  auto start = std::chrono::steady_clock::now();
  Connection lost(mux.conninfo("db_only", "only-secret", "down"));
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(lost.ok());
  INFO(lost.error());
  CHECK(lost.error().find("authentication lookup failed (auth_query)") != std::string::npos);
  CHECK(took < 8s);
  // The rest of pgmux is unaffected.
  Connection fine(mux.conninfo("db_only", "only-secret"));
  REQUIRE(fine.ok());
  CHECK(fine.value("SELECT 1") == "1");
}
