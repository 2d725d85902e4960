#!/usr/bin/env bash
# Instructions pgmux executes per transaction, counted by callgrind: an A/B measure that machine noise cannot move.
#
#   bench/instructions.sh                          # pgmux with metrics on and off, and PgBouncer; pgbench -S
#   CONFIGS="on" MODE=extended bench/instructions.sh
#   LOGIN=1 bench/instructions.sh                  # a SCRAM login per transaction (pgbench -C)
#   CACHE=1 CONFIGS="on pgbouncer floor" bench/instructions.sh   # also simulated cache misses per transaction
#
# pgmux (workers: 1) runs under `valgrind --tool=callgrind` twice per config, once for TX_SHORT and once for
# TX_LONG transactions per client; the difference divided by the extra transactions is the cost of one
# transaction with start-up, logins and shutdown cancelled out. The config `pgbouncer` counts PgBouncer the same
# way (transaction mode, the same pool size): the user-space half of what the two cost per transaction. The config
# `floor` is bench/floor_relay.cpp (one recv and one send per message, no pooling). Prints a Markdown table (see
# bench/README.md).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
PGMUX_BIN=${PGMUX_BIN:-$top/build-bench/pgmux}
FLOOR_BIN=${FLOOR_BIN:-$(dirname "$PGMUX_BIN")/floor_relay}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PGBOUNCER_BIN=${PGBOUNCER_BIN:-/usr/sbin/pgbouncer}
CONFIGS=${CONFIGS:-"on off pgbouncer"}  # on: pgmux, metrics.enabled true (the default); off: false; pgbouncer; floor
MODE=${MODE:-simple}            # pgbench -M
LOGIN=${LOGIN:-}                # 1: pgbench -C, every transaction on a new connection with a SCRAM login
CLIENTS=${CLIENTS:-8}
TX_SHORT=${TX_SHORT:-200}       # transactions per client in the short run
TX_LONG=${TX_LONG:-1200}        # ... and in the long one
KEEP=${KEEP:-}                  # a directory: keep the callgrind files there (callgrind_annotate reads them)
CACHE=${CACHE:-}                # 1: callgrind's cache simulation too (first-level data and last-level misses)
export LC_ALL=C PGSSLMODE=disable

log() { printf '[instructions %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

command -v valgrind >/dev/null || die "valgrind not found (Debian package valgrind)"
case " $CONFIGS " in *" on "* | *" off "*)
  [ -x "$PGMUX_BIN" ] || die "no pgmux binary at $PGMUX_BIN (see bench/README.md, Set-up)" ;; esac
case " $CONFIGS " in *" pgbouncer "*)
  [ -x "$PGBOUNCER_BIN" ] || die "no PgBouncer at $PGBOUNCER_BIN (Debian package pgbouncer)" ;; esac
case " $CONFIGS " in *" floor "*)
  [ -x "$FLOOR_BIN" ] || die "no floor relay at $FLOOR_BIN (CMake target floor_relay)" ;; esac

