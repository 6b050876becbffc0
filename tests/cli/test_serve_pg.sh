#!/bin/sh
# bitnet serve --tenants --database: the platform's store on a real PostgreSQL server the test
# starts on loopback from Debian's binaries (tests/cli/pg_lib.sh; SKIP without them). Bad URLs,
# a server that does not answer and a superuser role (row-level security would not apply) are
# one-line errors. Tenants and keys are made with the commands' --database; the store-level
# unit test (test_db_pg: concurrent migrations, idempotent ledger, pool, RLS, audit chain,
# outbox) runs against a database of its own. Requests over serve are in the ledger exactly
# once each; a tenant's usage is read under its own scope; row-level security holds in the
# database itself: a transaction scoped to tenant A sees none of B's rows and cannot write
# one, and one with no scope sees nothing. PostgreSQL restarted while a ledger write waits
# (on a table lock): the write is tried again and the request answered 200, its row there
# once; a request sent while it is down waits for it (key lookup tried again with backoff);
# restarted under a stream of requests: every request a client saw complete is in the
# ledger exactly once, and those after the restart all succeed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
export BITNET_CONFIG="$TMP/config.json" BITNET_HISTORY_DB="$TMP/history.db" HOME="$TMP"
unset BITNET_HISTORY BITNET_HISTORY_RETENTION_DAYS BITNET_DATA_DIR BITNET_DATABASE
# no quota: the ledger is read at admission only for one
echo '{"tiers": {"team": {"monthly_tokens": 0}}}' >"$BITNET_CONFIG"
MODEL=assets/models/bitnet-tinystories.gguf
B=$BITNET
echo "test_serve_pg.sh"

expect_exit 2 "--database without --tenants" -- "$B" serve --database postgresql://h/d -m "$MODEL"
expect_one_line_err "--database without --tenants"
expect_exit 1 "serve --database mysql://" -- "$B" serve --tenants --database mysql://h/d \
    -m "$MODEL" --listen 127.0.0.1:0
expect_grep "not a PostgreSQL URL" "$TMP/err" "serve: the bad URL named"
expect_exit 1 "tenants list --database sqlite:x" -- "$B" tenants list --database sqlite:x
expect_grep "not a PostgreSQL URL" "$TMP/err" "tenants: the bad URL named"
expect_one_line_err "tenants list --database sqlite:x"
expect_exit 2 "tenants list --database without a value" -- "$B" tenants list --database
for c in tenants keys usage billing audit; do
    "$B" $c --help | grep -q -- "--database URL" && ok "$c --help names --database" ||
        bad "$c --help lacks --database"
done
"$B" serve --help | grep -q -- "--database URL" && ok "serve --help names --database" ||
    bad "serve --help lacks --database"

for c in curl python3; do
    if ! command -v $c >/dev/null 2>&1; then
        echo "  SKIP the rest of test_serve_pg.sh: no $c"
        finish test_serve_pg.sh
        exit
    fi
done
if ! start_pg; then
    echo "  SKIP the rest of test_serve_pg.sh: $PG_SKIP"
    finish test_serve_pg.sh
    exit
fi

expect_exit 1 "no server at the URL" -- "$B" tenants list --database "postgresql://bitnet@127.0.0.1:1/bitnet"
expect_grep "cannot connect to PostgreSQL" "$TMP/err" "the connection failure named"
expect_one_line_err "no server at the URL"
SUPER="postgresql://postgres@127.0.0.1:$PGPORT/bitnet"
expect_exit 1 "a superuser role" -- "$B" tenants list --database "$SUPER"
expect_grep "bypasses row-level security" "$TMP/err" "a superuser is refused (RLS would not apply)"

