#!/usr/bin/env bash
# Installs what is needed, builds, and runs every test: unit tests and integration tests against a real
# PostgreSQL 15 that the tests start themselves (including Neon's serverless driver, run by node).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/deploy/install-deps.sh"
"$top/deploy/build.sh"
"$top/tests/install-node-modules.sh"
cd "$top/build"
ctest --output-on-failure --timeout 1200 "$@"
