# The platform's commands: tenants, keys, usage report and audit, against a temporary history.
# JSON outputs are read back with jsonget; malformed arguments exit 2 with a short error; a
# revoked key or a suspended tenant fails `keys check` at once; erase keeps the usage totals
# and removes the name and keys; a tampered audit log fails `audit verify` (exit 1). The usage
# rows (which bitnet serve writes) and the tampering are done with the sqlite3 command; without
# it those parts are skipped.
. tests/cli/lib.sh
export BITNET_HISTORY_DB="$TMP/history.db"
export BITNET_CONFIG="$TMP/no-config.json"
unset BITNET_HISTORY BITNET_HISTORY_RETENTION_DAYS BITNET_DATA_DIR
B=$BITNET

# jv PATH: the value at PATH of the JSON in $TMP/out
jv() { "$JSONGET" "$1" <"$TMP/out"; }
# expect_eq GOT WANT WHAT
expect_eq() { if [ "$1" = "$2" ]; then ok "$3"; else bad "$3: got '$1', wanted '$2'"; fi; }

# ---- tenants ---------------------------------------------------------------------------------
expect_exit 0 "tenants add acme --tier team" -- "$B" tenants add acme --tier team --stripe-customer cus_A1 --json
expect_eq "$(jv name)/$(jv tier)/$(jv status)/$(jv stripe_customer)" "acme/team/active/cus_A1" "add --json"
ACME=$(jv id)
expect_exit 0 "tenants add globex (default tier)" -- "$B" tenants add globex --json
expect_eq "$(jv tier)" "developer" "the default tier is developer"
GLOBEX=$(jv id)
expect_exit 1 "a taken name" -- "$B" tenants add acme
expect_grep "exists" "$TMP/err" "a taken name is named"
expect_exit 0 "tenants list --json" -- "$B" tenants list --json
expect_eq "$(jv tenants.0.name),$(jv tenants.1.name)" "acme,globex" "list --json has both"
expect_exit 0 "tenants show by name" -- "$B" tenants show acme --json
expect_eq "$(jv id)" "$ACME" "show by name"
expect_exit 0 "tenants show by id" -- "$B" tenants show "$GLOBEX" --json
expect_eq "$(jv name)" "globex" "show by id"
expect_exit 1 "show an unknown tenant" -- "$B" tenants show nobody
expect_one_line_err "unknown tenant"

# ---- a tenant's own limits: the config's tenants object over its tier's ----------------------
cat >"$TMP/own.json" <<'JSON'
{ "tenants": { "acme": { "requests_per_min": 1200, "monthly_tokens": 0 } } }
JSON
expect_exit 0 "tenants show: the tier's limits" -- "$B" tenants show acme --json
expect_eq "$(jv limits.requests_per_min)/$(jv limits.monthly_tokens)/$(jv limits.overrides.0 2>/dev/null)" \
    "600/100000000/" "no overrides: the team tier's limits"
BITNET_CONFIG="$TMP/own.json" "$B" tenants show acme --json >"$TMP/out"
expect_eq "$(jv limits.requests_per_min)/$(jv limits.tokens_per_min)/$(jv limits.monthly_tokens)" \
    "1200/400000/0" "the tenant's own limits over its tier's"
expect_eq "$(jv limits.overrides.0),$(jv limits.overrides.1)" "requests_per_min,monthly_tokens" \
    "show names the overridden limits"