# ---- the store-level unit test, on a database of its own ---------------------------------------
UNIT="$(dirname "$B")/tests/test_db_pg"
if [ -x "$UNIT" ]; then
    pg_psql postgres postgres -c "CREATE DATABASE unit OWNER bitnet" >/dev/null
    # a proxy counting round trips (test_round_trips)
    python3 "$(dirname "$0")/pg_turns.py" "$PGPORT" "$TMP/turns.port" "$TMP/turns" 2>"$TMP/turns.log" &
    PIDS="$PIDS $!"
    i=0
    while [ ! -s "$TMP/turns.port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    if BITNET_TEST_PG_URL="postgresql://bitnet@127.0.0.1:$PGPORT/unit" BITNET_TEST_PG_TURNS="$TMP/turns" \
        BITNET_TEST_PG_TURNS_URL="postgresql://bitnet@127.0.0.1:$(cat "$TMP/turns.port")/unit" \
        "$UNIT" >"$TMP/unit.log" 2>&1; then
        ok "test_db_pg against the server ($(grep -c '^\[       OK' "$TMP/unit.log") tests)"
    else
        bad "test_db_pg: $(grep -E 'FAIL|Error|error' "$TMP/unit.log" | head -5)"
    fi
else
    echo "  SKIP test_db_pg against the server: $UNIT not built"
fi

# ---- tenants and keys with --database, and the config's database --------------------------------
D="--database $PGURL"
# shellcheck disable=SC2086
"$B" tenants add acme --tier team --stripe-customer cus_acme $D >/dev/null 2>&1 || bad "tenants add acme"
# shellcheck disable=SC2086
"$B" tenants add globex --tier team $D >/dev/null 2>&1 || bad "tenants add globex"
key() {
    # shellcheck disable=SC2086
    "$B" keys create --tenant "$1" --scope "$2" --json $D 2>/dev/null | "$JSONGET" key
}
KA=$(key acme inference,usage) KG=$(key globex inference,usage) KADM=$(key acme admin)
[ -n "$KA" ] && [ -n "$KG" ] && ok "keys made in PostgreSQL" || bad "no keys"
BITNET_DATABASE="$PGURL" "$B" tenants list >"$TMP/out" 2>&1
expect_grep "globex" "$TMP/out" "the config's database (BITNET_DATABASE) is the store"
"$B" tenants list >"$TMP/out" 2>&1
grep -q acme "$TMP/out" && bad "the history has PostgreSQL's tenants" ||
    ok "without --database the history is the store"
AID=$(pg_sql "SELECT id FROM tenants WHERE name = 'acme'")
GID=$(pg_sql "SELECT id FROM tenants WHERE name = 'globex'")

start_server "$TMP/s.log" -m "$MODEL" --slots 2 --tenants --database "$PGURL"
[ -n "$URL" ] || { bad "no server"; finish test_serve_pg.sh; exit; }
expect_grep "tenants' store is PostgreSQL (schema 3" "$TMP/s.log" "serve says its store"

# post KEY: a completion; CODE its status, ID its id (the ledger's request id)
post() {
    CODE=$(curl -s -o "$TMP/r.json" -w '%{http_code}' -H "Authorization: Bearer $1" \
        -H 'Content-Type: application/json' -d '{"prompt": "Once upon a time", "max_tokens": 4}' \
        "$URL/v1/completions")
    ID=$("$JSONGET" id <"$TMP/r.json" 2>/dev/null)
}
: >"$TMP/ids"
codes=""
for k in "$KA" "$KA" "$KA" "$KG" "$KG"; do
    post "$k"
    codes="$codes$CODE "
    [ "$CODE" = 200 ] && echo "$ID" >>"$TMP/ids"
done
[ "$codes" = "200 200 200 200 200 " ] && ok "5 requests answered" || bad "codes: $codes"
n=$(pg_sql "SELECT count(*) FROM usage WHERE tenant_id = $AID")
m=$(pg_sql "SELECT count(*) FROM usage WHERE tenant_id = $GID")
[ "$n" = 3 ] && [ "$m" = 2 ] && ok "ledger rows: acme 3, globex 2" || bad "ledger rows: $n, $m"
once=0
while read -r id; do
    [ "$(pg_sql "SELECT count(*) FROM usage WHERE request_id = '$id'")" = 1 ] && once=$((once + 1))
done <"$TMP/ids"
[ "$once" = 5 ] && ok "each answered request is in the ledger once" || bad "$once of 5 once"
e=$(pg_sql "SELECT count(*) FROM billing_outbox WHERE tenant_id = $AID AND state = 'pending'")
[ "$e" = 3 ] && ok "acme's 3 meter events are in the outbox" || bad "outbox: $e"
# the server applied the retention periods after its first ledger row (nothing old to fold)
# and kept the time in the store, for every replica's daily look
[ "$(pg_sql "SELECT count(*) FROM bitnet_meta WHERE key = 'retention_applied_ms'")" = 1 ] &&
    ok "serve applied the retention periods on PostgreSQL (bitnet_meta)" ||
    bad "no retention time in bitnet_meta"
curl -s -H "Authorization: Bearer $KA" "$URL/v1/usage" >"$TMP/u.json"
[ "$("$JSONGET" total.requests <"$TMP/u.json")" = 3 ] && ok "GET /v1/usage: acme's 3" ||
    bad "usage: $(cat "$TMP/u.json")"
# shellcheck disable=SC2086
"$B" usage report --tenant globex --json $D >"$TMP/out" 2>&1
[ "$("$JSONGET" total.requests <"$TMP/out")" = 2 ] && ok "usage report --database: globex's 2" ||
    bad "usage report: $(cat "$TMP/out")"

# ---- key lookups kept 250 ms: the store's revocation and suspension reach it within a second ----
# (another process changes the store, as another replica or the CLI would)
curl -s -H "Authorization: Bearer $KG" "$URL/v1/models" "$URL/v1/models" "$URL/v1/models" \
    "$URL/v1/models" "$URL/v1/models" "$URL/v1/models" >/dev/null
curl -s -H "Authorization: Bearer $KADM" "$URL/metrics" >"$TMP/metrics"
grep -q '^bitnet_key_lookups_total{from="cache"} [1-9]' "$TMP/metrics" &&
    grep -q '^bitnet_key_lookups_total{from="store"} [1-9]' "$TMP/metrics" &&
    ok "key lookups kept: six requests in a row, some answered from the cache" ||
    bad "no key lookup from the cache: $(grep bitnet_key_lookups "$TMP/metrics")"
KR=$(key globex inference)
post "$KR"
c1=$CODE
post "$KR"
c2=$CODE
# shellcheck disable=SC2086
"$B" keys revoke "$(pg_sql "SELECT max(id) FROM api_keys")" $D >/dev/null 2>&1 || bad "keys revoke"
sleep 1
post "$KR"
[ "$c1 $c2 $CODE" = "200 200 401" ] && ok "a key revoked in the store is refused a second later" ||
    bad "revoked key: $c1 $c2 $CODE"
# shellcheck disable=SC2086
"$B" tenants suspend globex $D >/dev/null 2>&1 || bad "tenants suspend"
sleep 1
post "$KG"
c1=$CODE
# shellcheck disable=SC2086
"$B" tenants resume globex $D >/dev/null 2>&1 || bad "tenants resume"
sleep 1
post "$KG"
[ "$c1 $CODE" = "403 200" ] && ok "a tenant suspended (and resumed) in the store: seen a second later" ||
    bad "suspended tenant: $c1 $CODE"

# ---- row-level security in the database -------------------------------------------------------
scoped() { # scoped TENANT SQL: as the server's role, scoped to TENANT
    pg_psql bitnet bitnet -c "BEGIN" -c "SELECT set_config('app.tenant_id', '$1', true)" \
        -c "$2" -c "COMMIT" 2>&1 | sed "/^$1\$/d;/^\$/d"
}
[ "$(scoped "$AID" "SELECT count(*) FROM usage WHERE tenant_id = $GID")" = 0 ] &&
    ok "RLS: under acme, globex's ledger rows are not there" || bad "RLS: acme reads globex"
[ "$(scoped "$AID" "SELECT count(*) FROM usage")" = 3 ] &&
    ok "RLS: under acme, acme's 3 rows" || bad "RLS: acme's count"
[ "$(scoped "$AID" "SELECT count(*) FROM api_keys WHERE tenant_id = $GID")" = 0 ] &&
    ok "RLS: under acme, globex's keys are not there" || bad "RLS: keys"
[ "$(pg_psql bitnet bitnet -c "SELECT count(*) FROM usage")" = 0 ] &&
    ok "RLS: no scope, no rows (the owner too: FORCE)" || bad "RLS: unscoped reads"
scoped "$AID" "INSERT INTO usage (request_id, tenant_id, model, prompt_tokens, completion_tokens,
    duration_ms, status, at) VALUES ('forged', $GID, 'm', 1, 1, 1, 'ok', 0)" >"$TMP/out"
