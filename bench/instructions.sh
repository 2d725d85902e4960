#!/usr/bin/env bash
# Instructions pgmux executes per transaction, counted by callgrind: an A/B measure that machine noise cannot move.
#
#   bench/instructions.sh                          # pgmux with metrics on and off, pgbench -S
#   CONFIGS="on" MODE=extended bench/instructions.sh
#
# pgmux (workers: 1) runs under `valgrind --tool=callgrind` twice per config, once for TX_SHORT and once for
# TX_LONG transactions per client; the difference divided by the extra transactions is the cost of one
# transaction with start-up, logins and shutdown cancelled out. Prints a Markdown table (see bench/README.md).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
PGMUX_BIN=${PGMUX_BIN:-$top/build-bench/pgmux}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
CONFIGS=${CONFIGS:-"on off"}    # on: metrics.enabled true (the default); off: false
MODE=${MODE:-simple}            # pgbench -M
CLIENTS=${CLIENTS:-8}
TX_SHORT=${TX_SHORT:-200}       # transactions per client in the short run
TX_LONG=${TX_LONG:-1200}        # ... and in the long one
KEEP=${KEEP:-}                  # a directory: keep the callgrind files there (callgrind_annotate reads them)
export LC_ALL=C PGSSLMODE=disable

log() { printf '[instructions %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

command -v valgrind >/dev/null || die "valgrind not found (Debian package valgrind)"
[ -x "$PGMUX_BIN" ] || die "no pgmux binary at $PGMUX_BIN (see bench/README.md, Set-up)"

work=$(mktemp -d)
pgmux_pid=""
cleanup() {
  set +e
  [ -n "$pgmux_pid" ] && kill -KILL "$pgmux_pid" 2>/dev/null
  [ -f "$work/data/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1
  [ -n "$KEEP" ] && mkdir -p "$KEEP" && cp "$work"/callgrind.* "$KEEP"/ 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] && chown postgres "$work"

free_port() {
  local p=$((20000 + RANDOM % 9000))
  while [ -n "$(ss -Htan "( sport = :$p )")" ] || [ "$p" = "${1:-}" ]; do p=$((p + 1)); done
  echo "$p"
}
pg_port=$(free_port)
mux_port=$(free_port "$pg_port")

as_pg "$PG_BIN/initdb" -D "$work/data" -U postgres --auth=trust >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w \
  -o "-p $pg_port -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off" start >/dev/null
"$PG_BIN/pgbench" -i -q -s 1 -h 127.0.0.1 -p "$pg_port" -U postgres postgres >/dev/null 2>&1

write_config() {  # $1: on | off
  cat >"$work/pgmux-$1.yaml" <<YAML
listen:
  postgres: "127.0.0.1:$mux_port"
workers: 1
log_level: warning
auth_type: trust
pool:
  default_pool_size: 4
databases:
  postgres:
    port: $pg_port
users:
  - name: postgres
    password: unused
metrics:
  enabled: $([ "$1" = on ] && echo true || echo false)
YAML
}

# Prints the instructions pgmux executed from start to exit while pgbench ran $2 transactions per client.
count_instructions() {  # $1: config, $2: transactions per client
  local out="$work/callgrind.$1.$2"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$PGMUX_BIN" --config "$work/pgmux-$1.yaml" \
    >>"$work/pgmux.log" 2>&1 &
  pgmux_pid=$!
  local i
  for i in $(seq 300); do  # valgrind starts slowly: up to 30 s
    "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$mux_port" -U postgres -c 'SELECT 1' postgres >/dev/null 2>&1 && break
    [ "$i" -eq 300 ] && die "pgmux under valgrind did not answer"
    sleep 0.1
  done
  "$PG_BIN/pgbench" -n -S -M "$MODE" -c "$CLIENTS" -j 1 -t "$2" -h 127.0.0.1 -p "$mux_port" -U postgres \
    postgres >"$work/pgbench.log" 2>&1 || { cat "$work/pgbench.log" >&2; die "pgbench failed"; }
  kill -INT "$pgmux_pid"
  wait "$pgmux_pid" || true
  pgmux_pid=""
  awk '/^summary:/ { print $2 }' "$out"
}

printf '| metrics | instructions per transaction (pgbench -S -M %s, %d clients, workers: 1) |\n' "$MODE" "$CLIENTS"
printf '|---|---|\n'
for config in $CONFIGS; do
  write_config "$config"
  short=$(count_instructions "$config" "$TX_SHORT")
  long=$(count_instructions "$config" "$TX_LONG")
  per_tx=$(((long - short) / (CLIENTS * (TX_LONG - TX_SHORT))))
  log "metrics $config: $short instructions for $TX_SHORT tx/client, $long for $TX_LONG"
  printf '| %s | %d |\n' "$config" "$per_tx"
done
