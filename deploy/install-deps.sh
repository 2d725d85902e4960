#!/usr/bin/env bash
# Installs what building and testing pgmux needs from Debian 12's packages; does nothing if all are there.
set -euo pipefail
# clang-14 and libclang-rt-14-dev (libFuzzer and the sanitizer runtimes) build the fuzz harnesses (tests/fuzz/).
# postgresql-contrib and postgresql-client-15 bring pgbench; python3-psycopg and python3-asyncpg serve the
# real-driver tests (tests/drivers/), which run them with Debian's /usr/bin/python3; the openssl CLI makes the
# throwaway certificates of bench/coldpath.sh (run by ctest in its smoke mode).
packages=(build-essential cmake pkg-config libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev libssl-dev
          libyaml-cpp-dev prometheus-cpp-dev catch2 libpq-dev postgresql-15 postgresql-client-15
          postgresql-contrib pgbouncer util-linux python3 python3-psycopg python3-asyncpg wrk bc openssl curl
          clang-14 libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node and npm run the driver tests (tests/drivers, tests/neon). They may come from elsewhere than Debian (a
# nodesource nodejs ships its own npm): Debian's are asked for only when absent. A node already on PATH is
# used as is (the driver declares node >= 19); otherwise Debian 12's nodejs, which is 18: npm ci then warns
# about the engine, and the HTTP mode needs only fetch, which node 18 has (not verified on 18 here).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
