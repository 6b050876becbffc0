#!/bin/sh
# bitnet tenants retention --database: the retention periods on a PostgreSQL store (a real
# server the test starts on loopback: tests/cli/pg_lib.sh; SKIP without Debian's packages),
# as test_tenants.sh checks them on the history: a dry run counts and changes nothing; the
# ledger rows of days older than retention.ledger_days are folded into one aggregate per
# tenant, UTC day and model, the recent one kept, the usage report byte-identical; a key
# revoked long ago deleted; the billing outbox kept whole (its pending events too); the audit
# chain still verifies with a retention.apply entry per table; the aggregates stay each
# tenant's own under row-level security; a second run finds nothing. The store-level test
# (test_db_pg test_retention) covers the daily gate shared by replicas.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
export BITNET_CONFIG="$TMP/config.json" BITNET_HISTORY_DB="$TMP/history.db" HOME="$TMP"
unset BITNET_HISTORY BITNET_DATA_DIR BITNET_DATABASE BITNET_RETENTION_LEDGER_DAYS \
    BITNET_RETENTION_KEYS_DAYS
echo '{"retention": {"ledger_days": 30}}' >"$BITNET_CONFIG"
B=$BITNET
T=test_pg_retention.sh
echo "$T"
jv() { "$JSONGET" "$1" <"$TMP/out"; }
expect_eq() { if [ "$1" = "$2" ]; then ok "$3"; else bad "$3: got '$1', wanted '$2'"; fi; }

if ! start_pg; then
    echo "  SKIP $T: $PG_SKIP"
    finish "$T"
    exit
fi
D="--database $PGURL"

# shellcheck disable=SC2086
{
    "$B" tenants add ret1 --tier team --stripe-customer cus_ret1 $D >/dev/null 2>&1 || bad "tenants add ret1"
    "$B" tenants add ret2 --tier team $D >/dev/null 2>&1 || bad "tenants add ret2"
    "$B" keys create --tenant ret1 --json $D >"$TMP/out" 2>/dev/null || bad "keys create"
    RK=$(jv id)
    "$B" keys create --tenant ret1 --json $D >"$TMP/out" 2>/dev/null || bad "keys create (kept)"
    "$B" keys revoke "$RK" $D >/dev/null 2>&1 || bad "keys revoke"
}
T1=$(pg_sql "SELECT id FROM tenants WHERE name = 'ret1'")
T2=$(pg_sql "SELECT id FROM tenants WHERE name = 'ret2'")
old=$(date -u -d '100 days ago' +%s)000
new=$(date -u -d '1 hour ago' +%s)000
# rows as serve writes them (the meter events of ret1's, pending: not yet sent to Stripe)
pg_sql "INSERT INTO usage (request_id, tenant_id, key_id, model, prompt_tokens, completion_tokens,
    duration_ms, status, at) VALUES ('q1', $T1, $RK, 'm', 10, 20, 5, 'ok', $old),
    ('q2', $T1, $RK, 'm', 1, 2, 5, 'ok', $old + 1000), ('q3', $T1, $RK, 'm', 3, 4, 5, 'ok', $new),
    ('q4', $T2, NULL, 'm', 7, 7, 5, 'ok', $old)" >/dev/null || bad "usage rows"
pg_sql "INSERT INTO billing_outbox (event_id, request_id, tenant_id, customer, value, at, next_at)
    SELECT 'ev_' || request_id, request_id, tenant_id, 'cus_ret1', prompt_tokens + completion_tokens,
    at, at FROM usage WHERE tenant_id = $T1" >/dev/null || bad "outbox rows"
pg_sql "UPDATE api_keys SET revoked_at = $old WHERE id = $RK" >/dev/null
# shellcheck disable=SC2086
"$B" usage report --json $D >"$TMP/before.json" 2>&1 || bad "usage report: $(cat "$TMP/before.json")"

# shellcheck disable=SC2086
expect_exit 0 "retention --dry-run on PostgreSQL" -- "$B" tenants retention --dry-run --json $D
expect_eq "$(jv dry_run)/$(jv ledger_rows)/$(jv ledger_aggregates)/$(jv keys)/$(jv periods.ledger_days)" \
    "true/3/2/1/30" "retention --dry-run counts (3 old rows of 2 tenants, the old key)"
expect_eq "$(pg_sql "SELECT count(*) FROM usage")/$(pg_sql "SELECT count(*) FROM api_keys")" "4/2" \
    "a dry run changes nothing"

# shellcheck disable=SC2086
expect_exit 0 "tenants retention --database" -- "$B" tenants retention $D
expect_grep "ledger rows folded  3 into 2" "$TMP/out" "retention says what it folded"
expect_grep "keys deleted        1" "$TMP/out" "and the keys it deleted"
expect_eq "$(pg_sql "SELECT string_agg(coalesce(request_id, status || ':' || tenant_id || ':' || requests), ',' ORDER BY request_id NULLS LAST, tenant_id) FROM usage")" \
    "q3,aggregate:$T1:2,aggregate:$T2:1" "old rows folded into one aggregate per tenant, the recent one kept"
expect_eq "$(pg_sql "SELECT count(*) FROM api_keys WHERE id = $RK")/$(pg_sql "SELECT count(*) FROM api_keys")" \
    "0/1" "the key revoked long ago is gone, the other kept"
expect_eq "$(pg_sql "SELECT count(*) || '/' || sum(value) FROM billing_outbox WHERE state = 'pending'")" \
    "3/40" "the outbox kept whole: its 3 pending events still to deliver"
# shellcheck disable=SC2086
"$B" usage report --json $D >"$TMP/after.json" 2>&1
cmp -s "$TMP/before.json" "$TMP/after.json" && ok "usage report unchanged by the fold" ||
    bad "usage report changed: $(diff "$TMP/before.json" "$TMP/after.json" | head -5)"
# shellcheck disable=SC2086
expect_exit 0 "audit verify after retention" -- "$B" audit verify --json $D
expect_eq "$(jv ok)" "true" "the chain is intact after retention"
expect_eq "$(pg_sql "SELECT count(*) FROM audit WHERE action = 'retention.apply' AND actor = 'system:retention'")" \
    "2" "audited: one entry per table"
# row-level security: under ret2's own scope, only its aggregate
rls=$(pg_psql bitnet bitnet -c "BEGIN" -c "SELECT set_config('app.tenant_id', '$T2', true)" \
    -c "SELECT count(*) || ':' || sum(requests) FROM usage" -c "COMMIT" | sed -n 2p)
expect_eq "$rls" "1:1" "the aggregates stay each tenant's own (ret2's scope sees its one row)"

# shellcheck disable=SC2086
expect_exit 0 "retention again" -- "$B" tenants retention --json $D
expect_eq "$(jv ledger_rows)/$(jv keys)" "0/0" "a second run finds nothing"
# shellcheck disable=SC2086
expect_exit 2 "retention with an argument" -- "$B" tenants retention now $D
# a command given --database still works when the config does not load (its periods: none)
echo '{"retention": ' >"$BITNET_CONFIG"
# shellcheck disable=SC2086
expect_exit 0 "tenants list --database with a config that does not load" -- "$B" tenants list $D
expect_grep "ret1" "$TMP/out" "the tenants listed"
finish "$T"
