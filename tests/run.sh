#!/usr/bin/env bash
# Installs what is needed, builds, and runs every test: unit tests and integration tests against a real
# PostgreSQL 15 that the tests start themselves.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/deploy/install-deps.sh"
"$top/deploy/build.sh"
# The driver tests' npm packages (tests/drivers/), installed from the lock file only when missing or older
# than its manifests: npm records what it installed in node_modules/.package-lock.json.
drivers="$top/tests/drivers"
if [ ! -f "$drivers/node_modules/.package-lock.json" ] ||
   [ "$drivers/package-lock.json" -nt "$drivers/node_modules/.package-lock.json" ] ||
   [ "$drivers/package.json" -nt "$drivers/node_modules/.package-lock.json" ]; then
  (cd "$drivers" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
cd "$top/build"
ctest --output-on-failure --timeout 1200 "$@"
