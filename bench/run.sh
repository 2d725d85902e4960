#!/usr/bin/env bash
# Benchmarks pgmux against direct PostgreSQL 15 and PgBouncer 1.18 on loopback (see bench/README.md).
#
#   bench/run.sh                                  # defaults: REPS=3 SECS=10, all scenarios, idle 1000 and 10000
#   QUICK=1 bench/run.sh                          # smoke run: 1 repetition of 5 s, idle 1000 only
#   SCENARIOS="S1 S3" REPS=5 SECS=20 POOL=20 bench/run.sh
#   METRICS=1 bench/run.sh                        # pgmux with metrics on vs off (metrics.enabled: false)
#
# Markdown tables go to stdout, progress to stderr, every measurement to the TSV at $OUT. Exits non-zero if a run
# failed (no transactions, failed transactions, aborted clients, pgbench errors, idle clients not established).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)

# ---- knobs ------------------------------------------------------------------------------------------------------
REPS=${REPS:-3}
SECS=${SECS:-10}
if [ -n "${QUICK:-}" ] && [ "${QUICK}" != 0 ]; then
  REPS=1 SECS=5
  IDLE_CLIENTS=${IDLE_CLIENTS-1000}
fi
if [ -n "${METRICS:-}" ] && [ "${METRICS}" != 0 ]; then
  # What counting costs: the same pgmux with and without metrics.enabled, alternating, in one run.
  SCENARIOS=${SCENARIOS:-"S1 S4 S6"}
  TARGETS=${TARGETS:-"pgmux pgmux-nometrics"}
  IDLE_CLIENTS=${IDLE_CLIENTS-}
fi
SCENARIOS=${SCENARIOS:-"S1 S2 S3 S4 S5 S6"}
# floor: bench/floor_relay.cpp, the cheapest relay possible (no pooling), the least any proxy costs per transaction;
# floor-mt: the same with one thread per pgmux worker, what using several cores costs by itself.
TARGETS=${TARGETS:-"direct pgbouncer pgmux floor"}   # also pgmux-nometrics: pgmux with metrics.enabled: false
IDLE_CLIENTS=${IDLE_CLIENTS-"1000 10000"}   # empty string skips the idle-memory phase
POOL=${POOL:-20}                            # backend connections per pooler (both poolers get the same)
CLIENTS=${CLIENTS:-32}                      # clients in S1, S2, S4, S5, S6
MANY_CLIENTS=${MANY_CLIENTS:-1000}          # clients in S3
JOBS=${JOBS:-2}                             # pgbench threads (one per core on the reference machine)
SCALE=${SCALE:-10}                          # pgbench -i scale: 1,000,000 accounts, fits in shared_buffers
PGMUX_WORKERS=${PGMUX_WORKERS:-0}           # 0 = pgmux's default, one event loop per core
PGMUX_BIN=${PGMUX_BIN:-$top/build-bench/pgmux}
FLOOR_BIN=${FLOOR_BIN:-$(dirname "$PGMUX_BIN")/floor_relay}   # built beside pgmux (CMake target floor_relay)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PGBOUNCER_BIN=${PGBOUNCER_BIN:-/usr/sbin/pgbouncer}
OUT=${OUT:-$here/results/run-$(date +%Y%m%d-%H%M%S).tsv}   # bench/results/ is git-ignored
KEEP_OUTPUT=${KEEP_OUTPUT:-}                # a directory: keep each run's pgbench output and the server logs there
IDLE_CONNECT_SECS=${IDLE_CONNECT_SECS:-300} # give up waiting for idle clients to connect after this
# Ports: empty = pick a free one on loopback.
PGPORT=${PGPORT:-} BOUNCER_PORT=${BOUNCER_PORT:-} PGMUX_PORT=${PGMUX_PORT:-} FLOOR_PORT=${FLOOR_PORT:-}

export PGPASSWORD=bench-password PGSSLMODE=disable PGCONNECT_TIMEOUT=10
# No TLS anywhere: every target gets the same plain TCP login (TLS logins are bench/coldpath.sh's subject).
export LC_ALL=C   # decimal points and numeric sorting the same whatever the caller's locale

