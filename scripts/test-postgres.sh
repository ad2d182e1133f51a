#!/bin/sh
# Starts a throwaway PostgreSQL cluster for the tests (Debian's
# `postgresql` package; installed here if missing) and writes its URL to
# "${TMPDIR:-/tmp}/rbee-test-postgres/url", where the store's test helper
# finds it (`RBEE_TEST_POSTGRES_URL` overrides it). Each test creates its
# own database on it.
#
# The cluster lives in "${TMPDIR:-/tmp}/rbee-test-postgres/data", listens on
# 127.0.0.1 at a port the kernel picked as free (and on a Unix socket in
# the same folder), trusts local connections and trades durability for
# speed (fsync off): it holds nothing worth keeping. Stop it with
#   pg_ctl -D "${TMPDIR:-/tmp}/rbee-test-postgres/data" stop
# (as the `postgres` user when run as root).
#
# Idempotent: when the cluster answers, it touches nothing.
set -eu

DIR="${TMPDIR:-/tmp}"
DIR="${DIR%/}/rbee-test-postgres"

pg_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

PGBIN=$(pg_bin)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
    echo "test-postgres: installing postgresql (apt)"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
    # The package may start a cluster of its own (port 5432); the tests
    # never use it.
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql
    PGBIN=$(pg_bin)
fi

if [ -f "$DIR/url" ] && "$PGBIN/pg_isready" -q -d "$(cat "$DIR/url")" 2>/dev/null; then
    echo "test-postgres: running at $(cat "$DIR/url")"
    exit 0
fi

# PostgreSQL refuses to run as root: as root, the cluster belongs to the
# `postgres` user the Debian package creates.
AS=""
if [ "$(id -u)" -eq 0 ]; then AS="runuser -u postgres --"; fi

mkdir -p "$DIR"
if [ -n "$AS" ]; then chown postgres "$DIR"; fi
chmod 0700 "$DIR"
rm -f "$DIR/url"

if [ ! -f "$DIR/data/PG_VERSION" ]; then
    $AS "$PGBIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 --no-sync >"$DIR/initdb.log" 2>&1 || {
        cat "$DIR/initdb.log" >&2
        exit 1
    }
fi

# A port the kernel says is free. Another process may take it before
# PostgreSQL binds it: then try again with a new one.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

tries=0
while :; do
    tries=$((tries + 1))
    PORT=$(free_port)
    if $AS "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null; then
        break
    fi
    if [ "$tries" -ge 3 ]; then
        echo "test-postgres: the cluster did not start; its log:" >&2
        tail -n 30 "$DIR/server.log" >&2 || true
        exit 1
    fi
done

URL="postgres://postgres@127.0.0.1:$PORT/postgres"
printf '%s\n' "$URL" >"$DIR/url.tmp"
chmod 0644 "$DIR/url.tmp"
mv "$DIR/url.tmp" "$DIR/url"
chmod 0755 "$DIR"
echo "test-postgres: started at $URL"
