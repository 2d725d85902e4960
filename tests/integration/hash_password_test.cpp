// pgmux --hash-password: the verifier it prints logs in through pgmux and straight to Postgres alike.
#include <catch2/catch.hpp>

#include <fstream>
#include <regex>

#include "libpq.hpp"
#include "pgmux.hpp"
#include "pgmux/auth/secrets.hpp"

using namespace pgmux::test;

namespace {

struct HashRun {
  int status;
  std::string output;
};

HashRun hash_password(const std::string& password, const std::string& arguments) {
  TempDir dir("pgmux-test-hash-");
  auto input = dir.path() / "password";
  std::ofstream(input) << password;
  HashRun run;
  run.status = run_shell(
      std::string(PGMUX_BINARY) + " --hash-password " + arguments + " < '" + input.string() + "' 2>&1",
      &run.output);
  return run;
}

}  // namespace

TEST_CASE("pgmux --hash-password prints a users entry whose verifier logs in through pgmux and to Postgres",
          "[login]") {
  HashRun run = hash_password("lambda-Secret-1\n", "hashuser --scram-iterations 1000");
  INFO(run.output);
  REQUIRE(run.status == 0);
  std::smatch m;
  REQUIRE(std::regex_search(
      run.output, m, std::regex("^- name: \"hashuser\"\n  password: \"(SCRAM-SHA-256\\$1000:[^\"]+)\"\n$")));
  const std::string verifier = m[1];

  // The trailing newline was not part of the password, and the verifier is that password's.
  auto parsed = pgmux::auth::parse_scram_verifier(verifier);
  REQUIRE(parsed);
  CHECK(parsed->iterations == 1000);
  CHECK(parsed->salt.size() == 16);
  auto again = pgmux::auth::scram_verifier_from_password("lambda-Secret-1", parsed->salt, 1000);
  CHECK(again.stored_key == parsed->stored_key);
  CHECK(again.server_key == parsed->server_key);

  // Postgres takes the same verifier as the role's password, and pgmux logs in to it with the keys from the
  // client's own SCRAM login: no plain password anywhere in the config.
  const TestPostgres& postgres = TestPostgres::shared();
  // TestPostgres::psql passes its SQL through a shell: the verifier's '$' go as E'' escapes.
  std::string escaped;
  for (char c : verifier) escaped += c == '$' ? std::string("\\x24") : std::string(1, c);
  postgres.psql("DROP ROLE IF EXISTS hashuser; CREATE ROLE hashuser LOGIN PASSWORD E'" + escaped + "'");
  REQUIRE(postgres.stored_secret("hashuser") == verifier);
  Connection direct(postgres.conninfo("hashuser", "lambda-Secret-1"));
  INFO(direct.error());
  REQUIRE(direct.ok());
  CHECK(direct.value("SELECT current_user") == "hashuser");

  std::string users_yaml;
  for (std::size_t start = 0; start < run.output.size();) {
    std::size_t end = run.output.find('\n', start);
    users_yaml += "  " + run.output.substr(start, end - start + 1);
    start = end + 1;
  }
  Pgmux mux(postgres, {.users_yaml = users_yaml});
  Connection through(mux.conninfo("hashuser", "lambda-Secret-1"));
  REQUIRE(through.ok());
  CHECK(through.value("SELECT current_user") == "hashuser");
  Connection wrong(mux.conninfo("hashuser", "lambda-Secret-2"));
  CHECK_FALSE(wrong.ok());

  // A fresh salt each time.
  HashRun second = hash_password("lambda-Secret-1", "hashuser");
  REQUIRE(second.status == 0);
  CHECK(second.output.find("SCRAM-SHA-256$4096:") != std::string::npos);
  CHECK(second.output.find(verifier) == std::string::npos);
}

TEST_CASE("pgmux --hash-password refuses an empty password and a bad iteration count", "[login]") {
  CHECK(hash_password("", "someone").status != 0);
  for (const char* bad : {"0", "-5", "lots", "99999999999"}) {
    HashRun run = hash_password("pw", std::string("someone --scram-iterations ") + bad);
    INFO(bad << ": " << run.output);
    CHECK(run.status != 0);
    CHECK(run.output.find("--scram-iterations") != std::string::npos);
  }
}
