#!/usr/bin/env bash
# Builds pgmux and its tests with AddressSanitizer and UndefinedBehaviorSanitizer into build-sanitize/ and runs
# the unit, integration and reliability (short form) suites there. The pgmux processes the tests start are
# sanitized too; any report, from a test or from a pgmux, fails the run and is printed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/deploy/install-deps.sh"
"$top/tests/install-node-modules.sh"
cmake -S "$top" -B "$top/build-sanitize" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGMUX_SANITIZE=ON >/dev/null
cmake --build "$top/build-sanitize" -j"$(nproc)"

# Reports go to files (one per process), not stderr: a pgmux's stderr is a test's private log, and a report
# there would show only as a failed connection. abort_on_error makes a report end the process by SIGABRT,
# which the test harness names.
reports=$(mktemp -d "${TMPDIR:-/tmp}/pgmux-sanitize.XXXXXX")
trap 'rm -rf "$reports"' EXIT
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:log_path=$reports/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"
export LSAN_OPTIONS="suppressions=$top/tests/lsan.supp:print_suppressions=0"

status=0
# The benchmark smoke runs check the bench scripts, not pgmux: once, in tests/run.sh, is enough.
(cd "$top/build-sanitize" && ctest --output-on-failure -LE bench_smoke "$@") || status=$?
if compgen -G "$reports/*" >/dev/null; then
  for report in "$reports"/*; do
    echo "==== sanitizer report $(basename "$report")" >&2
    cat "$report" >&2
  done
  status=1
fi
exit "$status"
