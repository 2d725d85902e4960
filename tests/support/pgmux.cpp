// The real pgmux binary under test, started with a generated config on a free port.
#include "pgmux.hpp"

#include <sys/wait.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace pgmux::test {

Pgmux::Pgmux(const TestPostgres& postgres, PgmuxOptions options, const Pgmux& running, bool wait)
    : dir_("pgmux-test-mux-"),
      port_(running.port_),
      http_port_(running.http_port_),
      postgres_(postgres),
      metrics_port_(running.metrics_port_) {
  takeover_ = true;
  if (!wait)
    launch(options);
  else if (!start(postgres, options, true))
    throw std::runtime_error("pgmux --takeover did not start:\n" + log());
}

Pgmux::Pgmux(const TestPostgres& postgres, PgmuxOptions options)
    : dir_("pgmux-test-mux-"), postgres_(postgres) {
  // A free port is free when picked, not necessarily when pgmux binds it (another test's connection may take
  // it as its ephemeral port in between): pick again a few times if that is what stopped pgmux.
  for (int attempt = 1;; ++attempt) {
    port_ = free_port();
    http_port_ = options.http ? free_port() : 0;
    metrics_port_ = options.metrics ? free_port() : 0;
    if (start(postgres, options)) return;
    if (attempt == 3 || log().find("Address already in use") == std::string::npos)
      throw std::runtime_error("pgmux did not start:\n" + log());
  }
}

void Pgmux::rewrite_config(const PgmuxOptions& options) {
  write_config(options);
}

void Pgmux::write_config(const PgmuxOptions& options) {
  // Written aside and renamed, so that a reload never reads half a file.
  const TestPostgres& postgres = postgres_;
  auto config = dir_.path() / "pgmux.yaml";
  auto partial = dir_.path() / "pgmux.yaml.new";
  {
    std::ofstream out(partial);
    out << "listen:\n  postgres: \"127.0.0.1:" << port_ << "\"\n";
    if (http_port_) out << "  http: \"127.0.0.1:" << http_port_ << "\"\n";
    if (metrics_port_) out << "  metrics: \"127.0.0.1:" << metrics_port_ << "\"\n";
    out << "workers: 2\nlog_level: debug\nauth_type: " << options.auth_type << "\n"
        << "pool:\n  mode: " << options.pool_mode << "\n  default_pool_size: " << options.pool_size
        << "\n  max_client_conn: " << options.max_client_conn
        << "\n  query_wait_timeout: " << options.query_wait_timeout << "\n"
        << options.pool_yaml << "databases:\n"
        << "  app:\n    host: 127.0.0.1\n    port: " << postgres.port() << "\n"
        << "  forced:\n    host: 127.0.0.1\n    port: " << postgres.port()
        << "\n    dbname: app\n    user: app\n    password: app-secret\n"
        << options.databases_yaml << "users:\n"
        << "  - name: app\n    password: \"" << postgres.stored_secret("app") << "\"\n"
        << "  - name: md5user\n    password: \"" << postgres.stored_secret("md5user") << "\"\n"
        << "  - name: plainuser\n    password: plain-secret\n"
        << options.users_yaml << options.extra_yaml;
  }
  std::filesystem::rename(partial, config);
}

bool Pgmux::start(const TestPostgres&, const PgmuxOptions& options, bool takeover) {
  takeover_ = takeover;
  launch(options);
  return wait_listening(10s);
}

void Pgmux::launch(const PgmuxOptions& options) {
  write_config(options);
  std::vector<std::string> argv{PGMUX_BINARY, "--config", config_path()};
  if (takeover_) argv.push_back("--takeover");
  process_ = std::make_unique<ChildProcess>(argv, dir_.path() / "pgmux.log");
}

bool Pgmux::wait_listening(std::chrono::milliseconds timeout) {
  // A successor's port accepts already (its predecessor's sockets): wait for its own word instead. pgmux
  // opens its HTTP listener after the Postgres one: a test must not find the first open and post to the
  // second before it is.
  auto up = [&] {
    if (takeover_) return log().find(" listening on ") != std::string::npos;
    return port_accepts(port_) && (http_port_ == 0 || port_accepts(http_port_)) &&
           (metrics_port_ == 0 || port_accepts(metrics_port_));
  };
  return wait_until([&] { return up() || !process_->running(); }, timeout) && process_->running();
}

Pgmux::~Pgmux() {
  stop(SIGTERM);
}

int Pgmux::stop(int signal) {
  return process_->stop(signal, 10s);
}

int Pgmux::wait_exit(std::chrono::milliseconds timeout) {
  return process_->stop(0, timeout);  // signal 0 sends nothing: just wait
}

std::string Pgmux::conninfo(const std::string& user, const std::string& password,
                            const std::string& dbname) const {
  std::string s = "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + user + " dbname=" + dbname +
                  " connect_timeout=10 sslmode=disable";
  if (!password.empty()) s += " password=" + password;
  return s;
}

std::string Pgmux::log() const {
  return read_file(dir_.path() / "pgmux.log");
}

std::string Pgmux::log_tail(std::size_t lines) const {
  std::istringstream in(log());
  std::vector<std::string> kept;
  for (std::string line; std::getline(in, line);)
    if (line.find(" DEBUG ") == std::string::npos) kept.push_back(line);
  std::string out = "pgmux log (last " + std::to_string(lines) + " non-debug lines):";
  for (std::size_t i = kept.size() > lines ? kept.size() - lines : 0; i < kept.size(); ++i)
    out += "\n" + kept[i];
  return out;
}

std::string Pgmux::state() {
  if (port_accepts(port_)) return "pgmux is running";
  int status = stop(SIGTERM);
  if (status == -1) return "pgmux does not accept connections and did not stop on SIGTERM";
  if (WIFSIGNALED(status)) return "pgmux died of signal " + std::to_string(WTERMSIG(status));
  return "pgmux exited with status " + std::to_string(WEXITSTATUS(status));
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace pgmux::test