BITNET_CONFIG="$TMP/own.json" "$B" tenants show acme >"$TMP/out"
expect_grep "1200 requests/min.*own: requests_per_min monthly_tokens" "$TMP/out" "show in text"
printf '{"tenants": {"acme": {}, "acmee": {"requests_per_min": 5}}}\n' >"$TMP/typo.json"
expect_exit 0 "validate: an entry naming no tenant of the store is a warning" -- "$B" validate "$TMP/typo.json"
expect_grep "warning: tenants.acmee: no tenant 'acmee' in " "$TMP/out" "validate names the unknown tenant"
if grep -q "tenants.acme:" "$TMP/out"; then bad "validate warned about acme"; else ok "a known tenant: no warning"; fi
cp "$TMP/own.json" "$TMP/set.json"
expect_exit 0 "config set tenants (JSON)" -- env BITNET_CONFIG="$TMP/set.json" "$B" config set tenants '{"acme": {"concurrent_streams": 3}}'
BITNET_CONFIG="$TMP/set.json" "$B" tenants show acme --json >"$TMP/out"
expect_eq "$(jv limits.concurrent_streams)/$(jv limits.requests_per_min)" "3/600" "config set tenants: the object replaced"
expect_exit 2 "config set tenants: an unknown setting" -- env BITNET_CONFIG="$TMP/set.json" "$B" config set tenants '{"acme": {"rpm": 3}}'
expect_grep "tenants.acme.rpm: unknown setting" "$TMP/err" "config set names the bad setting"
expect_grep "concurrent_streams" "$TMP/set.json" "the file is kept as it was"
BITNET_CONFIG="$TMP/own.json" "$B" tenants show globex --json >"$TMP/out"
expect_eq "$(jv limits.requests_per_min)" "60" "another tenant keeps its tier's"
for bad in '{"tenants": {"acme": {"requests_per_minute": 5}}}' '{"tenants": {"acme": {"requests_per_min": -1}}}' \
    '{"tenants": {"a b": {}}}' '{"tenants": {"acme": []}}'; do
    printf '%s\n' "$bad" >"$TMP/bad.json"
    expect_exit 1 "a bad tenants object: $bad" -- env BITNET_CONFIG="$TMP/bad.json" "$B" tenants show acme
    expect_grep "tenants\." "$TMP/err" "the error names the tenant's key ($bad)"
    expect_exit 1 "validate refuses it: $bad" -- "$B" validate "$TMP/bad.json"
    expect_grep "tenants" "$TMP/out" "validate names the tenants key ($bad)"
done

# malformed arguments: exit 2, a short error
for args in "tenants" "tenants frob" "tenants add" "tenants add 'a b'" "tenants add x,y" \
    "tenants add 123" "tenants add x --tier gold" "tenants add x --tier" "tenants show" \
    "tenants list --bogus" "tenants show acme extra" "keys create" "keys create --tenant acme --scope root" \
    "keys create --tenant acme --expires 2026-13-01" "keys create --tenant acme --expires tomorrow" \
    "keys revoke x" "keys revoke 0" "usage report --from 2026-02-30" "usage report --json --csv" \
    "usage report --from 2026-02-02 --to 2026-02-01" "audit verify --fast" "audit" "keys frob"; do
    eval "set -- $args"
    expect_exit 2 "bitnet $args" -- "$B" "$@"
    expect_one_line_err "bitnet $args"
done

# ---- keys ------------------------------------------------------------------------------------
expect_exit 0 "keys create (inference, usage)" -- "$B" keys create --tenant acme --scope inference --scope usage --json
K1=$(jv key)
K1ID=$(jv id)
expect_eq "$(jv scopes)" "inference,usage" "scopes from two --scope"
case "$K1" in bnk_???????????????????????????????????????????) ok "a key is bnk_ + 43 characters" ;;
*) bad "key format: $K1" ;; esac
expect_exit 0 "keys create in text" -- "$B" keys create --tenant "$GLOBEX" --scope admin --expires 2099-01-01
K2=$(cat "$TMP/out")
expect_grep "not shown" "$TMP/err" "the key is shown once (said on stderr)"
expect_exit 0 "keys list --json" -- "$B" keys list --tenant globex --json
expect_eq "$(jv keys.0.scopes)/$(jv keys.0.expires)" "admin/2099-01-01T00:00:00Z" "list: scopes and expiry"
expect_eq "$(jv keys.0.prefix)" "$(printf %s "$K2" | cut -c1-12)" "list shows the prefix only"
if grep -q -- "$(printf %s "$K2" | cut -c13-)" "$TMP/out"; then bad "list shows the secret"; else
    ok "list does not show the secret"; fi
if command -v sqlite3 >/dev/null 2>&1 && sqlite3 "$BITNET_HISTORY_DB" .dump | grep -q -- "$(printf %s "$K1" | cut -c5-)"; then
    bad "the database holds the key"; else ok "the database does not hold the key"; fi

