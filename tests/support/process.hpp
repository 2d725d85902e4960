// Test support: temp dirs, free ports, child processes with deadlines, and running commands as Postgres's
// user.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace pgmux::test {

using namespace std::chrono_literals;

// A directory under /tmp, removed with everything in it when the object goes.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_port();

// Runs a shell command, as Debian's `postgres` user when we are root (Postgres refuses to run as root).
// Returns the exit status; output goes to `output` if given.
int run_as_postgres(const std::string& command, std::string* output = nullptr);
int run_shell(const std::string& command, std::string* output = nullptr);
bool running_as_root();

// A child process (argv[0] is the program) with stderr and stdout sent to `log_file`.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& log_file);
  ~ChildProcess();  // SIGKILL if still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // Sends `signal` and waits up to `timeout` for the exit; returns the wait status, or -1 on timeout.
  int stop(int signal, std::chrono::milliseconds timeout);
  // SIGSTOP, then waits until every thread has stopped (the kernel tells the parent only then); false if
  // that takes longer than `timeout` or the process is gone.
  bool pause(std::chrono::milliseconds timeout);
  void resume();  // SIGCONT
  // Whether the main thread is blocked in system call `number` (SYS_... from <sys/syscall.h>), as
  // /proc/PID/syscall says.
  bool blocked_in_syscall(long number) const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// Stops a child (SIGSTOP) for as long as it lives, and lets it go on (SIGCONT) when it goes, however the test
// leaves. Throws std::runtime_error if the process did not stop within 10 s.
class PausedProcess {
 public:
  explicit PausedProcess(ChildProcess& process);
  ~PausedProcess() { process_.resume(); }
  PausedProcess(const PausedProcess&) = delete;
  PausedProcess& operator=(const PausedProcess&) = delete;

 private:
  ChildProcess& process_;
};

// Polls `ready` every 20 ms until it returns true or `timeout` passes.
template <class Predicate>
bool wait_until(Predicate ready, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    struct timespec pause {
      0, 20'000'000
    };
    nanosleep(&pause, nullptr);
  }
  return ready();
}

bool port_accepts(int port);
std::string read_file(const std::filesystem::path& path);

}  // namespace pgmux::test