work=$(mktemp -d)
pgmux_pid=""
cleanup() {
  set +e
  [ -n "$pgmux_pid" ] && kill -KILL "$pgmux_pid" 2>/dev/null
  [ -s "$work/pgbouncer.pid" ] && kill -KILL "$(cat "$work/pgbouncer.pid")" 2>/dev/null
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

# With LOGIN=1, TCP logins are SCRAM's, and both poolers hold Postgres's verifier of the role, as in
# bench/run.sh's S2.
auth=trust
[ -n "$LOGIN" ] && auth=scram-sha-256
export PGPASSWORD=bench-password
as_pg "$PG_BIN/initdb" -D "$work/data" -U postgres --auth-local=trust --auth-host="$auth" >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w -o "-p $pg_port -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories=$work -c fsync=off -c synchronous_commit=off" start >/dev/null
as_pg "$PG_BIN/psql" -X -q -h "$work" -p "$pg_port" -U postgres -c "ALTER ROLE postgres PASSWORD '$PGPASSWORD'"
verifier=$(as_pg "$PG_BIN/psql" -X -At -h "$work" -p "$pg_port" -U postgres \
  -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")
"$PG_BIN/pgbench" -i -q -s 1 -h 127.0.0.1 -p "$pg_port" -U postgres postgres >/dev/null 2>&1

write_config() {  # $1: on | off | pgbouncer | floor (which has none)
  [ "$1" = floor ] && return
  if [ "$1" = pgbouncer ]; then
    cat >"$work/pgbouncer.ini" <<INI
[databases]
postgres = host=127.0.0.1 port=$pg_port
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $mux_port
unix_socket_dir =
auth_type = $auth
auth_file = $work/userlist.txt
pool_mode = transaction
default_pool_size = 4
logfile = $work/pgbouncer.log
pidfile = $work/pgbouncer.pid
log_connections = 0
log_disconnections = 0
INI
    printf '"postgres" "%s"\n' "$verifier" >"$work/userlist.txt"
    [ "$(id -u)" -eq 0 ] && chown postgres "$work/pgbouncer.ini" "$work/userlist.txt"
    return
  fi
  cat >"$work/pgmux-$1.yaml" <<YAML
listen:
  postgres: "127.0.0.1:$mux_port"
workers: 1
log_level: warning
auth_type: $auth
pool:
  default_pool_size: 4
databases:
  postgres:
    port: $pg_port
users:
  - name: postgres
    password: "$verifier"
metrics:
  enabled: $([ "$1" = on ] && echo true || echo false)
YAML
}

# Prints what the pooler executed from start to exit while pgbench ran $2 transactions per client: instructions,
# and with CACHE=1 first-level data misses and last-level misses, space-separated.
count_instructions() {  # $1: config, $2: transactions per client
  local out="$work/callgrind.$1.$2"
  local valgrind=(valgrind --tool=callgrind --callgrind-out-file="$out")
  [ -n "$CACHE" ] && valgrind+=(--cache-sim=yes)
  if [ "$1" = pgbouncer ]; then  # it refuses to run as root; its pidfile names the process valgrind runs
    as_pg "${valgrind[@]}" "$PGBOUNCER_BIN" "$work/pgbouncer.ini" >>"$work/pgbouncer.out" 2>&1 &
  elif [ "$1" = floor ]; then
    "${valgrind[@]}" "$FLOOR_BIN" "$mux_port" "$pg_port" >>"$work/floor.log" 2>&1 &
    pgmux_pid=$!
  else
    "${valgrind[@]}" "$PGMUX_BIN" --config "$work/pgmux-$1.yaml" >>"$work/pgmux.log" 2>&1 &
    pgmux_pid=$!
  fi
  local waiter=$!
  local i
  for i in $(seq 300); do  # valgrind starts slowly: up to 30 s
    "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$mux_port" -U postgres -c 'SELECT 1' postgres >/dev/null 2>&1 && break
    [ "$i" -eq 300 ] && die "$1 under valgrind did not answer"
    sleep 0.1
  done
  "$PG_BIN/pgbench" -n -S -M "$MODE" ${LOGIN:+-C} -c "$CLIENTS" -j 1 -t "$2" -h 127.0.0.1 -p "$mux_port" -U postgres \
    postgres >"$work/pgbench.log" 2>&1 || { cat "$work/pgbench.log" >&2; die "pgbench failed"; }
  if [ "$1" = pgbouncer ]; then kill -INT "$(cat "$work/pgbouncer.pid")"; else kill -INT "$pgmux_pid"; fi
  wait "$waiter" || true
  pgmux_pid=""
  rm -f "$work/pgbouncer.pid"
  # The events line names the counters (Ir, and with the cache simulation Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw).
  awk '/^events:/ { for (i = 2; i <= NF; i++) col[$i] = i }
       /^summary:/ { if ("D1mr" in col) print $col["Ir"], $col["D1mr"] + $col["D1mw"], $col["ILmr"] + $col["DLmr"] + $col["DLmw"]
                     else print $col["Ir"] }' "$out"
}

title="instructions per transaction (pgbench -S -M $MODE${LOGIN:+ -C, a SCRAM login each}, $CLIENTS clients, one thread)"
if [ -n "$CACHE" ]; then
  printf '| pooler | %s | first-level data misses | last-level misses |\n|---|---|---|---|\n' "$title"
else
  printf '| pooler | %s |\n|---|---|\n' "$title"
fi
for config in $CONFIGS; do
  write_config "$config"
  read -r -a short <<<"$(count_instructions "$config" "$TX_SHORT")"
  read -r -a long <<<"$(count_instructions "$config" "$TX_LONG")"
  row=""
  for i in "${!long[@]}"; do row+=" $(((long[i] - short[i]) / (CLIENTS * (TX_LONG - TX_SHORT)))) |"; done
  log "$config: ${short[0]} instructions for $TX_SHORT tx/client, ${long[0]} for $TX_LONG"
  case $config in
    on | off) name="pgmux, metrics $config" ;;
    pgbouncer) name="PgBouncer $("$PGBOUNCER_BIN" --version | awk 'NR == 1 { print $2 }')" ;;
    floor) name="floor relay (no pooling)" ;;
  esac
  printf '| %s |%s\n' "$name" "$row"
done
