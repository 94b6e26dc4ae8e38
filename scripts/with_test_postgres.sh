#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server on loopback and VALUEALIGN_TEST_POSTGRES_URL
# pointing at it; the server and its data folder are removed afterwards, whatever the command's
# outcome. Installs Debian's postgresql package when no server binaries are found.
#
#   scripts/with_test_postgres.sh swift test --skip-build
set -euo pipefail

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
BIN="$(find_bin || true)"
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
  echo "==> installing PostgreSQL (postgresql) from Debian" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  BIN="$(find_bin)"
fi

DIR="$(mktemp -d /tmp/valuealign-pg.XXXXXX)"
# initdb refuses to run as root: run the server as the postgres user then.
if [ "$(id -u)" = 0 ]; then
  RUN=(runuser -u postgres --)
  DBUSER=postgres
  chown postgres "$DIR"
else
  RUN=()
  DBUSER="$(id -un)"
fi

cleanup() {
  "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

"${RUN[@]}" "$BIN/initdb" -D "$DIR/data" -U "$DBUSER" --auth=trust --no-sync -E UTF8 >"$DIR/initdb.log" 2>&1 \
  || { cat "$DIR/initdb.log" >&2; exit 1; }

started=
for attempt in 1 2 3 4 5; do
  PORT=$(( 20000 + RANDOM % 30000 ))
  if "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off" start >/dev/null 2>&1; then
    started=1
    break
  fi
done
if [ -z "$started" ]; then echo "could not start PostgreSQL; its log:" >&2; cat "$DIR/server.log" >&2; exit 1; fi

export VALUEALIGN_TEST_POSTGRES_URL="postgres://$DBUSER@127.0.0.1:$PORT/postgres"
echo "==> PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT for the tests" >&2
status=0
"$@" || status=$?
exit $status
