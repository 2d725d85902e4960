#!/usr/bin/env bash
# Installs, builds, starts a throwaway local PostgreSQL 15 and pgmux in front of it, and says how to connect.
# Ctrl-C stops both and removes the throwaway database.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/deploy/install-deps.sh"
"$top/deploy/build.sh" --target pgmux  # the tests build with ./tests/run.sh

PGPORT=${PGPORT:-5433} PGMUX_PORT=${PGMUX_PORT:-6432} PGMUX_HTTP_PORT=${PGMUX_HTTP_PORT:-8080}
bin=/usr/lib/postgresql/15/bin
dir=$(mktemp -d /tmp/pgmux-quickstart-XXXXXX)
# PostgreSQL refuses to run as root: run it as Debian's postgres user then.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$dir"
for port in "$PGPORT" "$PGMUX_PORT" "$PGMUX_HTTP_PORT"; do
  if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use; choose others with PGPORT=... PGMUX_PORT=... PGMUX_HTTP_PORT=... $0" >&2
    exit 1
  fi
done
pgmux_pid=""
cleanup() {
  set +e  # every step runs, whatever the one before did
  trap '' INT TERM
  [ -n "$pgmux_pid" ] && kill "$pgmux_pid" 2>/dev/null && wait "$pgmux_pid" 2>/dev/null
  as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

as_pg "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
cat >> "$dir/data/postgresql.conf" <<CONF
port = $PGPORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
CONF
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/data/postgres.log" -w start >/dev/null ||
  { tail -5 "$dir/data/postgres.log" >&2; exit 1; }
as_pg psql -X -q -h "$dir" -p "$PGPORT" -U postgres -c "CREATE ROLE app LOGIN PASSWORD 'app-password'"
as_pg psql -X -q -h "$dir" -p "$PGPORT" -U postgres -c "CREATE DATABASE app OWNER app"
# pgmux stores Postgres's own SCRAM verifier: no plain password in its config.
verifier=$(as_pg psql -X -At -h "$dir" -p "$PGPORT" -U postgres -c "SELECT rolpassword FROM pg_authid WHERE rolname='app'")

# A throwaway self-signed certificate for 127.0.0.1 and localhost: TLS is offered to clients that ask for it.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$dir/server.key" -out "$dir/server.crt" >/dev/null 2>&1
chmod 600 "$dir/server.key"

cat > "$dir/pgmux.yaml" <<CONF
listen:
  postgres: "127.0.0.1:$PGMUX_PORT"
  http: "127.0.0.1:$PGMUX_HTTP_PORT"
pool:
  mode: transaction
  default_pool_size: 10
  max_client_conn: 2000
tls:
  cert_file: $dir/server.crt
  key_file: $dir/server.key
  mode: allow
databases:
  app:
    host: 127.0.0.1
    port: $PGPORT
admin_users: [app]
users:
  - name: app
    password: "$verifier"
CONF
"$top/build/pgmux" --config "$dir/pgmux.yaml" &
pgmux_pid=$!
for _ in $(seq 100); do
  (echo >"/dev/tcp/127.0.0.1/$PGMUX_PORT") 2>/dev/null && break
  kill -0 "$pgmux_pid" 2>/dev/null || { echo "pgmux did not start" >&2; exit 1; }
  sleep 0.1
done
cat <<MSG

pgmux is listening on 127.0.0.1:$PGMUX_PORT in front of a throwaway PostgreSQL 15 on port $PGPORT.
Its config: $dir/pgmux.yaml

  psql "postgresql://app:app-password@127.0.0.1:$PGMUX_PORT/app"
  psql "postgresql://app:app-password@127.0.0.1:$PGMUX_PORT/app?sslmode=verify-full&sslrootcert=$dir/server.crt"
  PGPASSWORD=app-password pgbench -h 127.0.0.1 -p $PGMUX_PORT -U app -i app
  PGPASSWORD=app-password pgbench -h 127.0.0.1 -p $PGMUX_PORT -U app -c 32 -T 10 -S app
  PGPASSWORD=app-password pgbench -h 127.0.0.1 -p $PGMUX_PORT -U app -c 16 -j 16 -T 10 -S -M prepared app
  curl -s http://127.0.0.1:$PGMUX_HTTP_PORT/sql -H 'Content-Type: application/json' \\
    -H 'Neon-Connection-String: postgresql://app:app-password@pgmux/app' -d '{"query": "SELECT now()"}'
  psql "postgresql://app:app-password@127.0.0.1:$PGMUX_PORT/pgmux" -c "SHOW POOLS"     # the admin console
  curl http://127.0.0.1:$PGMUX_HTTP_PORT/metrics
  curl http://127.0.0.1:$PGMUX_HTTP_PORT/readyz

Ctrl-C stops pgmux and PostgreSQL and deletes the throwaway database.
MSG
wait "$pgmux_pid"
