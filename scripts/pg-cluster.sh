#!/usr/bin/env bash
# start: create a throwaway PostgreSQL cluster under a temp folder, owned by a
# non-root user, on a free port; print its SQLAlchemy URL. stop: remove it.
set -euo pipefail
state=/tmp/kabarfeed-pg.state
case "${1:-}" in
start)
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -n "$bindir" ] && [ -x "$bindir/initdb" ] || { echo "no PostgreSQL server installed" >&2; exit 1; }
  user=postgres
  id "$user" >/dev/null 2>&1 || user=nobody
  dir=$(mktemp -d /tmp/kabarfeed-pg.XXXXXX)
  chown "$user" "$dir" 2>/dev/null || true
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  as() { if [ "$(id -u)" -eq 0 ]; then su -s /bin/sh "$user" -c "$*"; else sh -c "$*"; fi; }
  as "$bindir/initdb -D $dir/data -U kabarfeed --auth=trust -E UTF8 --locale=C.UTF-8" >/dev/null
  as "$bindir/pg_ctl -D $dir/data -o '-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200' -l $dir/log -w start" >/dev/null
  as "$bindir/createdb -h 127.0.0.1 -p $port -U kabarfeed kabarfeed_test"
  echo "$bindir $dir $user" > "$state"
  echo "postgresql+psycopg://kabarfeed@127.0.0.1:$port/kabarfeed_test"
  ;;
stop)
  [ -f "$state" ] || exit 0
  read -r bindir dir user < "$state"
  if [ "$(id -u)" -eq 0 ]; then su -s /bin/sh "$user" -c "$bindir/pg_ctl -D $dir/data -m immediate stop" >/dev/null 2>&1 || true
  else "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; fi
  rm -rf "$dir" "$state"
  ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