printf '%s\n' "$K1" >"$TMP/k1"
expect_exit 0 "keys check: a good key" -- sh -c "\"$B\" keys check --json <\"$TMP/k1\""
expect_eq "$(jv result)/$(jv tenant)/$(jv tier)" "ok/$ACME/team" "check: tenant and tier"
echo "bnk_nope" >"$TMP/bad"
expect_exit 1 "keys check: malformed" -- sh -c "\"$B\" keys check --json <\"$TMP/bad\""
expect_eq "$(jv result)" "malformed" "check: malformed"
printf 'bnk_%s\n' "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" >"$TMP/unk"
expect_exit 1 "keys check: unknown" -- sh -c "\"$B\" keys check --json <\"$TMP/unk\""
expect_eq "$(jv result)" "unknown" "check: unknown"
expect_exit 0 "tenants suspend" -- "$B" tenants suspend acme --json
expect_eq "$(jv status)" "suspended" "suspended"
expect_exit 1 "keys check: suspended tenant" -- sh -c "\"$B\" keys check <\"$TMP/k1\""
expect_grep "tenant suspended" "$TMP/err" "check says the tenant is suspended"
expect_exit 1 "no key for a suspended tenant" -- "$B" keys create --tenant acme
expect_exit 0 "tenants resume" -- "$B" tenants resume acme
expect_exit 0 "keys check: works again" -- sh -c "\"$B\" keys check <\"$TMP/k1\""
expect_exit 0 "keys revoke" -- "$B" keys revoke "$K1ID" --json
expect_eq "$(jv revoked)" "true" "revoke --json"
expect_exit 1 "keys check: revoked at once" -- sh -c "\"$B\" keys check --json <\"$TMP/k1\""
expect_eq "$(jv result)" "revoked" "check: revoked"
expect_exit 1 "revoke twice" -- "$B" keys revoke "$K1ID"
expect_exit 1 "keys create: a past expiry" -- "$B" keys create --tenant acme --expires 2001-01-01

