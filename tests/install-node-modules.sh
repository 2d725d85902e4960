#!/usr/bin/env bash
# Installs the npm packages of the driver tests (tests/drivers/: node-postgres, postgres.js; tests/neon/: Neon's
# serverless driver) from their lock files, only when missing or older than their manifests: npm records what
# it installed in node_modules/.package-lock.json.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
for dir in "$top/tests/drivers" "$top/tests/neon"; do
  if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
     [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ] ||
     [ "$dir/package.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
done
