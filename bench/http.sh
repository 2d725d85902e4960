#!/usr/bin/env bash
# S7: pgmux's HTTP-SQL endpoint against its own wire protocol, in one run. The same SELECT by primary key as
# pgbench -S, as an HTTP POST per query with keep-alive (wrk), interleaved with pgbench -S through the same
# pgmux. Reports requests or transactions per second, latency p50/p99 and pgmux's CPU per 10,000.
#   bench/http.sh                      # 3 repetitions x 10 s, 32 connections, pool 20
#   REPS=5 SECS=20 CLIENTS=64 bench/http.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
REPS=${REPS:-3} SECS=${SECS:-10} CLIENTS=${CLIENTS:-32} POOL=${POOL:-20} SCALE=${SCALE:-10} JOBS=${JOBS:-2}
PGMUX_BIN=${PGMUX_BIN:-$top/build/pgmux}
PG_BIN=/usr/lib/postgresql/15/bin
export PGPASSWORD=bench-password

log() { echo "[http-bench $(date +%T)] $*" >&2; }
die() { log "$*"; exit 1; }
command -v wrk >/dev/null || die "wrk is missing: apt-get install wrk (deploy/install-deps.sh installs it)"
[ -x "$PGMUX_BIN" ] || die "no pgmux at $PGMUX_BIN: build it first (deploy/build.sh)"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

work=$(mktemp -d /tmp/pgmux-http-bench-XXXXXX)
pgmux_pid=""
cleanup() {
  set +e
  [ -n "$pgmux_pid" ] && kill -INT "$pgmux_pid" 2>/dev/null && wait "$pgmux_pid" 2>/dev/null
  as_pg "$PG_BIN/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
[ "$(id -u)" -eq 0 ] && chown postgres "$work"

PGPORT=$(free_port) PGMUX_PORT=$(free_port) HTTP_PORT=$(free_port)
as_pg "$PG_BIN/initdb" -D "$work/data" -U postgres -E UTF8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
cat >>"$work/data/postgresql.conf" <<CONF
port = $PGPORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
shared_buffers = 256MB
fsync = off
synchronous_commit = off
CONF
as_pg "$PG_BIN/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w start >/dev/null || die "PostgreSQL did not start"
psql_admin() { as_pg "$PG_BIN/psql" -X -q -h "$work" -p "$PGPORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
psql_admin -c "CREATE ROLE bench LOGIN PASSWORD '$PGPASSWORD'" -c "CREATE DATABASE bench OWNER bench"
"$PG_BIN/pgbench" -h 127.0.0.1 -p "$PGPORT" -U bench -i -s "$SCALE" -q bench >/dev/null 2>&1 || die "pgbench -i failed"
verifier=$(psql_admin -At -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'bench'")

cat >"$work/pgmux.yaml" <<YAML
listen:
  postgres: "127.0.0.1:$PGMUX_PORT"
  http: "127.0.0.1:$HTTP_PORT"
log_level: warning
pool:
  mode: transaction
  default_pool_size: $POOL
databases:
  bench:
    host: 127.0.0.1
    port: $PGPORT
users:
  - name: bench
    password: "$verifier"
YAML
"$PGMUX_BIN" --config "$work/pgmux.yaml" >"$work/pgmux.log" 2>&1 &
pgmux_pid=$!
for _ in $(seq 100); do
  "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PGMUX_PORT" -U bench -d bench -c 'SELECT 1' >/dev/null 2>&1 && break
  sleep 0.1
done
export PGMUX_URL="postgresql://bench:$PGPASSWORD@127.0.0.1/bench" ACCOUNTS=$((SCALE * 100000))
log "pgmux $("$PGMUX_BIN" --version), pool $POOL, $CLIENTS connections, $REPS x $SECS s"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$pgmux_pid/stat"; }
# One measured run; prints: kind tps p50_ms p99_ms cpu_s_per_10k verdict (ok, or what failed, no spaces)
run_wire() {
  local before after out
  before=$(cpu_ticks)
  out=$("$PG_BIN/pgbench" -n -h 127.0.0.1 -p "$PGMUX_PORT" -U bench -S -c "$CLIENTS" -j "$JOBS" -T "$SECS" \
    -l --log-prefix="$work/tx" bench 2>&1)
  after=$(cpu_ticks)
  local tx tps lat
  tx=$(echo "$out" | awk '/actually processed/ {split($NF, a, "/"); print a[1]}')
  tps=$(echo "$out" | awk '/^tps/ {print $3}')
  if [ "${tx:-0}" -eq 0 ]; then rm -f "$work"/tx.*; echo "wire 0 0 0 0 no-transactions"; return; fi
  lat=$(cat "$work"/tx.* | awk '{print $3}' | sort -n | awk '{v[NR]=$1} END {printf "%.2f %.2f", v[int(NR*0.5)]/1000, v[int(NR*0.99)]/1000}')
  rm -f "$work"/tx.*
  local verdict=ok
  echo "$out" | grep -qiE 'error|abort' && verdict=pgbench-errors
  echo "wire $tps $lat $(echo "($after - $before) / 100 * 10000 / $tx" | bc -l) $verdict"
}
ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v); print v} else {sub(/s/,"",v); print v*1000}}'; }
run_http() {
  local before after out
  before=$(cpu_ticks)
  out=$(wrk -t "$JOBS" -c "$CLIENTS" -d "${SECS}s" --latency -s "$here/http_select.lua" \
    "http://127.0.0.1:$HTTP_PORT/sql" 2>&1)
  after=$(cpu_ticks)
  local requests rps p50 p99 errors
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1 == "50%" {print $2}' | ms)
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}' | ms)
  errors=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  if [ "${requests:-0}" -eq 0 ]; then echo "http 0 0 0 0 no-requests"; return; fi
  local verdict=ok
  [ -n "$errors" ] && verdict=non-2xx:$errors
  echo "$out" | grep -q 'Socket errors' && verdict=socket-errors
  echo "http $rps $p50 $p99 $(echo "($after - $before) / 100 * 10000 / $requests" | bc -l) $verdict"
}

results=()
for rep in $(seq "$REPS"); do
  for kind in wire http; do
    line=$(run_$kind)
    log "rep $rep: $line"
    results+=("$line")
  done
done

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
echo "| path | TPS or requests/s | p50 ms | p99 ms | pgmux CPU s / 10k |"
echo "|---|---:|---:|---:|---:|"
for kind in wire http; do
  rows=$(printf '%s\n' "${results[@]}" | awk -v k="$kind" '$1 == k')
  printf '| %s | %.0f | %.2f | %.2f | %.3f |\n' \
    "$([ "$kind" = wire ] && echo 'wire protocol, pgbench -S' || echo 'HTTP POST /sql, wrk keep-alive')" \
    "$(echo "$rows" | awk '{print $2}' | median)" "$(echo "$rows" | awk '{print $3}' | median)" \
    "$(echo "$rows" | awk '{print $4}' | median)" "$(echo "$rows" | awk '{print $5}' | median)"
done
failed=$(printf '%s\n' "${results[@]}" | awk '$6 != "ok" {print "  " $1 ": " $6}')
[ -z "$failed" ] || die "runs that failed:"$'\n'"$failed"
