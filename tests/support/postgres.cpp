// A throwaway PostgreSQL 15 for tests: initdb in a temp dir, a free port, roles for every auth method, torn
// down after.
#include "postgres.hpp"

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace pgmux::test {

TestPostgres::TestPostgres(TestPostgresOptions options) : dir_("pgmux-test-pg-"), port_(free_port()) {
  data_ = (dir_.path() / "data").string();
  log_ = (dir_.path() / "postgres.log").string();
  std::string out;
  if (run_as_postgres(
          bin_ + "/initdb -D " + data_ + " -U postgres -E UTF8 --locale=C --auth-local=trust >/dev/null",
          &out) != 0)
    throw std::runtime_error("initdb failed: " + out);
  {
    std::ofstream conf(data_ + "/postgresql.conf", std::ios::app);
    conf << "port = " << port_ << "\n"
         << "listen_addresses = '127.0.0.1'\n"
         << "unix_socket_directories = '" << dir_.path().string() << "'\n"
         << "max_connections = 300\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
         << "shared_buffers = 64MB\n";
    if (!options.ssl_cert.empty())
      conf << "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n";
    std::ofstream hba(data_ + "/pg_hba.conf", std::ios::trunc);
    hba << "local all all trust\n";
    if (!options.hba.empty())
      hba << options.hba << "\n";
    else
      hba << "host all md5user 127.0.0.1/32 md5\n"
          << "host all plainuser 127.0.0.1/32 password\n"
          << "host all all 127.0.0.1/32 scram-sha-256\n";
  }
  if (!options.ssl_cert.empty() &&
      run_as_postgres("cp " + options.ssl_cert + " " + data_ + "/server.crt && cp " + options.ssl_key + " " +
                          data_ + "/server.key && chmod 600 " + data_ + "/server.key",
                      &out) != 0)
    throw std::runtime_error("copying the TLS certificate for postgres failed: " + out);
  start();
  try {
    psql("CREATE ROLE app LOGIN PASSWORD 'app-secret'");
    psql("SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN PASSWORD 'md5-secret'");
    psql("CREATE ROLE plainuser LOGIN PASSWORD 'plain-secret'");
    psql("CREATE DATABASE app OWNER app");
    psql("GRANT ALL ON DATABASE app TO md5user, plainuser");
  } catch (...) {
    // The destructor will not run for a half-built object: stop the server before the directory goes.
    run_as_postgres(bin_ + "/pg_ctl -D " + data_ + " -m immediate -w stop >/dev/null 2>&1");
    throw;
  }
}

TestPostgres::~TestPostgres() {
  run_as_postgres(bin_ + "/pg_ctl -D " + data_ + " -m immediate -w stop >/dev/null 2>&1");
}

void TestPostgres::start() {
  std::string out;
  if (run_as_postgres(bin_ + "/pg_ctl -D " + data_ + " -l " + log_ + " -w -t 60 start", &out) != 0)
    throw std::runtime_error("postgres did not start: " + out + read_file(log_));
}

void TestPostgres::stop() {
  run_as_postgres(bin_ + "/pg_ctl -D " + data_ + " -m fast -w stop >/dev/null");
}

void TestPostgres::restart() {
  std::string out;
  if (run_as_postgres(bin_ + "/pg_ctl -D " + data_ + " -l " + log_ + " -m fast -w -t 60 restart", &out) != 0)
    throw std::runtime_error("postgres did not restart: " + out);
}

bool TestPostgres::start_after_crash(std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        std::string out;
        return run_as_postgres(
                   bin_ + "/pg_ctl -D " + data_ + " -l " + log_ + " -w -t 20 start >/dev/null 2>&1", &out) ==
               0;
      },
      timeout);
}

pid_t TestPostgres::postmaster_pid() const {
  std::ifstream file(data_ + "/postmaster.pid");
  pid_t pid = -1;
  if (!(file >> pid) || pid <= 0 || kill(pid, 0) != 0) return -1;
  return pid;
}

std::vector<pid_t> TestPostgres::server_children() const {
  std::vector<pid_t> children;
  pid_t parent = postmaster_pid();
  if (parent <= 0) return children;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    // /proc/PID/stat: pid (comm) state ppid ...; comm may hold spaces, so read after the last ')'.
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    std::string state;
    pid_t ppid = 0;
    if (rest >> state >> ppid && ppid == parent) children.push_back(std::stoi(name));
  }
  return children;
}

std::string TestPostgres::conninfo(const std::string& user, const std::string& password,
                                   const std::string& dbname) const {
  std::string s = "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + user + " dbname=" + dbname +
                  " connect_timeout=10";
  if (!password.empty()) s += " password=" + password;
  return s;
}

std::string TestPostgres::psql(const std::string& sql) const {
  std::string out;
  std::string quoted;
  for (char c : sql) quoted += c == '"' ? std::string("\\\"") : std::string(1, c);
  if (run_as_postgres("psql -X -At -v ON_ERROR_STOP=1 -h " + dir_.path().string() + " -p " +
                          std::to_string(port_) + " -U postgres -d postgres -c \"" + quoted + "\"",
                      &out) != 0)
    throw std::runtime_error("psql failed: " + sql + ": " + out);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string TestPostgres::stored_secret(const std::string& role) const {
  return psql("SELECT rolpassword FROM pg_authid WHERE rolname = '" + role + "'");
}

TestPostgres& TestPostgres::shared() {
  static TestPostgres instance;
  return instance;
}

}  // namespace pgmux::test
