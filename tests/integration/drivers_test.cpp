// Real drivers that prepare named statements by default, run through pgmux with fewer backends than clients:
// the scripts in tests/drivers/ (node-postgres, postgres.js, psycopg 3, asyncpg) and pgbench -M prepared.
#include <signal.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "pgmux.hpp"

using namespace pgmux::test;

namespace {

// Named statements must follow a client from backend to backend (issue 3), so these tests run in transaction
// mode, where a client's next transaction usually lands on another backend. "session" keeps each client on
// one backend: the driver scripts pass there without the feature. pgbench cannot: its 8 clients keep their
// connections to the end of the run, so 5 of them wait for one of 3 backends until query_wait_timeout.
constexpr const char* kPoolMode = "transaction";
constexpr int kPoolSize = 4;
constexpr int kClients = 20;  // well above kPoolSize, so clients take turns on the backends
constexpr auto kScriptTimeout = 90s;

const std::filesystem::path kDrivers = PGMUX_DRIVERS_DIR;

std::string url(int port, const std::string& dbname = "app") {
  return "postgres://app:app-secret@127.0.0.1:" + std::to_string(port) + "/" + dbname + "?sslmode=disable";
}

struct ScriptRun {
  bool timed_out = false;
  int status = -1;  // wait status
  std::string output;
  // From the script's last line, "summary driver=... backends=N clients_on_several_backends=M".
  int backends = -1;
  int clients_on_several_backends = -1;

  bool passed() const { return !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0; }
  std::string describe() const {
    std::string how = timed_out             ? "killed after the timeout"
                      : WIFEXITED(status)   ? "exit code " + std::to_string(WEXITSTATUS(status))
                      : WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                            : "status " + std::to_string(status);
    return "driver script ended with " + how + "; its output:\n" + output;
  }
};

// Runs a driver script against `target_url` with a deadline; the script's own deadline is shorter, so a
// timeout here means it hung beyond its own watchdog.
ScriptRun run_script(const std::vector<std::string>& command, const std::string& target_url) {
  TempDir dir("pgmux-test-driver-");
  std::vector<std::string> argv{"/usr/bin/env", "PGMUX_URL=" + target_url,
                                "DRIVER_CLIENTS=" + std::to_string(kClients), "DRIVER_ROUNDS=30",
                                "DRIVER_DEADLINE_MS=60000"};
  argv.insert(argv.end(), command.begin(), command.end());
  ScriptRun run;
  {
    ChildProcess child(argv, dir.path() / "output.log");
    run.timed_out = !wait_until([&] { return !child.running(); }, kScriptTimeout);
    run.status = child.stop(SIGKILL, 10s);
  }
  run.output = read_file(dir.path() / "output.log");
  std::smatch m;
  if (std::regex_search(run.output, m, std::regex(R"(backends=(\d+) clients_on_several_backends=(\d+))"))) {
    run.backends = std::stoi(m[1]);
    run.clients_on_several_backends = std::stoi(m[2]);
  }
  return run;
}

// A missing runtime fails the test rather than skipping it: CI installs everything, so a skip would hide one.
void require_node() {
  if (run_shell("node --version") != 0)
    FAIL("node is not installed: run deploy/install-deps.sh (Debian packages nodejs and npm)");
  for (const char* module : {"pg", "postgres"})
    if (!std::filesystem::exists(kDrivers / "node_modules" / module / "package.json"))
      FAIL(std::string("the npm package '") + module + "' is missing: run `npm ci` in " + kDrivers.string() +
           " (tests/run.sh does)");
}

void require_python_module(const std::string& module, const std::string& package) {
  if (run_shell("/usr/bin/python3 -c 'import " + module + "'") != 0)
    FAIL("Debian's /usr/bin/python3 cannot import " + module + ": apt-get install " + package +
         " (deploy/install-deps.sh does)");
}

// The script is first run straight against Postgres, a control showing the script itself is right, then
// through pgmux with kClients clients sharing kPoolSize backends.
void check_driver(const std::vector<std::string>& command) {
  TestPostgres& postgres = TestPostgres::shared();
  ScriptRun direct = run_script(command, url(postgres.port()));
  INFO("straight to Postgres: " << direct.describe());
  REQUIRE(direct.passed());

  Pgmux mux(postgres, {.pool_mode = kPoolMode, .pool_size = kPoolSize});
  ScriptRun through = run_script(command, url(mux.port()));
  INFO("through pgmux in " << kPoolMode << " mode with " << kPoolSize << " backends: " << through.describe());
  INFO(mux.log_tail());
  INFO(mux.state());
  CHECK(through.passed());
  // The clients really shared the pool's few backends...
  CHECK(through.backends >= 1);
  CHECK(through.backends <= kPoolSize);
  // ...and in transaction mode a client's statements really ran on more than one of them.
  if (std::string(kPoolMode) == "transaction") CHECK(through.clients_on_several_backends > 0);
}

}  // namespace

