#!/usr/bin/env bash
# Cold-path benchmark: round trips and client CPU of one login to the first row, pgmux vs PgBouncer vs Postgres.
#
# The libpq and pipelined paths are timed by bench/coldpath_login.c (compiled here with $CC, so their CPU
# figures compare one C client with another), the HTTP paths by coldpath_client.py, neon-ws by node.
#
#   bench/coldpath.sh                         # REPS=5 DELAY=20 (ms), every path against every target
#   QUICK=1 bench/coldpath.sh                 # smoke run: 1 repetition, DELAY=10, CPU_REPS=5
#   PATHS="libpq-scram pipelined-tls" TARGETS=pgmux bench/coldpath.sh
#
# The Markdown table goes to stdout, progress to stderr, every measurement to the TSV at $OUT (see bench/README.md).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)

# ---- knobs ------------------------------------------------------------------------------------------------------
REPS=${REPS:-5}
DELAY=${DELAY:-20}   # ms the relay holds each chunk, in each direction
CPU_REPS=${CPU_REPS:-20}   # logins per CPU figure of the C client (at least REPS)
if [ -n "${QUICK:-}" ] && [ "${QUICK}" != 0 ]; then REPS=1 DELAY=10 CPU_REPS=5; fi
TARGETS=${TARGETS:-"direct pgbouncer pgmux"}
PATHS=${PATHS:-"libpq-scram libpq-scram-tls libpq-scram-tls-cb pipelined-tls pipelined-tls-new-ctx
  pipelined-direct-tls http-cold http-warm neon-ws"}
PGMUX_BIN=${PGMUX_BIN:-$top/build/pgmux}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PGBOUNCER_BIN=${PGBOUNCER_BIN:-/usr/sbin/pgbouncer}
PYTHON=${PYTHON:-/usr/bin/python3}   # Debian's, which has python3-psycopg
CC=${CC:-cc}                         # builds bench/coldpath_login.c; without it (or libpq-dev) Python times all
NODE=${NODE:-node}
NEON_DIR=${NEON_DIR:-$top/tests/neon}   # Neon's driver: `npm ci` there first, else neon-ws is skipped
OUT=${OUT:-$here/results/coldpath-$(date +%Y%m%d-%H%M%S).tsv}   # bench/results/ is git-ignored
PASSWORD=bench-password
export LC_ALL=C

# ---- state for cleanup ------------------------------------------------------------------------------------------
work=""
pgmux_pid=""
pgmux_tls=no   # yes once pgmux accepts the tls: section (the binary has TLS)
c_client=""    # the compiled bench/coldpath_login, once built

log() { printf '[coldpath %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Postgres refuses to run as root and PgBouncer should not: run both as Debian's postgres user then.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

stop_pid() {
  local pid=$1 sig=${2:-TERM}
  [ -n "$pid" ] || return 0
  kill -"$sig" "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  set +e
  trap '' INT TERM
  stop_pid "$pgmux_pid" INT
  [ -n "$work" ] && [ -s "$work/pgbouncer.pid" ] && stop_pid "$(cat "$work/pgbouncer.pid")"
  if [ -n "$work" ] && [ -f "$work/data/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$work/data" -m immediate -w -t 20 stop >/dev/null 2>&1
  fi
  [ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# ---- set-up -----------------------------------------------------------------------------------------------------
check_tools() {
  local t
  for t in "$PG_BIN/initdb" "$PG_BIN/pg_ctl" "$PG_BIN/psql" "$PGBOUNCER_BIN" "$PYTHON"; do
    [ -x "$t" ] || die "$t not found: run ./deploy/install-deps.sh (README set-up)"
  done
  for t in ss openssl awk sort; do command -v "$t" >/dev/null || die "$t not found"; done
  "$PYTHON" -c 'import psycopg' 2>/dev/null || die "$PYTHON has no psycopg (Debian: python3-psycopg)"
  [ -x "$PGMUX_BIN" ] || die "no pgmux binary at $PGMUX_BIN (build it, or set PGMUX_BIN)"
}

port_in_use() { [ -n "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]; }

free_port() {
  local p=$((20000 + RANDOM % 9000)) taken=" $* "
  while port_in_use "$p" || [[ $taken == *" $p "* ]]; do p=$((p + 1)); done
  echo "$p"
}

# A throwaway CA and a server certificate for localhost and 127.0.0.1, shared by all three targets.
make_certs() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=coldpath-ca \
    -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$work/san.ext"
  openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
    -extfile "$work/san.ext" -out "$work/server.crt" 2>/dev/null
  chmod 600 "$work/server.key"
  # Postgres and PgBouncer read the key as the postgres user (pgmux runs as the caller and reads it too).
  [ "$(id -u)" -ne 0 ] || chown postgres "$work"/server.* "$work"/ca.*
}

# Compiles the C client (bench/coldpath_login.c, coldpath_pipelined.c) into the temp dir. A missing compiler or
# missing libpq/OpenSSL headers fall back to the Python client (labelled in the table); a compile error with a
# complete tool chain is a broken bench and fails the run.
build_c_client() {
  local cflags
  if ! command -v "$CC" >/dev/null; then
    without_c_client "no C compiler ($CC)"
    return 0
  fi
  cflags=$(pkg-config --cflags libpq 2>/dev/null || echo "-I$(pg_config --includedir 2>/dev/null)")
  # shellcheck disable=SC2086 # cflags is a list of flags
  if ! printf '#include <libpq-fe.h>\n#include <openssl/ssl.h>\n' | "$CC" $cflags -E -x c - >/dev/null 2>&1; then
    without_c_client "no libpq-fe.h or openssl/ssl.h (Debian: libpq-dev, libssl-dev)"
    return 0
  fi
  # shellcheck disable=SC2086 # cflags is a list of flags
  "$CC" -O2 -Wall -Wextra -o "$work/coldpath_login" "$here/coldpath_login.c" "$here/coldpath_pipelined.c" \
    $cflags -lpq -lssl -lcrypto || die "$CC could not build bench/coldpath_login.c"
  c_client=$work/coldpath_login
}

without_c_client() {
  log "warning: $1: the libpq and pipelined rows are timed by the Python client instead, whose CPU figures"
  log "warning: compare Python's ssl with psycopg's libpq, not one C client with another; no pipelined-tls-new-ctx"
  # shellcheck disable=SC2086 # PATHS is a list of words
  PATHS=$(printf '%s\n' $PATHS | grep -vx pipelined-tls-new-ctx | tr '\n' ' ')
}

psql_admin() { as_pg "$PG_BIN/psql" -X -q -h "$work" -p "$PGPORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

start_postgres() {
  as_pg "$PG_BIN/initdb" -D "$work/data" -U postgres -E UTF8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  # Role pipe logs in with a cleartext password over TLS only (hba "password" checks it against the SCRAM
  # verifier): the one way Postgres itself can take a pipelined login, so the pipelined rows have a baseline.
  { printf 'hostssl all pipe 127.0.0.1/32 password\n'; cat "$work/data/pg_hba.conf"; } >"$work/hba.tmp"
  cat "$work/hba.tmp" >"$work/data/pg_hba.conf"
  cat >>"$work/data/postgresql.conf" <<CONF
port = $PGPORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
max_connections = 100
fsync = off
ssl = on
ssl_cert_file = '$work/server.crt'
ssl_key_file = '$work/server.key'
CONF
  as_pg "$PG_BIN/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w -t 60 start >/dev/null ||
    { tail -5 "$work/postgres.log" >&2; die "PostgreSQL did not start"; }
  psql_admin -c "CREATE ROLE bench LOGIN PASSWORD '$PASSWORD'" -c "CREATE ROLE pipe LOGIN PASSWORD '$PASSWORD'" \
    -c "CREATE DATABASE bench OWNER bench"
}

write_configs() {
  local verifier
  verifier=$(psql_admin -At -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'bench'")
  [[ $verifier == SCRAM-SHA-256* ]] || die "role bench has no SCRAM verifier"
  printf '"bench" "%s"\n' "$verifier" >"$work/userlist.txt"
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
default_pool_size = 5
logfile = $work/pgbouncer.log
pidfile = $work/pgbouncer.pid
log_connections = 0
log_disconnections = 0
client_tls_sslmode = allow
client_tls_cert_file = $work/server.crt
client_tls_key_file = $work/server.key
server_tls_sslmode = disable
INI
  local common
  common=$(
    cat <<YAML
listen:
  postgres: "127.0.0.1:$PGMUX_PORT"
  http: "127.0.0.1:$PGMUX_HTTP_PORT"
workers: 1
shutdown_timeout: 2s
log_level: warning
auth_type: scram-sha-256
pool:
  mode: transaction
  default_pool_size: 5
databases:
  bench:
    host: 127.0.0.1
    port: $PGPORT
users:
  - name: bench
    password: "$verifier"
YAML
  )
  printf '%s\ntls:\n  cert_file: %s\n  key_file: %s\n  mode: allow\nhttp:\n  tls: true\n' \
    "$common" "$work/server.crt" "$work/server.key" >"$work/pgmux.yaml"
  if "$PGMUX_BIN" --check-config "$work/pgmux.yaml" >/dev/null 2>&1; then
    pgmux_tls=yes
  else
    # A pgmux without TLS (main before the TLS branch): plain Postgres port, plain HTTP, labelled as such.
    printf '%s\n' "$common" >"$work/pgmux.yaml"
    "$PGMUX_BIN" --check-config "$work/pgmux.yaml" >/dev/null || die "pgmux rejected $work/pgmux.yaml"
    log "this pgmux has no tls: section; its TLS paths are measured as refused and HTTP is plain"
  fi
  [ "$(id -u)" -eq 0 ] && chown -R postgres "$work"
  return 0
}

wait_ready() {
  local port=$1 name=$2
  for _ in $(seq 100); do
    PGPASSWORD=$PASSWORD "$PG_BIN/psql" "host=127.0.0.1 port=$port user=bench dbname=bench sslmode=disable" \
      -X -q -At -c 'SELECT 1' >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$name did not answer on port $port"
}

start_pgbouncer() {
  as_pg "$PGBOUNCER_BIN" -d -q "$work/pgbouncer.ini" || { tail -5 "$work/pgbouncer.log" >&2; die "pgbouncer failed"; }
  wait_ready "$BOUNCER_PORT" pgbouncer
}

start_pgmux() {
  "$PGMUX_BIN" --config "$work/pgmux.yaml" >>"$work/pgmux.log" 2>&1 &
  pgmux_pid=$!
  wait_ready "$PGMUX_PORT" pgmux
}

# ---- measuring --------------------------------------------------------------------------------------------------
port_of() {
  case $1 in
    direct) echo "$PGPORT" ;;
    pgbouncer) echo "$BOUNCER_PORT" ;;
    pgmux) case $2 in http-* | neon-*) echo "$PGMUX_HTTP_PORT" ;; *) echo "$PGMUX_PORT" ;; esac ;;
  esac
}

# Why target $1 has no path $2 at all (empty = it is measured).
skip_reason() {
  case $2 in
    http-*) [ "$1" = pgmux ] || echo "no HTTP endpoint" ;;
    neon-ws)
      if [ "$1" != pgmux ]; then
        echo "no WebSocket endpoint"
      elif ! command -v "$NODE" >/dev/null || [ ! -d "$NEON_DIR/node_modules/@neondatabase/serverless" ]; then
        echo "no node or no driver (run npm ci in $NEON_DIR)"
      fi
      ;;
  esac
}

# The path's label in the table: HTTP says whether it ran over TLS.
path_label() {
  case $1 in
    http-*) if [ "$pgmux_tls" = yes ]; then echo "$1 (https)"; else echo "$1 (plain http)"; fi ;;
    neon-ws) if [ "$pgmux_tls" = yes ]; then echo "$1 (wss)"; else echo "$1 (plain ws)"; fi ;;
    *) echo "$1" ;;
  esac
}

