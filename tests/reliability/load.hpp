// What the reliability scenarios share: the short/long switch, many small-stack threads, and pgmux's own
// resource use read from /proc.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

namespace pgmux::test {

// PGMUX_RELIABILITY_LONG=1 selects the long form of every scenario (manual runs); unset, the CI form.
bool long_form();

// Built with AddressSanitizer (tests/sanitize.sh): pgmux runs a few times slower and its resident memory says
// nothing about leaks (freed blocks wait in ASan's quarantine), so the scenarios scale down and skip memory
// figures; LeakSanitizer checks leaks instead, at pgmux's exit.
bool sanitized();

// Raises this process's soft limit on open files towards `wanted` (capped by the hard limit), before pgmux is
// started so that it inherits the limit too. Returns the soft limit now in force.
long raise_fd_limit(long wanted);

// Runs `body(i)` for i in [0, count) on `count` threads with `stack_bytes` stacks each, and joins them all.
// Returns how many threads could not be created (their bodies did not run).
int run_on_threads(int count, const std::function<void(int)>& body, std::size_t stack_bytes = 256 * 1024);

// Open file descriptors of a process (entries of /proc/PID/fd), or -1 if it cannot be read.
int open_fds(pid_t pid);
// Resident set size of a process in KiB (VmRSS of /proc/PID/status), or -1.
long rss_kib(pid_t pid);

}  // namespace pgmux::test
