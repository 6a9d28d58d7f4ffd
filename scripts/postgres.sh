#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server on loopback for the tests (Debian's postgresql-15).
#   scripts/postgres.sh start DIR   initdb in DIR (owned by `nobody`: PostgreSQL refuses root),
#                                   start on a free port; prints the URL of a user who may create
#                                   databases
#   scripts/postgres.sh stop DIR    stop it (immediately: the data is throwaway)
# Safe to run twice: start on a DIR that already holds a running server prints its URL again.
# PG_DURABLE=1 keeps fsync on (the benchmarks' durable figures); the tests' throwaway data does
# without it.
set -euo pipefail
bin=${LOYALTY_PG_BIN:-/usr/lib/postgresql/15/bin}
cmd=${1:?start or stop}
dir=${2:?a folder for the server}
as_nobody() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }

case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown nobody "$dir"
    if [ -f "$dir/port" ] && as_nobody "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      echo "postgres://loyalty@127.0.0.1:$(cat "$dir/port")/postgres"
      exit 0
    fi
    rm -rf "$dir/data"
    as_nobody "$bin/initdb" -A trust -U loyalty --no-sync -D "$dir/data" >/dev/null
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # Throwaway data: no fsync. Enough connections for several server instances per test.
    fsync=off
    [ "${PG_DURABLE:-0}" = 1 ] && fsync=on
    as_nobody "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=$fsync -c max_connections=300" start >/dev/null
    echo "$port" > "$dir/port"
    echo "postgres://loyalty@127.0.0.1:$port/postgres"
    ;;
  stop)
    [ -d "$dir/data" ] && as_nobody "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