TEST_CASE("node-postgres named queries from 20 clients over 4 backends each get their own results",
          "[drivers][node]") {
  require_node();
  check_driver({"node", (kDrivers / "node_postgres.js").string()});
}

TEST_CASE("postgres.js prepared queries from 20 clients over 4 backends each get their own results",
          "[drivers][node]") {
  require_node();
  check_driver({"node", (kDrivers / "postgres_js.js").string()});
}

TEST_CASE("psycopg 3 with prepare_threshold=0, 20 clients over 4 backends, each gets its own results",
          "[drivers][python]") {
  require_python_module("psycopg", "python3-psycopg");
  check_driver({"/usr/bin/python3", (kDrivers / "psycopg3.py").string()});
}

TEST_CASE("asyncpg prepared statements from 20 clients over 4 backends each get their own results",
          "[drivers][python]") {
  require_python_module("asyncpg", "python3-asyncpg");
  check_driver({"/usr/bin/python3", (kDrivers / "asyncpg_clients.py").string()});
}

TEST_CASE("pgbench -M prepared -S with 8 clients over 3 backends fails no transaction",
          "[drivers][pgbench]") {
  TestPostgres& postgres = TestPostgres::shared();
  if (run_shell("pgbench --version") != 0)
    FAIL("pgbench is not installed: apt-get install postgresql-client-15 (deploy/install-deps.sh does)");
  // A database of its own, so this test's pgbench tables do not meet the ones other tests make in "app".
  postgres.psql("DROP DATABASE IF EXISTS drivers_bench");
  postgres.psql("CREATE DATABASE drivers_bench OWNER app");
  std::string init;
  int init_status = run_shell("PGPASSWORD=app-secret timeout 120 pgbench -i -s 1 -q -h 127.0.0.1 -p " +
                                  std::to_string(postgres.port()) + " -U app drivers_bench",
                              &init);
  INFO("pgbench -i straight to Postgres:\n" << init);
  REQUIRE(init_status == 0);

  Pgmux mux(postgres, {.pool_mode = kPoolMode,
                       .pool_size = 3,
                       .databases_yaml = "  drivers_bench:\n    host: 127.0.0.1\n    port: " +
                                         std::to_string(postgres.port()) + "\n"});
  std::string output;
  int status =
      run_shell("PGPASSWORD=app-secret timeout 120 pgbench -M prepared -S -c 8 -j 2 -t 250 -h 127.0.0.1 -p " +
                    std::to_string(mux.port()) + " -U app drivers_bench",
                &output);
  INFO("pgbench through pgmux in " << kPoolMode << " mode, exit code " << status << ":\n" << output);
  INFO(mux.log_tail());
  INFO(mux.state());
  std::smatch m;
  CHECK(status == 0);
  REQUIRE(std::regex_search(output, m, std::regex(R"(number of failed transactions: (\d+))")));
  CHECK(m[1] == "0");
  CHECK(std::regex_search(output, std::regex(R"(number of transactions actually processed: 2000/2000)")));
  // pgbench only logs a failed prepare and goes on, and every client names the same text P_0, so a backend
  // that another client prepared it on lets the run succeed anyway: the errors it logged are the evidence.
  CHECK(output.find("prepared statement") == std::string::npos);
  CHECK(output.find("pgbench: error") == std::string::npos);
}