expect_grep "row-level security" "$TMP/out" "RLS: acme cannot write a row of globex"

# ---- PostgreSQL restarted while a ledger write waits --------------------------------------------
pg_psql postgres bitnet -c "BEGIN" -c "LOCK TABLE usage IN ACCESS EXCLUSIVE MODE" \
    -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
LOCKER=$!
PIDS="$PIDS $LOCKER"
locked() {
    pg_psql postgres bitnet -c "SELECT count(*) FROM pg_locks WHERE relation = 'usage'::regclass
        AND mode = 'AccessExclusiveLock' AND granted" 2>/dev/null
}
i=0
while [ "$(locked)" != 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
(post "$KA" && echo "$CODE $ID" >"$TMP/held") &
CLIENT=$!
waiting() {
    pg_psql postgres bitnet -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type =
        'Lock' AND query LIKE '%INSERT INTO usage%'" 2>/dev/null
}
i=0
while [ "$(waiting)" != 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(waiting)" = 1 ] && ok "a ledger write waits on the lock" || bad "no ledger write waiting"
# its backend ended first, while the lock is still held: a restart alone may end the locker
# first, and the write then commits before its own backend is ended (no try again to see)
pg_psql postgres bitnet -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE
    wait_event_type = 'Lock' AND query LIKE '%INSERT INTO usage%'" >/dev/null 2>&1
pg_restart || bad "pg_ctl restart"
wait "$CLIENT"
set -- $(cat "$TMP/held" 2>/dev/null)
[ "$1" = 200 ] && ok "the request answered 200 across the restart" || bad "held request: $1"
[ -n "$2" ] && [ "$(pg_sql "SELECT count(*) FROM usage WHERE request_id = '$2'")" = 1 ] &&
    ok "its row is in the ledger once" || bad "held request's row: $2"
expect_grep "is in the ledger (try [2-9])" "$TMP/s.log" "the ledger write was tried again"

# ---- a request that comes while PostgreSQL is down waits for it ----------------------------------
# (with a key no request has used yet: the lookups of keys in use are kept fresh by the
# replica, so its key lookup too waits for the store)
KD=$(key globex inference)
pg_stop || bad "pg_ctl stop"
(post "$KD" && echo "$CODE $ID" >"$TMP/down") &
CLIENT=$!
sleep 0.7
pg_start || bad "pg_ctl start"
wait "$CLIENT"
set -- $(cat "$TMP/down" 2>/dev/null)
[ "$1" = 200 ] && ok "a request sent while the server was down answered 200 once it was back" ||
    bad "request while down: $1"
[ -n "$2" ] && [ "$(pg_sql "SELECT count(*) FROM usage WHERE request_id = '$2'")" = 1 ] &&
    ok "its row is in the ledger once" || bad "row of the request while down: $2"

# ---- restarted under a stream of requests -----------------------------------------------------
(
    j=0
    while [ $j -lt 30 ]; do
        c=$(curl -s -o "$TMP/c$j.json" -w '%{http_code}' -H "Authorization: Bearer $KG" \
            -H 'Content-Type: application/json' -d '{"prompt": "Once", "max_tokens": 3}' \
            "$URL/v1/completions")
        echo "$c $("$JSONGET" id <"$TMP/c$j.json" 2>/dev/null)" >>"$TMP/stream"
        j=$((j + 1))
        sleep 0.05
    done
) &
CLIENT=$!
sleep 0.5
pg_restart || bad "pg_ctl restart under load"
wait "$CLIENT"
n200=$(grep -c '^200 ' "$TMP/stream")
other=$(grep -vc '^200 ' "$TMP/stream")
exact=0
for id in $(awk '$1 == 200 { print $2 }' "$TMP/stream"); do
    [ "$(pg_sql "SELECT count(*) FROM usage WHERE request_id = '$id'")" = 1 ] && exact=$((exact + 1))
done
[ "$n200" -gt 0 ] && [ "$exact" = "$n200" ] &&
    ok "every request answered 200 ($n200, $other others) is in the ledger exactly once" ||
    bad "$exact of $n200 answered requests in the ledger once"
tail -5 "$TMP/stream" | grep -vq '^200 ' && bad "the last requests failed: $(tail -5 "$TMP/stream")" ||
    ok "the requests after the restart succeed"
codes=""
for k in "$KA" "$KG"; do
    post "$k"
    codes="$codes$CODE "
done
[ "$codes" = "200 200 " ] && ok "both tenants served after the restarts" || bad "after: $codes"
dup=$(pg_sql "SELECT count(*) - count(DISTINCT request_id) FROM usage")
[ "$dup" = 0 ] && ok "no request id twice in the ledger" || bad "$dup duplicates"
curl -s -H "Authorization: Bearer $KADM" "$URL/metrics" >"$TMP/metrics"
grep -q '^bitnet_store_retries_total{call="ledger"} [1-9]' "$TMP/metrics" &&
    grep -q '^bitnet_store_retries_total{call="auth"} [1-9]' "$TMP/metrics" &&
    grep -q '^bitnet_store_failures_total{call="ledger"} 0' "$TMP/metrics" &&
    ok "/metrics: the store's retries counted (auth and ledger), no failure" ||
    bad "metrics: $(grep bitnet_store "$TMP/metrics")"
grep -q '^bitnet_key_lookups_total{from="refresh"} [1-9]' "$TMP/metrics" &&
    ok "/metrics: the lookups of keys in use were made again ahead of the requests" ||
    bad "no key lookup refreshed: $(grep bitnet_key_lookups "$TMP/metrics")"

kill -TERM "$SPID" 2>/dev/null
wait "$SPID"
[ $? -eq 0 ] && ok "SIGTERM: exit 0" || bad "serve exit status"
grep -q "not in the ledger" "$TMP/s.log" && bad "a ledger write was given up: $(grep 'not in the ledger' "$TMP/s.log")" ||
    ok "no ledger write given up"

# ---- the outbox to a loopback Stripe: billing send --database ----------------------------------
mkdir "$TMP/rec"
export STRIPE_SECRET_KEY=sk_test_pg
python3 tests/cli/stripe_recorder.py "$TMP/rec" sk_test_pg bitnet_tokens 0 2>"$TMP/rec.log" &
PIDS="$PIDS $!"
wait_grep . "$TMP/rec/port" 100 || bad "the recorder did not start: $(cat "$TMP/rec.log")"
cat >"$BITNET_CONFIG" <<EOF
{"tiers": {"team": {"monthly_tokens": 0}},
 "billing": {"event_name": "bitnet_tokens", "endpoint": "http://127.0.0.1:$(cat "$TMP/rec/port")/",
             "timeout": "2s", "backoff_max": "1s"}}
EOF
# shellcheck disable=SC2086
"$B" billing send --once $D >"$TMP/out" 2>&1 || bad "billing send: $(cat "$TMP/out")"
rows=$(pg_sql "SELECT count(*) FROM usage WHERE tenant_id = $AID")
sent=$(wc -l <"$TMP/rec/events.jsonl" 2>/dev/null)
[ "$rows" -gt 3 ] && [ "$sent" = "$rows" ] &&
    ok "billing send --database: each of acme's $rows ledger rows delivered once" ||
    bad "delivered $sent of $rows"
# shellcheck disable=SC2086
"$B" billing status --json $D >"$TMP/out" 2>&1
[ "$("$JSONGET" pending <"$TMP/out")" = 0 ] && ok "billing status --database: none pending" ||
    bad "billing status: $(cat "$TMP/out")"
expect_exit 0 "billing reconcile --database: the ledger billed exactly" -- "$B" billing reconcile $D
expect_exit 0 "tenants erase globex --database" -- "$B" tenants erase globex $D
[ "$(pg_sql "SELECT status || ':' || name FROM tenants WHERE id = $GID")" = "erased:erased-$GID" ] &&
    [ "$(pg_sql "SELECT count(request_id) FROM usage WHERE tenant_id = $GID")" = 0 ] &&
    ok "globex erased: its name gone, its ledger rows folded without request ids" ||
    bad "erase: $(pg_sql "SELECT status, name FROM tenants WHERE id = $GID")"
expect_exit 0 "audit verify --database" -- "$B" audit verify $D
finish test_serve_pg.sh
