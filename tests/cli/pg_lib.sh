# A PostgreSQL server for a CLI test (sourced after lib.sh), from Debian's binaries: initdb into
# $TMP/pg, a free loopback port, its unix socket in $TMP/pg/sock, trust authentication (only
# this machine's loopback and the test's socket reach it). PostgreSQL refuses to run as root:
# as root the server runs as nobody (runuser). The test's server and its role bitnet, an
# ordinary role (not a superuser: row-level security applies to it) that owns the database
# bitnet, are stopped at exit.
#
#   start_pg || { echo "  SKIP ...: $PG_SKIP"; ...; }
#   "$BITNET" serve --tenants --database "$PGURL" ...
#   pg_sql "SELECT count(*) FROM usage"          # as bitnet, every tenant's rows (scope all)
#   pg_restart                                   # pg_ctl restart: connections are cut
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
PGD="$TMP/pg"
PG_UP=""

pg_as() {
    if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}

stop_pg() {
    [ -n "$PG_UP" ] && pg_as "$PGBIN/pg_ctl" -D "$PGD/data" -m immediate stop >/dev/null 2>&1
    PG_UP=""
}
trap 'stop_pg; for p in $PIDS; do kill "$p" 2>/dev/null; done; rm -rf "$TMP"' EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
        2>/dev/null || echo $((20000 + $$ % 20000))
}

# psql as role $1 (postgres: the superuser) on database $2, quiet, unaligned
pg_psql() {
    u=$1 d=$2
    shift 2
    "$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PGD/sock" -p "$PGPORT" -U "$u" -d "$d" "$@"
}

# pg_sql SQL: one statement as bitnet with the scope of every tenant
pg_sql() {
    pg_psql bitnet bitnet -c "BEGIN" -c "SELECT set_config('app.tenant_id', 'all', true)" \
        -c "$1" -c "COMMIT" | sed '/^all$/d;/^$/d'
}

start_pg() {
    PG_SKIP=""
    if [ ! -x "$PGBIN/initdb" ] || [ ! -x "$PGBIN/pg_ctl" ] || [ ! -x "$PGBIN/psql" ]; then
        PG_SKIP="no PostgreSQL server (Debian package postgresql)"
        return 1
    fi
    if [ "$(id -u)" = 0 ] && ! command -v runuser >/dev/null 2>&1; then
        PG_SKIP="running as root without runuser (PostgreSQL refuses root)"
        return 1
    fi
    mkdir -p "$PGD/sock"
    if [ "$(id -u)" = 0 ]; then
        chmod o+x "$TMP" # nobody passes through to its own folder, and reads nothing else
        chown -R nobody "$PGD"
    fi
    PGPORT=$(free_port)
    if ! pg_as "$PGBIN/initdb" -D "$PGD/data" -U postgres --auth=trust -E UTF8 --no-sync \
        >"$PGD/initdb.log" 2>&1; then
        PG_SKIP="initdb failed: $(tail -1 "$PGD/initdb.log")"
        return 1
    fi
    PG_OPTS="-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGD/sock -c fsync=off"
    if ! pg_start; then
        PG_SKIP="the server did not start: $(tail -2 "$PGD/log" 2>/dev/null)"
        return 1
    fi
    PG_UP=1
    pg_psql postgres postgres -c "CREATE ROLE bitnet LOGIN" \
        -c "CREATE DATABASE bitnet OWNER bitnet" >/dev/null || {
        PG_SKIP="cannot create the role and database"
        return 1
    }
    PGURL="postgresql://bitnet@127.0.0.1:$PGPORT/bitnet"
    # the same server through its unix socket (libpq: host= a directory)
    PGSOCKURL="postgresql://bitnet@/bitnet?host=$PGD/sock&port=$PGPORT"
    return 0
}

# pg_restart: a fast restart (pg_ctl restart -m fast): every connection is cut; pg_stop and
# pg_start: the same in two steps
pg_restart() {
    pg_as "$PGBIN/pg_ctl" -D "$PGD/data" -l "$PGD/log" -w -t 60 -m fast restart >/dev/null 2>&1
}
pg_stop() {
    pg_as "$PGBIN/pg_ctl" -D "$PGD/data" -w -t 60 -m fast stop >/dev/null 2>&1
}
pg_start() {
    pg_as "$PGBIN/pg_ctl" -D "$PGD/data" -l "$PGD/log" -w -t 60 -o "$PG_OPTS" start >/dev/null 2>&1
}
