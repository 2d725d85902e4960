// A throwaway PostgreSQL 15 for tests: initdb in a temp dir, a free port, roles for every auth method, torn
// down after.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "process.hpp"

namespace pgmux::test {

// Instance settings beyond the defaults every test gets.
struct TestPostgresOptions {
  // ssl = on with this certificate and key (copied into the data directory, as Postgres wants its key
  // private to its own user); empty: no TLS.
  std::string ssl_cert, ssl_key;
  // Replaces the TCP lines of pg_hba.conf (local stays trust), e.g. "hostssl all all 127.0.0.1/32
  // scram-sha-256".
  std::string hba;
};

// Roles created in every instance (all own database "app"):
//   app       SCRAM-SHA-256 password "app-secret"
//   md5user   md5 password "md5-secret" (pg_hba asks md5 for it)
//   plainuser cleartext over the wire (pg_hba "password") with "plain-secret"
class TestPostgres {
 public:
  explicit TestPostgres(TestPostgresOptions options = {});
  ~TestPostgres();

  int port() const { return port_; }
  std::string conninfo(const std::string& user = "postgres", const std::string& password = "",
                       const std::string& dbname = "app") const;
  // Runs SQL as the superuser over the Unix socket; returns psql's output (-At). Throws on failure.
  std::string psql(const std::string& sql) const;
  // pg_authid.rolpassword of a role: the SCRAM verifier or md5 hash Postgres holds.
  std::string stored_secret(const std::string& role) const;

  void restart();  // pg_ctl restart -m fast
  void stop();
  void start();
  // start() once the last server processes of a killed postmaster have gone (until then Postgres refuses to
  // start: its shared memory is still in use). False if it did not start within `timeout`.
  bool start_after_crash(std::chrono::milliseconds timeout);

  // The postmaster's pid (postmaster.pid), or -1 when it is not running.
  pid_t postmaster_pid() const;
  // The postmaster's child processes (backends and background workers), from /proc.
  std::vector<pid_t> server_children() const;

  // One instance shared by the tests that do not stop or restart it.
  static TestPostgres& shared();

 private:
  TempDir dir_;
  int port_;
  std::string bin_ = "/usr/lib/postgresql/15/bin";
  std::string data_, log_;
};

}  // namespace pgmux::test