# Paths the C client times (with it built).
c_path() { [ -n "$c_client" ] && [[ $1 == libpq-* || $1 == pipelined-* ]]; }

# Every C-client path of target $1 in one coldpath_login process, which takes them in turn, round by round,
# so drift on a shared machine lands on all of them alike. Its lines go to c_line["target path"]. The relays
# are coldpath_client.py --relay-only in a process of its own, which serves until its stdin closes.
declare -A c_line
measure_c_target() {
  local target=$1 port path paths=() conninfo p0="" pd="" wfd relay_pid out="" name rest pipe_user=() limit
  for path in $PATHS; do c_path "$path" && [ -z "$(skip_reason "$target" "$path")" ] && paths+=("$path"); done
  [ ${#paths[@]} -gt 0 ] || return 0
  port=$(port_of "$target" libpq)
  # host names the certificate's subject for verify-full and SNI; hostaddr spares a lookup of localhost.
  conninfo="host=localhost hostaddr=127.0.0.1 port=$port user=bench password=$PASSWORD dbname=bench"
  conninfo+=" sslrootcert=$work/ca.crt gssencmode=disable connect_timeout=10"
  coproc relay { exec "$PYTHON" "$here/coldpath_client.py" --relay-only --port "$port" --delay-ms "$DELAY"; }
  # shellcheck disable=SC2154 # relay_PID is set by coproc
  wfd=${relay[1]} relay_pid=$relay_PID
  read -r -t 30 p0 pd <&"${relay[0]}" || true
  if [ -n "$pd" ]; then
    # Postgres takes a pipelined cleartext login only from role pipe (hostssl ... password, see start_postgres).
    [ "$target" = direct ] && pipe_user=(--pipelined-user pipe)
    # Its socket waits give up after 10 s, but a query on a logged-in libpq connection has no limit: a hard
    # one of a minute plus, per login, 1 s and 20 round trips of the relay (the slowest seen take a third).
    limit=$(awk -v n=$(((2 * REPS + CPU_REPS) * ${#paths[@]})) -v d="$DELAY" \
      'BEGIN { printf "%d", 60 + n * (1 + d / 25) }')
    out=$(timeout -k 5 "$limit" "$c_client" --conninfo "$conninfo" --reps "$REPS" --cpu-reps "$CPU_REPS" \
      --relays "$p0" "$pd" --delay-ms "$DELAY" "${pipe_user[@]}" "${paths[@]}") ||
      log "$target: coldpath_login failed or ran out of time ($limit s)"
  else
    log "$target: the relay did not start"
  fi
  exec {wfd}>&-   # the relay ends when its stdin closes; stop_pid makes sure
  stop_pid "$relay_pid"
  wait "$relay_pid" 2>/dev/null || true
  while IFS= read -r name && [ -n "$name" ]; do
    rest=${name#*$'\t'}
    c_line["$target ${name%%$'\t'*}"]=$rest
  done <<<"$out"
  # A path without its line errors in measure().
  return 0
}

measure() {
  local target=$1 path=$2 reason user=bench https=() line client
  reason=$(skip_reason "$target" "$path")
  if [ -n "$reason" ]; then
    printf '%s\t%s\tn/a\tNA\tNA\tNA\tNA\tNA\t%s\t-\n' "$target" "$(path_label "$path")" "$reason" >>"$OUT"
    return
  fi
  # Postgres takes a pipelined cleartext login only from role pipe (hostssl ... password, see start_postgres).
  [ "$target" = direct ] && [[ $path == pipelined-* ]] && user=pipe
  [ "$pgmux_tls" = yes ] && https=(--https)
  if [ "$path" = neon-ws ]; then
    client=node
    line=$(PYTHON=$PYTHON NEON_DIR=$NEON_DIR NODE_EXTRA_CA_CERTS=$work/ca.crt "$NODE" "$here/coldpath_neon.mjs" \
      "$(port_of "$target" "$path")" "$DELAY" "$REPS" "$user" "$PASSWORD" bench \
      "$([ "$pgmux_tls" = yes ] && echo 1 || echo 0)") || line=$'error\tNA\tNA\tNA\tNA\tNA\tnode exited with an error'
  elif c_path "$path"; then
    client=c
    line=${c_line["$target $path"]:-$'error\tNA\tNA\tNA\tNA\tNA\tno line from coldpath_login'}
  else
    client=python
    line=$("$PYTHON" "$here/coldpath_client.py" --path "$path" --port "$(port_of "$target" "$path")" \
      --delay-ms "$DELAY" --reps "$REPS" --user "$user" --password "$PASSWORD" --dbname bench \
      --cafile "$work/ca.crt" "${https[@]}") || line=$'error\tNA\tNA\tNA\tNA\tNA\tclient exited with an error'
  fi
  printf '%s\t%s\t%s\t%s\n' "$target" "$(path_label "$path")" "$line" "$client" >>"$OUT"
  log "$target $path ($client): $(printf '%s' "$line" | tr '\t' ' ')"
}

report() {
  awk -F'\t' -v targets="$TARGETS" -v delay="$DELAY" -v reps="$REPS" -v cpu_reps="$CPU_REPS" '
    BEGIN {
      about["c"] = "bench/coldpath_login.c (C, libpq and OpenSSL)"
      about["python"] = "bench/coldpath_client.py (Python: psycopg, ssl, http.client)"
      about["node"] = "bench/coldpath_neon.mjs (node)"
    }
    NR == 1 { next }
    {
      if (!($2 in seen)) { seen[$2] = 1; paths[++np] = $2 }
      if ($3 == "ok") { cell[$2, $1] = sprintf("%.1f | %.2f", $6, $7); cpu[$2, $1] = $7; by[$2, $1] = $10 }
      else if ($3 == "unsupported") cell[$2, $1] = "not supported | –"
      else if ($3 == "n/a") cell[$2, $1] = "n/a | –"
      else cell[$2, $1] = "error | –"
      if ($10 in about && !(($10, $2) in listed)) {
        listed[$10, $2] = 1
        if ($10 in rows) rows[$10] = rows[$10] ", " $2
        else { order[++nc] = $10; rows[$10] = $2 }
      }
      if ($3 != "ok" && $3 != "n/a" && $9 != "") notes[++nn] = $1 " " $2 ": " $9
    }
    # The CPU of path p over libpq SCRAM+TLS on target tg, when both were measured by the same client.
    function ratio(p, tg, base) {
      base = "libpq-scram-tls"
      if (!((p, tg) in cpu) || !((base, tg) in cpu) || by[p, tg] != by[base, tg] || cpu[base, tg] <= 0) return "–"
      return sprintf("%.2f", cpu[p, tg] / cpu[base, tg])
    }
    END {
      nt = split(targets, t, " ")
      printf "RT: round trips to the first row of SELECT 1 on a new connection, (min t(%s ms) - min t(0)) / (2 x %s ms) + 1 for\n", delay, delay
      printf "the TCP handshake, which the relay does not delay (http-warm: no +1, its connection is open). CPU ms: the\n"
      printf "client process'"'"'s own CPU (user + system) per login, without the relay, median. RT from %d logins per delay;\n", reps
      printf "CPU ms from %d logins (C client: every path of a target in one process, in turn) or %d (Python, node).\n",
        (cpu_reps > reps ? cpu_reps : reps), reps
      printf "Clients:"
      for (i = 1; i <= nc; i++) printf "%s %s: %s", (i > 1 ? ";" : ""), rows[order[i]], about[order[i]]
      printf ".\n\n| path |"
      for (i = 1; i <= nt; i++) printf " %s RT | %s CPU ms |", t[i], t[i]
      printf "\n|---|"
      for (i = 1; i <= nt; i++) printf "---:|---:|"
      printf "\n"
      for (p = 1; p <= np; p++) {
        printf "| %s |", paths[p]
        for (i = 1; i <= nt; i++) printf " %s |", ((paths[p], t[i]) in cell) ? cell[paths[p], t[i]] : "– | –"
        printf "\n"
        if (paths[p] ~ /^pipelined-/) pipelined[++npl] = paths[p]
      }
      if (npl && ("libpq-scram-tls" in seen)) {
        printf "\nClient CPU of a pipelined login over libpq SCRAM+TLS'"'"'s, same client, same run"
        printf " (issue #11: pipelined TLS <= 0.25):\n\n"
        printf "| CPU ratio |"
        for (i = 1; i <= nt; i++) printf " %s |", t[i]
        printf "\n|---|"
        for (i = 1; i <= nt; i++) printf "---:|"
        printf "\n"
        for (p = 1; p <= npl; p++) {
          printf "| %s / libpq-scram-tls |", pipelined[p]
          for (i = 1; i <= nt; i++) printf " %s |", ratio(pipelined[p], t[i])
          printf "\n"
        }
      }
      if (nn) { printf "\n"; for (i = 1; i <= nn; i++) printf "- %s\n", notes[i] }
    }' "$OUT"
}

# ---- main -------------------------------------------------------------------------------------------------------
main() {
  check_tools
  work=$(mktemp -d /tmp/pgmux-coldpath-XXXXXX)
  [ "$(id -u)" -eq 0 ] && chown postgres "$work"
  PGPORT=$(free_port)
  BOUNCER_PORT=$(free_port "$PGPORT")
  PGMUX_PORT=$(free_port "$PGPORT" "$BOUNCER_PORT")
  PGMUX_HTTP_PORT=$(free_port "$PGPORT" "$BOUNCER_PORT" "$PGMUX_PORT")
  log "ports: postgres $PGPORT, pgbouncer $BOUNCER_PORT, pgmux $PGMUX_PORT (http $PGMUX_HTTP_PORT)"
  make_certs
  build_c_client
  start_postgres
  write_configs
  [[ " $TARGETS " == *" pgbouncer "* ]] && start_pgbouncer
  [[ " $TARGETS " == *" pgmux "* ]] && start_pgmux
  log "pgmux $("$PGMUX_BIN" --version) (TLS: $pgmux_tls), $("$PGBOUNCER_BIN" --version | head -1), $REPS reps, delay $DELAY ms"
  log "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
  mkdir -p "$(dirname "$OUT")"
  printf 'target\tpath\tstatus\tt0_ms\tt_delay_ms\tround_trips\tclient_cpu_ms\twall_ms\tnote\tclient\n' >"$OUT"
  local path target
  for target in $TARGETS; do measure_c_target "$target"; done
  for path in $PATHS; do
    for target in $TARGETS; do measure "$target" "$path"; done
  done
  report
  log "every measurement: $OUT; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
  # "not supported" is a finding; an error is a broken path, and fails the run (the smoke test relies on it).
  if awk -F'\t' 'NR > 1 && $3 == "error" { bad = 1 } END { exit !bad }' "$OUT"; then
    die "some paths failed (status error in $OUT)"
  fi
}

main "$@"
