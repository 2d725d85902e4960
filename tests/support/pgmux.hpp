// The real pgmux binary under test, started with a generated config on a free port.
#pragma once

#include <string>

#include "postgres.hpp"
#include "process.hpp"

namespace pgmux::test {

struct PgmuxOptions {
  std::string pool_mode = "transaction";
  int pool_size = 5;
  int max_client_conn = 1000;
  std::string auth_type = "scram-sha-256";
  std::string query_wait_timeout = "30s";
  std::string pool_yaml;       // appended inside the pool: section, e.g. "  server_lifetime: 1s\n"
  std::string databases_yaml;  // more entries inside databases:, e.g. "  other:\n    port: 1\n"
  std::string extra_yaml;      // appended verbatim at the top level
  bool http = false;           // also listen.http on a free port
  std::string users_yaml;      // more entries inside users:, e.g. "  - name: bob\n    password: x\n"
  bool metrics = false;        // also listen.metrics on a free port
};

// Users configured: app (Postgres's own SCRAM verifier: pass-through login), md5user (its md5 hash),
// plainuser (plain text). Database "app" logs in as the client's own user; "forced" always as app.
class Pgmux {
 public:
  Pgmux(const TestPostgres& postgres, PgmuxOptions options = {});
  // A successor started with --takeover on `running`'s ports: it takes the listening sockets over. With
  // `wait` false it returns as soon as the process is started (a test may hold the takeover up on purpose);
  // wait_listening() then tells when it serves.
  Pgmux(const TestPostgres& postgres, PgmuxOptions options, const Pgmux& running, bool wait = true);
  ~Pgmux();

  int port() const { return port_; }
  int http_port() const { return http_port_; }
  int metrics_port() const { return metrics_port_; }
  std::string conninfo(const std::string& user = "app", const std::string& password = "app-secret",
                       const std::string& dbname = "app") const;
  std::string log() const;
  // Rewrites the config file with `options` (same ports), for a reload to read.
  void rewrite_config(const PgmuxOptions& options);
  std::string config_path() const { return (dir_.path() / "pgmux.yaml").string(); }
  // The last `lines` lines of the log above debug level: evidence for a failure message.
  std::string log_tail(std::size_t lines = 40) const;
  // Whether pgmux is still up, or how it ended (a crash shows as a signal): context for a failure. Stops it
  // if it no longer accepts connections.
  std::string state();
  int stop(int signal);
  pid_t pid() const { return process_->pid(); }
  ChildProcess& process() { return *process_; }
  // Whether it has come up (a successor: says it listens) within `timeout`, and still runs.
  bool wait_listening(std::chrono::milliseconds timeout);
  // Waits for pgmux to exit by itself; the wait status, or -1 (and SIGKILL) on timeout.
  int wait_exit(std::chrono::milliseconds timeout);

 private:
  // Writes the config for the current ports and starts pgmux; false if it did not come up.
  bool start(const TestPostgres& postgres, const PgmuxOptions& options, bool takeover = false);
  void launch(const PgmuxOptions& options);
  void write_config(const PgmuxOptions& options);

  TempDir dir_;
  int port_ = 0;
  int http_port_ = 0;
  const TestPostgres& postgres_;
  int metrics_port_ = 0;
  bool takeover_ = false;
  std::unique_ptr<ChildProcess> process_;
};

// How many times `what` occurs in `text` (a log).
std::size_t count_of(const std::string& text, const std::string& what);

}  // namespace pgmux::test
