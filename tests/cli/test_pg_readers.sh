#!/bin/sh
# The readers of the platform's store follow --database and the config's database like the
# platform's commands: the TUI's Usage screen (bitnet tui --screen usage, headless) and
# bitnet validate's check of the tenants object read the PostgreSQL store (a real server the
# test starts on loopback from Debian's binaries: tests/cli/pg_lib.sh; SKIP without them), not
# the local history, which holds another tenant. Bad URLs are usage errors (exit 2), a
# database key that is not a PostgreSQL URL is an error of validate, a server that does not
# answer is a warning.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
export BITNET_CONFIG="$TMP/config.json" BITNET_HISTORY_DB="$TMP/history.db" HOME="$TMP"
export LANG=C.UTF-8 LC_ALL=C.UTF-8
unset BITNET_HISTORY BITNET_DATA_DIR BITNET_DATABASE BITNET_MODEL NO_COLOR COLUMNS LINES
B=$BITNET
T=test_pg_readers.sh
echo "$T"

echo '{}' >"$BITNET_CONFIG"
expect_exit 2 "tui --database mysql://" -- "$B" tui --database mysql://h/d --size 80x24 --max-frames 1
expect_grep "not a PostgreSQL URL" "$TMP/err" "tui: the bad URL named"
expect_one_line_err "tui --database mysql://"
expect_exit 2 "validate --database sqlite:x" -- "$B" validate "$BITNET_CONFIG" --database sqlite:x
expect_grep "not a PostgreSQL URL" "$TMP/err" "validate: the bad URL named"
expect_exit 2 "validate --database without a value" -- "$B" validate "$BITNET_CONFIG" --database
echo '{"database": "mysql://h/d"}' >"$TMP/bad.json"
expect_exit 1 "validate: the database key is not a PostgreSQL URL" -- "$B" validate "$TMP/bad.json" --json
grep -q '"key":[[:space:]]*"database"' "$TMP/out" && ok "validate: the finding names database" ||
    bad "validate: no finding on database: $(cat "$TMP/out")"
"$B" tui --help | grep -q -- "--database URL" && ok "tui --help names --database" ||
    bad "tui --help lacks --database"
"$B" validate --help | grep -q -- "--database URL" && ok "validate --help names --database" ||
    bad "validate --help lacks --database"

# a server that does not answer the protocol (it closes each connection): the Usage screen
# tries once, not at each 5 s refresh (each try could hold the UI for libpq's connect_timeout),
# and again at once on r
if command -v python3 >/dev/null 2>&1; then
    python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1])); __import__("os").rename(sys.argv[1] + ".tmp", sys.argv[1])
t0, log = None, open(sys.argv[2], "a")
while True:
    c, _ = s.accept(); now = time.time(); t0 = t0 or now
    log.write("%.2f\n" % (now - t0)); log.flush(); c.close()
' "$TMP/closer.port" "$TMP/closer.log" &
    PIDS="$PIDS $!"
    i=0
    while [ ! -s "$TMP/closer.port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    printf '%s\n' "sleep:11000" r "sleep:1000" >"$TMP/closer.keys"
    setsid "$B" tui --screen usage --size 140x30 --keys "$TMP/closer.keys" --dump "$TMP/closer.txt" \
        --database "postgresql://bitnet@127.0.0.1:$(cat "$TMP/closer.port")/bitnet" </dev/null \
        >/dev/null 2>"$TMP/closer.err" || bad "tui closer: $(cat "$TMP/closer.err")"
    # the tries: at 0 s (libpq may connect twice for one try), none from 1 s to 10.5 s, r at 11 s
    mid=$(awk '$1 >= 1 && $1 < 10.5' "$TMP/closer.log" | wc -l)
    late=$(awk '$1 >= 10.5' "$TMP/closer.log" | wc -l)
    [ "$mid" -eq 0 ] && [ "$late" -ge 1 ] &&
        ok "Usage: a failed PostgreSQL is not tried at each refresh, and r tries again" ||
        bad "Usage tries: $(tr '\n' ' ' <"$TMP/closer.log")"
    expect_grep "the store in PostgreSQL:" "$TMP/closer.txt" "Usage: the failure is shown"
fi

if ! start_pg; then
    echo "  SKIP the rest of $T: $PG_SKIP"
    finish "$T"
    exit
fi

# the history has its own tenant, ghost; PostgreSQL has acme and globex, with usage today
"$B" tenants add ghost --tier team >/dev/null 2>&1 || bad "tenants add ghost (history)"
"$B" tenants add acme --tier team --database "$PGURL" >/dev/null 2>&1 || bad "tenants add acme"
"$B" tenants add globex --tier team --database "$PGURL" >/dev/null 2>&1 || bad "tenants add globex"
now=$(date -u +%s)000
pg_sql "INSERT INTO usage (request_id, tenant_id, model, prompt_tokens, completion_tokens,
    duration_ms, status, at) SELECT r, (SELECT id FROM tenants WHERE name = n), 'm', p, c, 5, 'ok',
    $now FROM (VALUES ('a1', 'acme', 1000, 2000), ('a2', 'acme', 10, 20),
    ('g1', 'globex', 7, 0)) v(r, n, p, c)" >/dev/null || bad "usage rows in PostgreSQL"
