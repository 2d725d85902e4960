#!/usr/bin/env bash
# Installs what is needed, builds, and runs every test: unit tests and integration tests against a real
# PostgreSQL 15 that the tests start themselves (including Neon's serverless driver, run by node).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/deploy/install-deps.sh"
"$top/deploy/build.sh"
# Neon's serverless driver for the HTTP-SQL end-to-end test, at the version package-lock.json pins.
(cd "$top/tests/neon" && npm ci --no-audit --no-fund --loglevel=error)
cd "$top/build"
ctest --output-on-failure --timeout 1200 "$@"
