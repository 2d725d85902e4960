// Test support: temp dirs, free ports, child processes with deadlines, and running commands as Postgres's
// user.
#include "process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace pgmux::test {

TempDir::TempDir(const std::string& prefix) {
  std::string pattern = "/tmp/" + prefix + "XXXXXX";
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
  if (running_as_root()) {
    // Postgres runs as `postgres` and must own its data directory's parent to create files in it.
    if (passwd* pw = getpwnam("postgres")) {
      if (chown(path_.c_str(), pw->pw_uid, pw->pw_gid) != 0) throw std::runtime_error("chown failed");
    }
  }
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

bool running_as_root() {
  return geteuid() == 0;
}

int run_shell(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return -1;
  char chunk[4096];
  std::string collected;
  while (size_t n = fread(chunk, 1, sizeof chunk, pipe)) collected.append(chunk, n);
  int status = pclose(pipe);
  if (output) *output = collected;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int run_as_postgres(const std::string& command, std::string* output) {
  if (!running_as_root()) return run_shell(command, output);
  std::string quoted;
  for (char c : command) {
    if (c == '\'')
      quoted += "'\\''";
    else
      quoted += c;
  }
  return run_shell("runuser -u postgres -- sh -c '" + quoted + "'", output);
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& log_file) {
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
}

ChildProcess::~ChildProcess() {
  if (!reaped_ && pid_ > 0) stop(SIGKILL, 5s);
}

bool ChildProcess::running() {
  if (reaped_) return false;
  if (waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
  return !reaped_;
}

int ChildProcess::stop(int signal, std::chrono::milliseconds timeout) {
  if (reaped_) return status_;
  kill(pid_, signal);
  // A process a test left stopped would act on nothing but SIGKILL.
  if (signal != 0 && signal != SIGKILL) kill(pid_, SIGCONT);
  if (wait_until([&] { return !running(); }, timeout)) return status_;
  kill(pid_, SIGKILL);
  waitpid(pid_, &status_, 0);
  reaped_ = true;
  return -1;
}

bool ChildProcess::pause(std::chrono::milliseconds timeout) {
  if (!running() || kill(pid_, SIGSTOP) != 0) return false;
  // WSTOPPED without WEXITED: an exit stays for running() to reap.
  return wait_until(
      [&] {
        siginfo_t info{};
        return waitid(P_PID, static_cast<id_t>(pid_), &info, WSTOPPED | WNOHANG) == 0 && info.si_pid == pid_;
      },
      timeout);
}

void ChildProcess::resume() {
  if (!reaped_) kill(pid_, SIGCONT);
}

PausedProcess::PausedProcess(ChildProcess& process) : process_(process) {
  if (!process_.pause(10s)) {
    process_.resume();
    throw std::runtime_error("pid " + std::to_string(process_.pid()) + " did not stop on SIGSTOP");
  }
}

bool ChildProcess::blocked_in_syscall(long number) const {
  // The first field is the number of the system call the thread sleeps in ("running" if it does not).
  std::ifstream in("/proc/" + std::to_string(pid_) + "/syscall");
  long current = -1;
  return static_cast<bool>(in >> current) && current == number;
}

bool port_accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace pgmux::test