# ---- state for cleanup ------------------------------------------------------------------------------------------
work=""          # temp dir: Postgres data, PgBouncer files, pgmux config, pgbench logs
pgmux_pid=""
floor_pid=""
children=()      # background `timeout pgbench` processes still running
hz=$(getconf CLK_TCK)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Postgres refuses to run as root and PgBouncer should not: run both as Debian's postgres user then.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# Stop a process we started and wait for it, escalating to SIGKILL if it lingers.
stop_pid() {
  local pid=$1 sig=${2:-TERM}
  [ -n "$pid" ] || return 0
  kill -"$sig" "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  set +e   # every step runs, whatever happened to the one before
  trap '' INT TERM
  local p
  for p in "${children[@]}"; do stop_pid "$p"; done
  stop_pgmux
  stop_floor
  stop_pgbouncer
  if [ -n "$work" ] && [ -f "$work/data/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$work/data" -m immediate -w -t 20 stop >/dev/null 2>&1
  fi
  if [ -n "$work" ] && [ -n "$KEEP_OUTPUT" ]; then
    mkdir -p "$KEEP_OUTPUT" && cp "$work"/*.log "$work"/*.ini "$work"/*.yaml "$KEEP_OUTPUT"/ 2>/dev/null
  fi
  [ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT
# A trapped signal interrupts `wait`, so Ctrl-C takes effect at once even mid-run; EXIT then cleans up.
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# ---- checks and set-up ------------------------------------------------------------------------------------------
check_tools() {
  local t
  for t in "$PG_BIN/initdb" "$PG_BIN/pg_ctl" "$PG_BIN/pgbench" "$PG_BIN/psql" "$PGBOUNCER_BIN"; do
    [ -x "$t" ] || die "$t not found: run ./deploy/install-deps.sh (README set-up)"
  done
  for t in ss timeout awk sort getconf; do command -v "$t" >/dev/null || die "$t not found"; done
  [ "$(id -u)" -ne 0 ] || id postgres >/dev/null 2>&1 || die "running as root needs the postgres user (postgresql-15)"
  if [ ! -x "$PGMUX_BIN" ]; then
    log "building pgmux into $top/build-bench"
    cmake -S "$top" -B "$top/build-bench" >/dev/null
    cmake --build "$top/build-bench" -j"$(nproc)" --target pgmux >/dev/null
  fi
  [ -x "$PGMUX_BIN" ] || die "no pgmux binary at $PGMUX_BIN"
  if [[ " $TARGETS " == *" floor"* ]] && [ ! -x "$FLOOR_BIN" ]; then
    log "building the floor relay into $(dirname "$FLOOR_BIN")"
    cmake --build "$(dirname "$FLOOR_BIN")" --target floor_relay >/dev/null ||
      die "no floor relay at $FLOOR_BIN (CMake target floor_relay)"
  fi
}

# Thousands of sockets per process: lift the soft fd limit to the hard one (children inherit it).
raise_fd_limit() {
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  log "open-file limit $(ulimit -n)"
}

port_in_use() { [ -n "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]; }

# A free loopback port below the ephemeral range, so pgbench's own outgoing ports never collide with it.
free_port() {
  local p=$((20000 + RANDOM % 9000)) taken=" $* "
  while port_in_use "$p" || [[ $taken == *" $p "* ]]; do p=$((p + 1)); done
  echo "$p"
}

pick_ports() {
  [ -n "$PGPORT" ] || PGPORT=$(free_port)
  [ -n "$BOUNCER_PORT" ] || BOUNCER_PORT=$(free_port "$PGPORT")
  [ -n "$PGMUX_PORT" ] || PGMUX_PORT=$(free_port "$PGPORT" "$BOUNCER_PORT")
  [ -n "$FLOOR_PORT" ] || FLOOR_PORT=$(free_port "$PGPORT" "$BOUNCER_PORT" "$PGMUX_PORT")
  local p
  for p in "$PGPORT" "$BOUNCER_PORT" "$PGMUX_PORT" "$FLOOR_PORT"; do port_in_use "$p" && die "port $p is in use"; done
  log "ports: postgres $PGPORT, pgbouncer $BOUNCER_PORT, pgmux $PGMUX_PORT, floor relay $FLOOR_PORT"
}

max_idle() { local m=0 n; for n in $IDLE_CLIENTS; do [ "$n" -gt "$m" ] && m=$n; done; echo "$m"; }

# Both poolers must accept the largest client count any phase asks for.
client_cap() { local m; m=$(max_idle); [ "$m" -lt "$MANY_CLIENTS" ] && m=$MANY_CLIENTS; echo $((m + 100)); }

start_postgres() {
  # Room for both pools, the direct runs' clients and a few psql sessions; far below S3's 1000 on purpose.
  local maxconn=$((2 * POOL + CLIENTS + 40))
  [ "$maxconn" -lt 100 ] && maxconn=100
  as_pg "$PG_BIN/initdb" -D "$work/data" -U postgres -E UTF8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  cat >>"$work/data/postgresql.conf" <<CONF
port = $PGPORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
max_connections = $maxconn
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
  as_pg "$PG_BIN/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w -t 60 start >/dev/null ||
    { tail -5 "$work/postgres.log" >&2; die "PostgreSQL did not start"; }
  psql_admin -c "CREATE ROLE bench LOGIN PASSWORD '$PGPASSWORD'" -c "CREATE DATABASE bench OWNER bench"
  log "PostgreSQL 15 up (max_connections $maxconn); pgbench -i -s $SCALE"
  run_waiting "$work/init.log" "$work/init.err" timeout 600 \
    "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PGPORT" -U bench -i -s "$SCALE" -q bench ||
    { tail -5 "$work/init.err" >&2; die "pgbench -i failed"; }
}

psql_admin() { as_pg "$PG_BIN/psql" -X -q -h "$work" -p "$PGPORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

# Postgres's own SCRAM verifier for the role: both poolers hold it, neither gets the plain password.
role_verifier() { psql_admin -At -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'bench'"; }

write_pooler_configs() {
  local verifier cap
  verifier=$(role_verifier)
  cap=$(client_cap)
  [[ $verifier == SCRAM-SHA-256* ]] || die "role bench has no SCRAM verifier"
  printf '"bench" "%s"\n' "$verifier" >"$work/userlist.txt"
  # Connection logging is off in both poolers: S2 and the idle phase would otherwise measure log writes.
  cat >"$work/pgbouncer.ini" <<INI
[databases]
bench = host=127.0.0.1 port=$PGPORT dbname=bench
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $work/userlist.txt
pool_mode = transaction
default_pool_size = $POOL
max_client_conn = $cap
logfile = $work/pgbouncer.log
pidfile = $work/pgbouncer.pid
log_connections = 0
log_disconnections = 0
INI
  cat >"$work/pgmux.yaml" <<YAML
listen:
  postgres: "127.0.0.1:$PGMUX_PORT"
workers: $PGMUX_WORKERS
shutdown_timeout: 2s
log_level: warning
auth_type: scram-sha-256
pool:
  mode: transaction
  default_pool_size: $POOL
  max_client_conn: $cap
databases:
  bench:
    host: 127.0.0.1
    port: $PGPORT
users:
  - name: bench
    password: "$verifier"
YAML
  # The same pgmux, counting nothing per message: the metrics-off side of METRICS=1.
  { cat "$work/pgmux.yaml"; printf 'metrics:\n  enabled: false\n'; } >"$work/pgmux-nometrics.yaml"
  [ "$(id -u)" -eq 0 ] && chown -R postgres "$work"
  "$PGMUX_BIN" --check-config "$work/pgmux.yaml" >/dev/null || die "pgmux rejected $work/pgmux.yaml"
  "$PGMUX_BIN" --check-config "$work/pgmux-nometrics.yaml" >/dev/null ||
    die "pgmux rejected $work/pgmux-nometrics.yaml"
}

# Ready = a real query answered through the port, so the pool has logged in to Postgres at least once.
wait_ready() {
  local port=$1 name=$2
  for _ in $(seq 100); do
    "$PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$port" -U bench -d bench -c 'SELECT 1' >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$name did not answer on port $port"
}

bouncer_pid() { if [ -n "$work" ] && [ -f "$work/pgbouncer.pid" ]; then cat "$work/pgbouncer.pid"; fi; }

start_pgbouncer() {
  # runuser applies PAM's limits (soft nofile 1024), so lift the fd limit again inside.
  # shellcheck disable=SC2016  # expanded by the inner sh
  as_pg sh -c 'ulimit -n "$0" && exec "$@"' "$(ulimit -n)" "$PGBOUNCER_BIN" -d -q "$work/pgbouncer.ini" ||
    { tail -5 "$work/pgbouncer.log" >&2; die "pgbouncer failed"; }
  for _ in $(seq 50); do [ -s "$work/pgbouncer.pid" ] && break; sleep 0.1; done
  wait_ready "$BOUNCER_PORT" pgbouncer
}

stop_pgbouncer() {
  local pid
  pid=$(bouncer_pid)
  [ -n "$pid" ] && stop_pid "$pid" TERM   # TERM: PgBouncer's immediate shutdown
  [ -n "$work" ] && rm -f "$work/pgbouncer.pid"
  return 0
}

# $1: which config, pgmux (the default) or pgmux-nometrics; both listen on PGMUX_PORT, one at a time.
start_pgmux() {
  "$PGMUX_BIN" --config "$work/${1:-pgmux}.yaml" >>"$work/pgmux.log" 2>&1 &
  pgmux_pid=$!
  wait_ready "$PGMUX_PORT" pgmux
}

stop_pgmux() { stop_pid "$pgmux_pid" INT; pgmux_pid=""; }   # INT: pgmux stops at once, no drain

# $1: threads. One at a time on FLOOR_PORT, like the two pgmux configs.
start_floor() {
  "$FLOOR_BIN" "$FLOOR_PORT" "$PGPORT" "$1" >>"$work/floor.log" 2>&1 &
  floor_pid=$!
  wait_ready "$FLOOR_PORT" "floor relay"
}

stop_floor() { stop_pid "$floor_pid" TERM; floor_pid=""; }

# pgmux's event loops: PGMUX_WORKERS, or one per core when 0.
worker_count() { if [ "$PGMUX_WORKERS" -gt 0 ]; then echo "$PGMUX_WORKERS"; else nproc; fi; }

# ---- per-process measurements -----------------------------------------------------------------------------------
pooler_pid() {
  case $1 in pgbouncer) bouncer_pid ;; pgmux | pgmux-nometrics) echo "$pgmux_pid" ;; floor | floor-mt) echo "$floor_pid" ;; *) echo "" ;; esac
}
port_of() {
  case $1 in direct) echo "$PGPORT" ;; pgbouncer) echo "$BOUNCER_PORT" ;; pgmux | pgmux-nometrics) echo "$PGMUX_PORT" ;;
    floor | floor-mt) echo "$FLOOR_PORT" ;; esac
}

# utime + stime of every thread, in clock ticks.
cpu_ticks() { if [ -n "$1" ]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo 0; fi; }
status_kb() { if [ -n "$1" ]; then awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; else echo NA; fi; }

# Writing 5 to clear_refs resets VmHWM to the current RSS, so each run reports its own peak.
reset_peak() { if [ -n "$1" ]; then { echo 5 >"/proc/$1/clear_refs"; } 2>/dev/null || true; fi; }

# ---- scenarios --------------------------------------------------------------------------------------------------
# pgbench arguments for scenario $1 against target $2, minus connection and duration.
scenario_args() {
  case $1 in
    S1) echo "-S -c $CLIENTS -j $JOBS" ;;
    # pgbench logs in synchronously inside each thread under -C, so one thread per client keeps 32 logins in flight.
    S2) echo "-S -C -c $CLIENTS -j $CLIENTS" ;;
    S3) echo "-S -c $MANY_CLIENTS -j $JOBS" ;;
    S4) echo "-S -M extended -c $CLIENTS -j $JOBS" ;;
    # PgBouncer 1.18 cannot keep named statements in transaction mode: it runs S5 with the simple protocol instead.
    S5) if [ "$2" = pgbouncer ]; then echo "-S -M simple -c $CLIENTS -j $JOBS"; else echo "-S -M prepared -c $CLIENTS -j $JOBS"; fi ;;
    S6) echo "-c $CLIENTS -j $JOBS" ;;
    *) die "unknown scenario $1 (S1..S6)" ;;
  esac
}

# Why a target does not run a scenario at all (empty = it runs).
skip_reason() {
  if [ "$1" = S3 ] && [ "$2" = direct ]; then echo "direct Postgres cannot take $MANY_CLIENTS connections"; fi
  # The relay opens a server connection per client: a Postgres login per transaction in S2, 1000 in S3.
  case $1/$2 in
    S2/floor*) echo "the floor relay does not pool: each login would be Postgres's" ;;
    S3/floor*) echo "the floor relay does not pool: $MANY_CLIENTS server connections" ;;
  esac
}

# What pgbench does to the tables between TPC-B runs unless -n: done here, directly, outside the measurement.
before_run() {
  if [ "$1" = S6 ]; then
    psql_admin -d bench -c "VACUUM pgbench_branches" -c "VACUUM pgbench_tellers" -c "TRUNCATE pgbench_history"
  fi
}

forget_child() {
  local keep=() p
  for p in "${children[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  children=("${keep[@]}")
}

# Every run gets a freshly started pooler: its CPU count and peak RSS then belong to this scenario alone, not to
# memory an earlier scenario (S3's 1000 clients) left allocated.
fresh_target() {
  case $1 in
    pgbouncer) stop_pgbouncer; start_pgbouncer ;;
    pgmux | pgmux-nometrics) stop_pgmux; start_pgmux "$1" ;;
    floor) stop_floor; start_floor 1 ;;
    floor-mt) stop_floor; start_floor "$(worker_count)" ;;
  esac
}

# One second of -S from as many clients as the pool has backends: the pool is full and the caches are warm
# before the measured run starts, for every target alike.
warm_up() {
  run_waiting "$work/warm.out" "$work/warm.err" timeout -k 5 60 \
    "$PG_BIN/pgbench" -n -h 127.0.0.1 -p "$1" -U bench -S -c "$POOL" -j $((POOL < JOBS ? POOL : JOBS)) -T 1 bench ||
    log "warm-up on port $1 failed: $(head -c 300 "$work/warm.err")"
}

# Run a command in the background and wait for it: a trapped Ctrl-C interrupts `wait` but not a foreground child.
# The output files are arguments so that a trap firing during `wait` still writes to the terminal.
run_waiting() {
  local stdout=$1 stderr=$2
  shift 2
  "$@" >"$stdout" 2>"$stderr" &
  local pid=$! rc=0
  children+=("$pid")
  wait "$pid" || rc=$?
  forget_child "$pid"
  return "$rc"
}

# Latency percentiles in ms from pgbench per-transaction logs; column 3 is the latency in µs.
# Under -C that latency leaves out the login, so S2 uses the gap between one client's consecutive completions
# instead: login + transaction + logout, which is what a connect-per-request client waits for.
latency_p50_p99() {
  local scenario=$1; shift
  if [ $# -eq 0 ] || [ ! -f "$1" ]; then echo "NA NA"; return; fi
  if [ "$scenario" = S2 ]; then
    awk '$3 ~ /^[0-9]+$/ { t = $5 * 1000000 + $6; if ($1 in last) print t - last[$1]; last[$1] = t }' "$@"
  else
    awk '$3 ~ /^[0-9]+$/ { print $3 }' "$@"
  fi | sort -n -S 64M | awk '
    { v[NR] = $1 }
    END {
      if (NR == 0) { print "NA NA"; exit }
      i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999)
      printf "%.3f %.3f\n", v[i50] / 1000, v[i99] / 1000
    }'
}

tsv_header() {
  printf 'kind\trep\tscenario\ttarget\tpgbench_args\tclients\ttps\tp50_ms\tp99_ms\ttx\tfailed\taborted_clients\terrors\tcpu_s_per_10k_tx\tpeak_rss_kb\tidle_rss_growth_kb\tbytes_per_idle_client\tnote\n' >"$OUT"
}

# One field list per TSV row: keeps the column order in a single place.
tsv_row() { local IFS=$'\t'; echo "$*" >>"$OUT"; }

run_one() {
  local rep=$1 s=$2 t=$3 args reason pid port c0 c1 out rc=0 tps tx failed aborted errors p50 p99 cpu peak note=""
  args=$(scenario_args "$s" "$t")
  reason=$(skip_reason "$s" "$t")
  if [ -n "$reason" ]; then
    tsv_row run "$rep" "$s" "$t" "$args" NA NA NA NA NA NA NA NA NA NA NA NA "n/a: $reason"
    return
  fi
  before_run "$s"
  port=$(port_of "$t")
  fresh_target "$t"
  warm_up "$port"
  pid=$(pooler_pid "$t")
  out="$work/run"
  rm -rf "$out"; mkdir -p "$out"
  reset_peak "$pid"
  c0=$(cpu_ticks "$pid")
  # shellcheck disable=SC2086  # args is a word list on purpose
  run_waiting "$out/stdout" "$out/stderr" timeout -k 5 $((SECS + 120)) \
    "$PG_BIN/pgbench" -n -h 127.0.0.1 -p "$port" -U bench $args -T "$SECS" -l --log-prefix="$out/tx" bench || rc=$?
  c1=$(cpu_ticks "$pid")
  peak=$(status_kb "$pid" VmHWM)
  tps=$(awk '/^tps = / {printf "%.1f", $3; exit}' "$out/stdout")
  tx=$(awk -F': *' '/^number of transactions actually processed/ {split($2, a, "/"); print a[1]; exit}' "$out/stdout")
  failed=$(awk -F': *' '/^number of failed transactions/ {split($2, a, " "); print a[1]; exit}' "$out/stdout")
  errors=$(grep -ciE 'error|abort' "$out/stderr" || true)
  aborted=$(grep -cE 'client [0-9]+ .*aborted' "$out/stderr" || true)
  read -r p50 p99 < <(latency_p50_p99 "$s" "$out"/tx.*)
  cpu=NA
  if [ -n "$pid" ] && [ "${tx:-0}" -gt 0 ]; then
    cpu=$(awk -v d=$((c1 - c0)) -v hz="$hz" -v tx="$tx" 'BEGIN {printf "%.3f", d / hz / tx * 10000}')
  fi
  [ "$rc" -eq 124 ] && note="timed out"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && note="pgbench exit $rc: $(grep -m1 -iE 'error|abort' "$out/stderr" | cut -c1-160)"
  [ -n "$pid" ] || peak=NA
  tsv_row run "$rep" "$s" "$t" "$args" "$(echo "$args" | awk '{for (i = 1; i < NF; i++) if ($i == "-c") print $(i + 1)}')" \
    "${tps:-0}" "$p50" "$p99" "${tx:-0}" "${failed:-NA}" "$aborted" "$errors" "$cpu" "$peak" NA NA "$note"
  log "rep $rep $s $t: tps ${tps:-0} p50 $p50 ms p99 $p99 ms cpu/10k $cpu s peak ${peak} kB failed ${failed:-NA} aborted $aborted errors $errors ${note}"
  [ -n "${KEEP_OUTPUT:-}" ] && mkdir -p "$KEEP_OUTPUT" && cat "$out/stdout" "$out/stderr" >"$KEEP_OUTPUT/$s-$t-$rep.txt"
  rm -rf "$out"   # per-transaction logs are large; keep disk use to one run's worth
}

# Each repetition runs every scenario against every target back to back, rotating which target goes first,
# so drift on a shared machine (other jobs, autovacuum, page cache) lands on all of them alike.
run_scenarios() {
  local rep s t i targets
  read -r -a targets <<<"$TARGETS"
  for rep in $(seq "$REPS"); do
    for s in $SCENARIOS; do
      for i in $(seq 0 $((${#targets[@]} - 1))); do
        t=${targets[$(((i + rep - 1) % ${#targets[@]}))]}
        run_one "$rep" "$s" "$t"
      done
    done
  done
}

# ---- idle memory ------------------------------------------------------------------------------------------------
established() { ss -Htn state established "( sport = :$1 )" 2>/dev/null | wc -l; }

# Why $1 idle clients cannot be opened on this machine (empty = they can).
idle_limit_reason() {
  local n=$1 fds lo hi
  fds=$(ulimit -n)
  read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
  if [ "$fds" != unlimited ] && [ "$fds" -lt $((n + 64)) ]; then
    echo "open-file limit $fds is below $n clients (raise the hard limit: ulimit -Hn)"
  elif [ $((hi - lo + 1)) -lt $((n + 100)) ]; then
    echo "only $((hi - lo + 1)) ephemeral ports ($lo-$hi)"
  fi
}

# One idle measurement on a freshly started pooler, so earlier runs' buffers are not counted and not reused.
idle_one() {
  local t=$1 n=$2 reason pid port base rss count last_count=0 stall=0 waited=0 pg rc=0 note="" growth per
  reason=$(idle_limit_reason "$n")
  if [ -n "$reason" ]; then
    tsv_row idle 1 "idle-$n" "$t" "-n -f idle.sql -c $n" NA NA NA NA NA NA NA NA NA NA NA NA "not reached: $reason"
    log "idle $t $n: not reached: $reason"
    return
  fi
  "stop_$t"; "start_$t"
  pid=$(pooler_pid "$t"); port=$(port_of "$t")
  sleep 1
  base=$(status_kb "$pid" VmRSS)
  # Each client sleeps once, far longer than logging in all of them takes; it is stopped once measured.
  printf '\\sleep %d s\n' $((IDLE_CONNECT_SECS + 60)) >"$work/idle.sql"
  timeout -k 5 $((IDLE_CONNECT_SECS + 90)) "$PG_BIN/pgbench" -n -h 127.0.0.1 -p "$port" -U bench -f "$work/idle.sql" \
    -c "$n" -j "$JOBS" -t 1 bench >"$work/idle.out" 2>&1 &
  pg=$!
  children+=("$pg")
  # Count sockets the pooler holds established on its port; stop when all are in, pgbench quit, or it stalls.
  while :; do
    count=$(established "$port")
    [ "$count" -ge "$n" ] && break
    kill -0 "$pg" 2>/dev/null || break
    [ "$waited" -ge "$IDLE_CONNECT_SECS" ] && break
    if [ "$count" -gt "$last_count" ]; then last_count=$count stall=0; else stall=$((stall + 1)); fi
    [ "$stall" -ge 30 ] && break
    sleep 1; waited=$((waited + 1))
  done
  sleep 2   # let the last logins settle
  count=$(established "$port")
  rss=$(status_kb "$pid" VmRSS)
  stop_pid "$pg"; wait "$pg" 2>/dev/null || rc=$?
  forget_child "$pg"
  growth=$((rss - base))
  per=NA
  [ "$count" -gt 0 ] && per=$(awk -v g="$growth" -v c="$count" 'BEGIN {printf "%.0f", g * 1024 / c}')
  if [ "$count" -lt "$n" ]; then
    note="reached $count of $n: $(grep -m1 -iE 'error|fatal|could not' "$work/idle.out" | cut -c1-160)"
  fi
  tsv_row idle 1 "idle-$n" "$t" "-n -f idle.sql -c $n" "$count" NA NA NA NA NA NA NA NA NA "$growth" "$per" "$note"
  log "idle $t $n: established $count, RSS +$growth kB, $per bytes per client ${note}"
}

run_idle() {
  local n t
  [ -n "$IDLE_CLIENTS" ] || return 0
  for n in $IDLE_CLIENTS; do
    for t in pgbouncer pgmux; do
      if [[ " $TARGETS " == *" $t "* ]]; then idle_one "$t" "$n"; fi
    done
  done
}

# ---- verdict ----------------------------------------------------------------------------------------------------
# A run that moved nothing, or whose clients saw errors, fails the bench (after the tables): the figures beside it
# would compare a broken target with working ones. Idle rows fail when fewer clients were established than asked.
# Skipped runs (n/a) are not failures.
failed_runs() {
  awk -F'\t' 'NR > 1 && $1 == "run" && $18 !~ /^n\/a/ &&
                 ($10 + 0 == 0 || ($11 != "NA" && $11 + 0 > 0) || $12 + 0 > 0 || $13 + 0 > 0 || $18 != "") {
                 printf "  rep %s %s %s: %s tx, %s failed, %s aborted clients, %s error lines %s\n",
                   $2, $3, $4, $10, $11, $12, $13, $18 }
               NR > 1 && $1 == "idle" && $18 ~ /^reached/ { printf "  %s %s: %s\n", $3, $4, $18 }' "$OUT"
}

# ---- main -------------------------------------------------------------------------------------------------------
main() {
  check_tools
  raise_fd_limit
  work=$(mktemp -d /tmp/pgmux-bench-XXXXXX)
  [ "$(id -u)" -eq 0 ] && chown postgres "$work"
  pick_ports
  start_postgres
  write_pooler_configs
  start_pgbouncer
  start_pgmux
  log "pgbouncer $("$PGBOUNCER_BIN" --version | head -1), pgmux $("$PGMUX_BIN" --version), pool $POOL, $REPS x $SECS s"
  # Other work on the machine skews every figure: say how busy it was.
  log "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
  mkdir -p "$(dirname "$OUT")"
  tsv_header
  run_scenarios
  run_idle
  awk -F'\t' -v reps="$REPS" -v secs="$SECS" -v pool="$POOL" -f "$here/report.awk" "$OUT"
  log "every measurement: $OUT; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
  local failures
  failures=$(failed_runs)
  [ -z "$failures" ] || die "runs that failed:"$'\n'"$failures"
}

main "$@"
