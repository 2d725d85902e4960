// Reload (SIGHUP and the admin console's RELOAD): users, pool sizes and databases change under load without
// a failed transaction; a bad config is refused and the old one keeps serving.
#include <poll.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <thread>

#include "bounded.hpp"
#include "http_get.hpp"
#include "libpq.hpp"
#include "pgmux.hpp"

using namespace pgmux::test;

namespace {

// Column `name` of the first row whose first column is `first` (and second `second`, if given), or "".
std::string column(const Result& r, const std::string& first, const std::string& name,
                   const std::string& second = "") {
  int c = PQfnumber(r.get(), name.c_str());
  if (c < 0) return "";
  for (int row = 0; row < PQntuples(r.get()); ++row)
    if (first == PQgetvalue(r.get(), row, 0) && (second.empty() || second == PQgetvalue(r.get(), row, 1)))
      return PQgetvalue(r.get(), row, c);
  return "";
}

int as_int(const std::string& s) {
  return s.empty() ? 0 : std::stoi(s);
}

void collect(void* sink, const PGresult* r) {
  *static_cast<std::string*>(sink) += PQresultErrorMessage(r);
}

// Waits (bounded) until the server has sent something the client did not ask for, and lets libpq read it.
bool hears_within(PGconn* conn, int timeout_ms) {
  pollfd p{PQsocket(conn), POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1) return false;
  PQconsumeInput(conn);
  PQisBusy(conn);
  return true;
}

const PgmuxOptions kBase{.pool_size = 2, .extra_yaml = "admin_users: [app]\n", .http = true};

}  // namespace