# ---- usage (rows as bitnet serve writes them) and erase ----------------------------------------
if command -v sqlite3 >/dev/null 2>&1; then
    d1=$(date -u -d 2026-03-01T10:00:00Z +%s)000
    d2=$(date -u -d 2026-03-02T10:00:00Z +%s)000
    sqlite3 "$BITNET_HISTORY_DB" "INSERT INTO usage (request_id, tenant_id, key_id, model,
        prompt_tokens, completion_tokens, duration_ms, status, at) VALUES
        ('r1', $ACME, $K1ID, 'm', 100, 200, 5, 'ok', $d1),
        ('r2', $ACME, $K1ID, 'm', 1000, 2000, 5, 'ok', $d1),
        ('r3', $ACME, $K1ID, 'm', 10, 20, 5, 'ok', $d2),
        ('r4', $GLOBEX, NULL, 'm', 7, 3, 5, 'ok', $d2)"
    expect_exit 0 "usage report --json" -- "$B" usage report --json
    expect_eq "$(jv rows.0.day)/$(jv rows.0.requests)/$(jv rows.0.prompt_tokens)/$(jv rows.0.completion_tokens)" \
        "2026-03-01/2/1100/2200" "first row: acme's first day"
    # team: 499 USD for 100M tokens: 3300 tokens cost 0.016467
    expect_eq "$(jv rows.0.cost_usd)" "0.016467" "cost at the team tier"
    expect_eq "$(jv total.requests)/$(jv total.prompt_tokens)" "4/1117" "totals"
    expect_exit 0 "usage report --tenant --from --to" -- "$B" usage report --tenant acme --from 2026-03-02 --to 2026-03-02 --json
    expect_eq "$(jv total.requests)/$(jv rows.0.day)" "1/2026-03-02" "a one-day range of one tenant"
    BITNET_TIERS_TEAM_PRICE_USD=998 "$B" usage report --tenant acme --to 2026-03-01 --json >"$TMP/out"
    expect_eq "$(jv rows.0.cost_usd)" "0.032934" "the price comes from the config"
    BITNET_TENANTS='{"acme": {"price_usd": 998}}' "$B" usage report --to 2026-03-01 --json >"$TMP/out"
    expect_eq "$(jv rows.0.cost_usd)" "0.032934" "a tenant's own price comes first"
    expect_exit 0 "usage report --csv" -- "$B" usage report --csv
    expect_eq "$(head -1 "$TMP/out")" "tenant_id,tenant,tier,day,requests,prompt_tokens,completion_tokens,cost_usd" "CSV header"
    expect_eq "$(wc -l <"$TMP/out" | tr -d ' ')" "4" "CSV: a header and 3 rows"
    expect_exit 0 "usage report --csv --tenant --from" -- "$B" usage report --csv --tenant acme --from 2026-03-02
    expect_eq "$(sed -n 2p "$TMP/out")" "$ACME,acme,team,2026-03-02,1,10,20,0.000150" "CSV: one tenant from a day"
    expect_eq "$(wc -l <"$TMP/out" | tr -d ' ')" "2" "CSV: only that row"
    # a time is exclusive in --to, inclusive in --from (rows of 2026-03-02 are at 10:00:00)
    "$B" usage report --from 2026-03-02T10:00:00Z --to 2026-03-02T10:00:01Z --json >"$TMP/out"
    expect_eq "$(jv total.requests)" "2" "--from a time includes it, --to a second later"
    "$B" usage report --from 2026-03-02T00:00:00Z --to 2026-03-02T10:00:00Z --json >"$TMP/out"
    expect_eq "$(jv total.requests)" "0" "--to a time excludes it"
    "$B" usage report --from 2026-04-01 --json >"$TMP/out"
    expect_eq "$(jv total.requests)/$(jv rows.0 2>/dev/null)" "0/" "a range with no usage: no rows, zero totals"
    expect_exit 0 "usage report in text" -- "$B" usage report --tenant globex
    expect_grep "^2026-03-02  *$GLOBEX  *globex  *developer  *1  *7  *3 " "$TMP/out" "text: a row per tenant and day"
    expect_grep "^total  *1  *7  *3 " "$TMP/out" "text: the total line"

    expect_exit 1 "delete refuses a tenant with usage" -- "$B" tenants delete acme
    expect_grep "erase" "$TMP/err" "delete points to erase"
    expect_exit 0 "tenants export" -- "$B" tenants export acme
    expect_eq "$(jv tenant.name)/$(jv usage.2.request_id)/$(jv keys.0.prefix)" \
        "acme/r3/$(printf %s "$K1" | cut -c1-12)" "export holds the tenant, usage and keys"
    jv audit.0.action >/dev/null && ok "export holds the audit entries" || bad "export: no audit"
    expect_exit 0 "tenants erase" -- "$B" tenants erase acme --json
    expect_eq "$(jv name)/$(jv status)/$(jv stripe_customer)" "erased-$ACME/erased/null" "erased"
    expect_exit 0 "export after erase" -- "$B" tenants export "$ACME"
    if grep -q -e acme -e cus_A1 -e '"r1"' "$TMP/out"; then bad "erase left personal data"; else
        ok "erase left no name, Stripe id or request id"; fi
    expect_eq "$("$JSONGET" keys.0 <"$TMP/out" >/dev/null 2>&1; echo $?)" "3" "erase removed the keys"
    expect_exit 0 "usage after erase" -- "$B" usage report --tenant "$ACME" --json
    expect_eq "$(jv total.requests)/$(jv total.prompt_tokens)/$(jv rows.0.tenant)" "3/1110/erased-$ACME" \
        "the anonymous totals stay"
fi
expect_exit 0 "tenants add + delete (no usage)" -- "$B" tenants add temp
expect_exit 0 "tenants delete" -- "$B" tenants delete temp --json
expect_eq "$(jv deleted)" "true" "deleted"

