// End to end with Neon's own serverless driver from npm: tests/neon/neon_http_test.mjs run by node against
// pgmux's POST /sql.
#include <catch2/catch.hpp>
#include <filesystem>

#include "pgmux.hpp"

using namespace pgmux::test;

TEST_CASE("Neon's serverless driver (neon() over HTTP) works unchanged against pgmux", "[http-sql][neon]") {
  if (run_shell("command -v node") != 0) {
    WARN(
        "SKIPPED: node is not installed, so the @neondatabase/serverless end-to-end test cannot run "
        "(deploy/install-deps.sh installs it)");
    return;
  }
  const std::filesystem::path dir = PGMUX_NEON_DIR;
  std::string output;
  if (!std::filesystem::exists(dir / "node_modules" / "@neondatabase" / "serverless")) {
    // tests/run.sh runs npm ci first; this covers a bare ctest from a fresh clone.
    INFO(output);
    REQUIRE(run_shell("cd '" + dir.string() + "' && timeout 300 npm ci --no-audit --no-fund", &output) == 0);
  }
  // robot's token stands for its password; database "forced" logs in to Postgres as app whoever asks.
  Pgmux mux(TestPostgres::shared(),
            {.http = true,
             .users_yaml = "  - name: robot\n    password: robot-pass\n    http_tokens: [e2e-token]\n"});
  const std::string command =
      "cd '" + dir.string() + "' && PGMUX_HTTP_URL=http://127.0.0.1:" + std::to_string(mux.http_port()) +
      "/sql PGMUX_DATABASE_URL=postgresql://app:app-secret@127.0.0.1/app "
      "PGMUX_TOKEN=e2e-token PGMUX_TOKEN_DATABASE_URL=postgresql://robot@127.0.0.1/forced "
      "timeout 120 node neon_http_test.mjs";
  int status = run_shell(command, &output);
  INFO(output << "\n" << mux.log_tail());
  CHECK(status == 0);
}

TEST_CASE("Neon's serverless driver (Pool and Client over WebSocket) works unchanged against pgmux",
          "[websocket][neon]") {
  if (run_shell("command -v node") != 0) {
    WARN("SKIPPED: node is not installed, so the @neondatabase/serverless WebSocket test cannot run");
    return;
  }
  const std::filesystem::path dir = PGMUX_NEON_DIR;
  std::string output;
  if (!std::filesystem::exists(dir / "node_modules" / "ws")) {
    INFO(output);
    REQUIRE(run_shell("cd '" + dir.string() + "' && timeout 300 npm ci --no-audit --no-fund", &output) == 0);
  }
  Pgmux mux(TestPostgres::shared(), {.http = true});
  const std::string command = "cd '" + dir.string() +
                              "' && PGMUX_WS_PROXY=127.0.0.1:" + std::to_string(mux.http_port()) +
                              "/v2 PGMUX_DATABASE_URL=postgresql://app:app-secret@127.0.0.1/app "
                              "timeout 120 node neon_ws_test.mjs";
  int status = run_shell(command, &output);
  INFO(output << "\n" << mux.log_tail());
  CHECK(status == 0);
  // Both ways of logging in were used: the pipelined cleartext password and SCRAM.
  CHECK(mux.log().find("sent its password before it was asked: checked in clear") != std::string::npos);
}