TEST_CASE("a reload adds a user and grows a pool while 50 clients run transactions, none failing",
          "[reload]") {
  TestPostgres& postgres = TestPostgres::shared();
  if (postgres.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'reloaded'").starts_with("0"))
    postgres.psql("CREATE ROLE reloaded LOGIN PASSWORD 'reloaded-secret'");
  Pgmux mux(postgres, kBase);
  Connection admin(mux.conninfo("app", "app-secret", "pgmux"));
  REQUIRE(admin.ok());
  Connection before(mux.conninfo("reloaded", "reloaded-secret"));
  CHECK_FALSE(before.ok());  // not a pgmux user yet

  Failures failures;
  std::atomic<bool> stop{false};
  std::atomic<int> committed{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 50; ++i) {
    clients.emplace_back([&, i] {
      Connection c(mux.conninfo());
      if (!c.ok()) return failures.add("client " + std::to_string(i) + ": " + c.error());
      // Bounded: at most 2000 transactions each, and the main thread stops them well before that.
      for (int n = 0; n < 2000 && !stop.load(); ++n) {
        for (const char* sql : {"BEGIN", "SELECT pg_sleep(0.002)", "COMMIT"}) {
          Outcome o = exec_bounded(c.get(), sql, 20s);
          if (!o.ok()) return failures.add("client " + std::to_string(i) + ": " + sql + ": " + o.error);
        }
        committed.fetch_add(1);
      }
    });
  }
  CHECK(wait_until([&] { return committed.load() >= 100; }, 30s));

  PgmuxOptions grown = kBase;
  grown.pool_size = 4;
  grown.users_yaml = "  - name: reloaded\n    password: reloaded-secret\n";
  mux.rewrite_config(grown);
  REQUIRE(kill(mux.pid(), SIGHUP) == 0);

  // SHOW DATABASES and the metrics give the new size; the pool opens more backends for the waiting clients.
  CHECK(wait_until([&] { return column(admin.exec("SHOW DATABASES"), "app", "pool_size") == "4"; }, 10s));
  CHECK(wait_until(
      [&] {
        return sample(http_get(mux.http_port(), "/metrics").body,
                      R"(pgmux_pool_size{database="app",user="app"})") == 4;
      },
      10s));
  CHECK(wait_until(
      [&] {
        Result pools = admin.exec("SHOW POOLS");
        return as_int(column(pools, "app", "sv_active", "app")) +
                   as_int(column(pools, "app", "sv_idle", "app")) >
               2;
      },
      10s));
  Connection added(mux.conninfo("reloaded", "reloaded-secret"));
  REQUIRE(added.ok());
  CHECK(added.value("SELECT current_user") == "reloaded");

  int at_reload = committed.load();
  CHECK(wait_until([&] { return committed.load() >= at_reload + 100; }, 30s));
  stop = true;
  for (auto& t : clients) t.join();
  INFO(mux.log_tail());
  CHECK(failures.list().empty());
  INFO(failures.summary());
  CHECK(mux.log().find("reloaded " + mux.config_path()) != std::string::npos);
}

TEST_CASE("a pool shrunk by a reload closes the backends beyond its new size", "[reload]") {
  PgmuxOptions options = kBase;
  options.pool_size = 4;
  Pgmux mux(TestPostgres::shared(), options);
  Connection admin(mux.conninfo("app", "app-secret", "pgmux"));
  REQUIRE(admin.ok());
  std::vector<std::unique_ptr<Connection>> holders;
  for (int i = 0; i < 4; ++i) {
    holders.push_back(std::make_unique<Connection>(mux.conninfo()));
    REQUIRE(holders.back()->ok());
    holders.back()->value("BEGIN");
    holders.back()->value("SELECT 1");
  }
  auto backends = [&] {
    Result pools = admin.exec("SHOW POOLS");
    return as_int(column(pools, "app", "sv_active", "app")) + as_int(column(pools, "app", "sv_idle", "app"));
  };
  CHECK(backends() == 4);

  options.pool_size = 1;
  mux.rewrite_config(options);
  Result reload = admin.exec("RELOAD");
  REQUIRE(PQresultStatus(reload.get()) == PGRES_COMMAND_OK);
  for (auto& c : holders) CHECK(c->value("COMMIT").empty());
  CHECK(wait_until([&] { return backends() == 1; }, 10s));
  CHECK(holders[0]->value("SELECT 2") == "2");  // the clients stay connected
}

TEST_CASE("a config that fails validation is refused on RELOAD and SIGHUP, and the old one keeps serving",
          "[reload]") {
  Pgmux mux(TestPostgres::shared(), kBase);
  Connection admin(mux.conninfo("app", "app-secret", "pgmux"));
  Connection client(mux.conninfo());
  REQUIRE(admin.ok());
  REQUIRE(client.ok());

  PgmuxOptions bad = kBase;
  bad.pool_size = -3;
  mux.rewrite_config(bad);
  Result refused = admin.exec("RELOAD");
  CHECK(PQresultStatus(refused.get()) == PGRES_FATAL_ERROR);
  CHECK(sqlstate_of(refused.get()) == "F0000");
  CHECK(std::string(PQresultErrorMessage(refused.get())).find("pool.default_pool_size") != std::string::npos);

  REQUIRE(kill(mux.pid(), SIGHUP) == 0);
  CHECK(wait_until(
      [&] {
        std::string log = mux.log();
        std::size_t first = log.find("refused, the running configuration stays");
        return first != std::string::npos &&
               log.find("refused, the running configuration stays", first + 1) != std::string::npos;
      },
      10s));

  CHECK(column(admin.exec("SHOW DATABASES"), "app", "pool_size") == "2");
  CHECK(client.value("SELECT 1") == "1");
  Connection fresh(mux.conninfo());
  REQUIRE(fresh.ok());
  CHECK(fresh.value("SELECT 2") == "2");
}

TEST_CASE("a database removed by a reload ends its clients at their transaction boundary and takes no logins",
          "[reload]") {
  TestPostgres& postgres = TestPostgres::shared();
  PgmuxOptions with_extra = kBase;
  with_extra.databases_yaml =
      "  extra:\n    host: 127.0.0.1\n    port: " + std::to_string(postgres.port()) + "\n    dbname: app\n";
  Pgmux mux(postgres, with_extra);
  Connection admin(mux.conninfo("app", "app-secret", "pgmux"));
  Connection idle(mux.conninfo("app", "app-secret", "extra")),
      busy(mux.conninfo("app", "app-secret", "extra"));
  Connection other(mux.conninfo());
  REQUIRE(admin.ok());
  REQUIRE(idle.ok());
  REQUIRE(busy.ok());
  REQUIRE(other.ok());
  std::string told;
  PQsetNoticeReceiver(idle.get(), collect, &told);
  CHECK(idle.value("SELECT 1") == "1");
  busy.value("BEGIN");
  busy.value("SELECT 1");

  mux.rewrite_config(kBase);
  Result reload = admin.exec("RELOAD");
  INFO(PQresultErrorMessage(reload.get()));
  REQUIRE(PQresultStatus(reload.get()) == PGRES_COMMAND_OK);

  CHECK(hears_within(idle.get(), 10'000));
  CHECK(told.find("was removed from pgmux's configuration") != std::string::npos);
  CHECK(busy.value("SELECT 2") == "2");  // the transaction goes on and commits
  busy.value("COMMIT");
  Result after(PQexec(busy.get(), "SELECT 3"));
  CHECK(PQresultStatus(after.get()) == PGRES_FATAL_ERROR);

  Connection refused(mux.conninfo("app", "app-secret", "extra"));
  CHECK_FALSE(refused.ok());
  CHECK(refused.error().find("does not exist") != std::string::npos);
  CHECK(other.value("SELECT 4") == "4");  // the other database's clients never noticed
  CHECK(column(admin.exec("SHOW DATABASES"), "extra", "name").empty());
}

TEST_CASE(
    "a database pointed elsewhere by a reload gets new backends; a transaction in flight ends on its old one",
    "[reload]") {
  TestPostgres& postgres = TestPostgres::shared();
  auto moving = [&](const std::string& dbname) {
    PgmuxOptions options = kBase;
    options.databases_yaml = "  moving:\n    host: 127.0.0.1\n    port: " + std::to_string(postgres.port()) +
                             "\n    dbname: " + dbname + "\n    user: app\n    password: app-secret\n";
    return options;
  };
  Pgmux mux(postgres, moving("app"));
  Connection admin(mux.conninfo("app", "app-secret", "pgmux"));
  Connection idle(mux.conninfo("app", "app-secret", "moving")),
      busy(mux.conninfo("app", "app-secret", "moving"));
  REQUIRE(admin.ok());
  REQUIRE(idle.ok());
  REQUIRE(busy.ok());
  CHECK(idle.value("SELECT current_database()") == "app");
  const std::string idle_backend = idle.value("SELECT pg_backend_pid()");  // idle in the pool now
  busy.value("BEGIN");
  CHECK(busy.value("SELECT current_database()") == "app");
  const std::string old_backend = busy.value("SELECT pg_backend_pid()");

  mux.rewrite_config(moving("postgres"));
  Result reload = admin.exec("RELOAD");
  INFO(PQresultErrorMessage(reload.get()));
  REQUIRE(PQresultStatus(reload.get()) == PGRES_COMMAND_OK);

  CHECK(idle.value("SELECT current_database()") == "postgres");  // both clients stay connected
  CHECK(busy.value("SELECT current_database()") == "app");       // its transaction goes on where it began
  busy.value("COMMIT");
  CHECK(busy.value("SELECT current_database()") == "postgres");
  Result dbs = admin.exec("SHOW DATABASES");
  CHECK(column(dbs, "moving", "database") == "postgres");
  // The old database's backends were closed, the idle one at the reload, the busy one as it came back.
  Connection direct(postgres.conninfo("app", "app-secret"));
  REQUIRE(direct.ok());
  CHECK(wait_until(
      [&] {
        return direct.value("SELECT count(*) FROM pg_stat_activity WHERE pid IN (" + old_backend + ", " +
                            idle_backend + ")") == "0";
      },
      10s));
}
