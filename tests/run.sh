#!/usr/bin/env bash
# Installs what is needed, builds, and runs every test: unit tests and integration tests against a real
# PostgreSQL 15 that the tests start themselves (including Neon's serverless driver, run by node).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/deploy/install-deps.sh"
"$top/deploy/build.sh"
# The npm packages of the driver tests (tests/drivers/: node-postgres, postgres.js; tests/neon/: Neon's
# serverless driver), installed from their lock files only when missing or older than their manifests: npm
# records what it installed in node_modules/.package-lock.json.
for dir in "$top/tests/drivers" "$top/tests/neon"; do
  if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
     [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ] ||
     [ "$dir/package.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
done
cd "$top/build"
ctest --output-on-failure --timeout 1200 "$@"