[ "$(pg_sql "SELECT count(*) FROM usage")" = 3 ] && ok "3 usage rows in PostgreSQL" ||
    bad "usage rows: $(pg_sql "SELECT count(*) FROM usage")"

# ---- the Usage screen --------------------------------------------------------------------------
# usage NAME ARGS...: a headless Usage screen, its last frame in $TMP/NAME.txt
usage() {
    n=$1
    shift
    setsid "$B" tui --screen usage --size 140x30 --max-frames 3 --dump "$TMP/$n.txt" "$@" \
        </dev/null >"$TMP/$n.out" 2>"$TMP/$n.err" || bad "tui $n: exit $?: $(cat "$TMP/$n.err")"
}
printf '{"database": "%s", "tenants": {"acme": {"requests_per_min": 1200}, "ghost": {}}}\n' \
    "$PGURL" >"$BITNET_CONFIG"
usage cfg
expect_grep "from the ledger in PostgreSQL" "$TMP/cfg.txt" "Usage (config's database): from PostgreSQL"
grep -Eq "acme +team +active +2 +3030 +2 +3030 " "$TMP/cfg.txt" &&
    ok "Usage: acme's 2 requests and 3030 tokens today and this month, from PostgreSQL" ||
    bad "Usage: acme's row: $(grep -E 'acme|store' "$TMP/cfg.txt")"
grep -Eq "globex +team +active +1 +7 " "$TMP/cfg.txt" && ok "Usage: globex's row from PostgreSQL" ||
    bad "Usage: globex's row missing"
grep -q "ghost" "$TMP/cfg.txt" && bad "Usage shows the history's tenant ghost" ||
    ok "Usage: not the history's tenants"
echo '{}' >"$BITNET_CONFIG"
usage flag --database "$PGURL"
grep -Eq "acme +team +active +2 +3030 " "$TMP/flag.txt" && ok "Usage (--database): acme from PostgreSQL" ||
    bad "Usage --database: $(grep -E 'acme|ghost|store' "$TMP/flag.txt")"
usage hist
grep -Eq "ghost +team +active +0 +0 " "$TMP/hist.txt" && ! grep -q acme "$TMP/hist.txt" &&
    ok "Usage without a database: the history's tenants" || bad "Usage without a database"
usage down --database "postgresql://bitnet@127.0.0.1:1/bitnet"
expect_grep "the store in PostgreSQL: .*cannot connect" "$TMP/down.txt" "Usage: a server that does not answer is named"

# ---- validate: the tenants object against the store --------------------------------------------
printf '{"database": "%s", "tenants": {"acme": {"requests_per_min": 1200}, "ghost": {}}}\n' \
    "$PGURL" >"$TMP/v.json"
expect_exit 0 "validate with the config's database" -- "$B" validate "$TMP/v.json" --json
grep -q '"key":[[:space:]]*"tenants.ghost"' "$TMP/out" && grep -q "in the PostgreSQL store" "$TMP/out" &&
    ok "validate: ghost (only in the history) is no tenant of PostgreSQL" ||
    bad "validate: no warning on ghost: $(cat "$TMP/out")"
grep -q '"key":[[:space:]]*"tenants.acme"' "$TMP/out" && bad "validate: acme (in PostgreSQL) warned of" ||
    ok "validate: acme is found in PostgreSQL"
printf '{"tenants": {"acme": {}, "ghost": {}}}\n' >"$TMP/v2.json"
expect_exit 0 "validate --database" -- "$B" validate "$TMP/v2.json" --json --database "$PGURL"
grep -q '"key":[[:space:]]*"tenants.ghost"' "$TMP/out" && ! grep -q '"key":[[:space:]]*"tenants.acme"' "$TMP/out" &&
    ok "validate --database: PostgreSQL's tenants" || bad "validate --database: $(cat "$TMP/out")"
expect_exit 0 "validate without a database" -- "$B" validate "$TMP/v2.json" --json
grep -q '"key":[[:space:]]*"tenants.acme"' "$TMP/out" && ! grep -q '"key":[[:space:]]*"tenants.ghost"' "$TMP/out" &&
    ok "validate without a database: the history's tenants" || bad "validate history: $(cat "$TMP/out")"
expect_exit 0 "validate: a server that does not answer is a warning" -- "$B" validate "$TMP/v2.json" \
    --json --database "postgresql://bitnet@127.0.0.1:1/bitnet"
grep -q '"key":[[:space:]]*"database"' "$TMP/out" && grep -q "cannot connect" "$TMP/out" &&
    ok "validate: the unreachable store named on database" || bad "validate down: $(cat "$TMP/out")"

finish "$T"
