// The short/long switch, small-stack threads, and /proc readings for the reliability scenarios.
#include "load.hpp"

#include <pthread.h>
#include <sys/resource.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

namespace pgmux::test {

bool long_form() {
  const char* value = std::getenv("PGMUX_RELIABILITY_LONG");
  return value && *value && std::string(value) != "0";
}

bool sanitized() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#else
  return false;
#endif
}

long raise_fd_limit(long wanted) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
  if (limit.rlim_cur != RLIM_INFINITY && static_cast<long>(limit.rlim_cur) < wanted) {
    rlim_t target = static_cast<rlim_t>(wanted);
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < target) target = limit.rlim_max;
    limit.rlim_cur = target;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur == RLIM_INFINITY ? wanted : static_cast<long>(limit.rlim_cur);
}

namespace {

struct ThreadStart {
  const std::function<void(int)>* body;
  int index;
};

void* thread_main(void* arg) {
  auto* start = static_cast<ThreadStart*>(arg);
  (*start->body)(start->index);
  return nullptr;
}

}  // namespace

int run_on_threads(int count, const std::function<void(int)>& body, std::size_t stack_bytes) {
  // std::thread cannot choose its stack size; a thousand default 8 MiB stacks is more address space and
  // page-table churn than a two-core CI machine needs for clients that mostly wait on sockets.
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stack_bytes);
  std::vector<ThreadStart> starts(count);
  std::vector<pthread_t> threads;
  threads.reserve(count);
  int not_started = 0;
  for (int i = 0; i < count; ++i) {
    starts[i] = {&body, i};
    pthread_t thread;
    if (pthread_create(&thread, &attr, thread_main, &starts[i]) == 0)
      threads.push_back(thread);
    else
      ++not_started;
  }
  pthread_attr_destroy(&attr);
  for (pthread_t thread : threads) pthread_join(thread, nullptr);
  return not_started;
}

int open_fds(pid_t pid) {
  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec);
  if (ec) return -1;
  int n = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) return -1;
    ++n;
  }
  return n;
}

long rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      long kib = -1;
      status >> kib;
      return kib;
    }
    std::string rest;
    std::getline(status, rest);
  }
  return -1;
}

}  // namespace pgmux::test