# ---- audit -----------------------------------------------------------------------------------
expect_exit 0 "audit list --json" -- "$B" audit list --json
expect_eq "$(jv entries.0.action)/$(jv entries.0.target)" "tenant.add/tenant:$ACME" "the first entry"
case "$(jv entries.0.actor)" in cli:?*) ok "the actor is the user" ;; *) bad "actor: $(jv entries.0.actor)" ;; esac
n=$("$B" audit list | wc -l)
[ "$n" -ge 12 ] && ok "every change was audited ($n entries)" || bad "only $n audit entries"
expect_exit 0 "audit verify" -- "$B" audit verify --json
expect_eq "$(jv ok)" "true" "the chain is intact"
if command -v sqlite3 >/dev/null 2>&1; then
    if sqlite3 "$BITNET_HISTORY_DB" "UPDATE audit SET actor = 'eve' WHERE id = 2" 2>/dev/null; then
        bad "the log took an ordinary UPDATE"; else ok "the log refuses an ordinary UPDATE"; fi
    sqlite3 "$BITNET_HISTORY_DB" "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'eve' WHERE id = 2"
    expect_exit 1 "audit verify: an edited entry" -- "$B" audit verify
    expect_one_line_err "audit verify"
    expect_grep "entry 2 was edited" "$TMP/err" "verify names the edited entry"
    expect_exit 1 "audit verify --json: an edited entry" -- "$B" audit verify --json
    expect_eq "$(jv ok)/$(jv first_bad)" "false/2" "verify --json names it"
fi
# ---- retention: the ledger folded per tenant and day, the report unchanged -------------------
if command -v sqlite3 >/dev/null 2>&1; then
    export BITNET_HISTORY_DB="$TMP/retention.db"
    "$B" tenants add ret1 --tier team >/dev/null 2>&1 || bad "tenants add ret1"
    "$B" keys create --tenant ret1 --json >"$TMP/out" 2>/dev/null
    RK=$(jv id)
    "$B" keys revoke "$RK" >/dev/null 2>&1
    old=$(date -u -d '100 days ago' +%s)000
    new=$(date -u -d '1 hour ago' +%s)000
    sqlite3 "$BITNET_HISTORY_DB" "INSERT INTO usage (request_id, tenant_id, key_id, model,
        prompt_tokens, completion_tokens, duration_ms, status, at) VALUES
        ('q1', 1, $RK, 'm', 10, 20, 5, 'ok', $old), ('q2', 1, $RK, 'm', 1, 2, 5, 'ok', $old + 1000),
        ('q3', 1, $RK, 'm', 3, 4, 5, 'ok', $new);
        UPDATE api_keys SET revoked_at = $old WHERE id = $RK"
    "$B" usage report --json >"$TMP/before.json"
    BITNET_RETENTION_LEDGER_DAYS=30 "$B" tenants retention --dry-run --json >"$TMP/out" 2>"$TMP/err"
    expect_eq "$(jv dry_run)/$(jv ledger_rows)/$(jv ledger_aggregates)/$(jv keys)/$(jv periods.ledger_days)" \
        "true/2/1/1/30" "retention --dry-run counts"
    expect_eq "$(sqlite3 "$BITNET_HISTORY_DB" "SELECT count(*) FROM usage")" "3" "a dry run changes nothing"
    expect_exit 2 "retention with an argument" -- "$B" tenants retention now
    expect_exit 0 "tenants retention" -- env BITNET_RETENTION_LEDGER_DAYS=30 "$B" tenants retention
    expect_grep "ledger rows folded  2 into 1" "$TMP/out" "retention says what it folded"
    expect_eq "$(sqlite3 "$BITNET_HISTORY_DB" "SELECT group_concat(coalesce(request_id, status)) FROM usage ORDER BY id")" \
        "q3,aggregate" "old rows folded into an aggregate, the recent one kept"
    expect_eq "$(sqlite3 "$BITNET_HISTORY_DB" "SELECT count(*) FROM api_keys")" "0" "the key revoked long ago is gone"
    "$B" usage report --json >"$TMP/after.json"
    cmp -s "$TMP/before.json" "$TMP/after.json" && ok "usage report unchanged by the fold" ||
        bad "usage report changed: $(diff "$TMP/before.json" "$TMP/after.json" | head -5)"
    expect_exit 0 "audit verify after retention" -- "$B" audit verify --json
    expect_eq "$(jv ok)" "true" "the chain is intact after retention"
    expect_exit 0 "audit list" -- "$B" audit list --json
    expect_grep '"retention.apply"' "$TMP/out" "retention is audited"
fi
finish test_tenants.sh
