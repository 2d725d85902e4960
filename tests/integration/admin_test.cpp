// The admin console: database "pgmux", SHOW commands for admin_users, refused to everyone else.
#include <catch2/catch.hpp>

#include "libpq.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;

namespace {

// Column `name` of the row whose first columns match `database` and `user`, or "" if there is none.
std::string pool_column(const Result& r, const std::string& database, const std::string& user,
                        const std::string& name) {
  int column = PQfnumber(r.get(), name.c_str());
  if (column < 0) return "";
  for (int row = 0; row < PQntuples(r.get()); ++row) {
    if (database == PQgetvalue(r.get(), row, 0) && user == PQgetvalue(r.get(), row, 1))
      return PQgetvalue(r.get(), row, column);
  }
  return "";
}

}  // namespace

TEST_CASE("SHOW POOLS counts the clients and backends of each pool", "[admin]") {
  Pgmux mux(TestPostgres::shared(), {.pool_size = 2, .extra_yaml = "admin_users: [app]\n"});
  Connection admin(mux.conninfo("app", "app-secret", "pgmux"));
  REQUIRE(admin.ok());

  Connection a(mux.conninfo()), b(mux.conninfo());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  a.value("BEGIN");  // holds a backend
  a.value("SELECT 1");
  CHECK(b.value("SELECT 1") == "1");  // used one and gave it back

  // The client has its answer a moment before pgmux's worker takes the backend back: poll briefly.
  Result pools;
  auto shows = [&](const char* active, const char* idle) {
    pools = admin.exec("SHOW POOLS;");
    return pool_column(pools, "app", "app", "sv_active") == active &&
           pool_column(pools, "app", "app", "sv_idle") == idle;
  };
  CHECK(wait_until([&] { return shows("1", "1"); }, 5s));
  REQUIRE(PQresultStatus(pools.get()) == PGRES_TUPLES_OK);
  CHECK(pool_column(pools, "app", "app", "cl_active") == "2");
  CHECK(pool_column(pools, "app", "app", "cl_waiting") == "0");
  CHECK(pool_column(pools, "app", "app", "pool_mode") == "transaction");
  a.value("COMMIT");
  CHECK(wait_until([&] { return shows("0", "2"); }, 5s));
}

TEST_CASE("SHOW DATABASES, SHOW CONFIG and SHOW VERSION answer; an unknown command is an error", "[admin]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = "admin_users: [app]\n"});
  Connection admin(mux.conninfo("app", "app-secret", "pgmux"));
  REQUIRE(admin.ok());
  Result dbs = admin.exec("SHOW DATABASES");
  REQUIRE(PQresultStatus(dbs.get()) == PGRES_TUPLES_OK);
  CHECK(PQntuples(dbs.get()) == 2);
  CHECK(pool_column(dbs, "forced", "127.0.0.1", "force_user") == "app");
  CHECK(admin.value("SHOW VERSION").starts_with("pgmux "));
  Result config = admin.exec("SHOW CONFIG");
  REQUIRE(PQresultStatus(config.get()) == PGRES_TUPLES_OK);
  std::string all;
  for (int row = 0; row < PQntuples(config.get()); ++row)
    all += std::string(PQgetvalue(config.get(), row, 0)) + "=" + PQgetvalue(config.get(), row, 1) + "\n";
  CHECK(all.find("pool.default_pool_size=5\n") != std::string::npos);
  CHECK(all.find("secret") == std::string::npos);  // never a password

  Result bad = admin.exec("DROP TABLE x");
  CHECK(PQresultStatus(bad.get()) == PGRES_FATAL_ERROR);
  CHECK(sqlstate_of(bad.get()) == "42601");
  CHECK(admin.value("SHOW VERSION").starts_with("pgmux "));  // still there
}

TEST_CASE("psql prints SHOW POOLS from the admin console", "[admin]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = "admin_users: [app]\n"});
  std::string out;
  int status = run_shell(
      "PGPASSWORD=app-secret timeout 20 psql -X \"" + mux.conninfo("app", "", "pgmux") + "\" -c 'SHOW POOLS'",
      &out);
  INFO(out);
  CHECK(status == 0);
  CHECK(out.find("cl_active") != std::string::npos);
  CHECK(out.find("sv_idle") != std::string::npos);
}

TEST_CASE("a user not in admin_users cannot reach the admin console", "[admin]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = "admin_users: [app]\n"});
  Connection c(mux.conninfo("plainuser", "plain-secret", "pgmux"));
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().find("may not use the admin console") != std::string::npos);
  Connection wrong(mux.conninfo("app", "wrong", "pgmux"));
  CHECK_FALSE(wrong.ok());
}

TEST_CASE("SHOW STATS counts transactions, queries and bytes as they go through", "[admin]") {
  Pgmux mux(TestPostgres::shared(), {.extra_yaml = "admin_users: [app]\n"});
  Connection admin(mux.conninfo("app", "app-secret", "pgmux"));
  Connection client(mux.conninfo());
  REQUIRE(admin.ok());
  REQUIRE(client.ok());
  auto stat = [&](const std::string& column) {
    Result r = admin.exec("SHOW STATS");
    REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
    int c = PQfnumber(r.get(), column.c_str());
    for (int row = 0; row < PQntuples(r.get()); ++row)
      if (std::string(PQgetvalue(r.get(), row, 0)) == "app") return std::stoll(PQgetvalue(r.get(), row, c));
    return 0LL;
  };
  client.value("SELECT 1");  // the pool exists from here on
  long long xacts = stat("total_xact_count"), queries = stat("total_query_count"), sent = stat("total_sent");
  for (int i = 0; i < 10; ++i) client.value("SELECT 1");
  client.value("BEGIN");
  client.value("SELECT 1");
  client.value("COMMIT");
  CHECK(stat("total_xact_count") - xacts == 11);  // 10 single statements and one block
  CHECK(stat("total_query_count") - queries == 13);
  CHECK(stat("total_sent") > sent);
  CHECK(stat("total_received") > 0);
}
