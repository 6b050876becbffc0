# bitnet tui's Usage screen under tmux (issue 18: "a Usage screen per tenant"): each tenant's
# requests and tokens today and this month from the ledger, the month's cost, the share of
# the monthly quota used (a meter), the selected tenant's limits with its own from the
# config's tenants object marked, r reads the ledger again, U opens it from another screen.
# The ledger rows are written with the sqlite3 command (as bitnet serve --tenants would).
. tests/cli/lib.sh

TEST=test_tui_usage
. tests/cli/tui_lib.sh
if ! command -v sqlite3 >/dev/null 2>&1; then
    echo "  SKIP $TEST: no sqlite3 command"
    finish "$TEST"
    exit $?
fi

mkdir -p "$XDG_CONFIG_HOME/bitnet"
echo '{"tenants": {"acme": {"requests_per_min": 1200}}}' >"$XDG_CONFIG_HOME/bitnet/config.json"
"$BIN" tenants add acme --tier team >/dev/null 2>&1 || bad "tenants add acme"
"$BIN" tenants add globex >/dev/null 2>&1 || bad "tenants add globex"
now=$(date -u +%s)000
# usage INSERT-VALUES: rows (request id, tenant, prompt, completion) of now
usage() {
    sqlite3 "$BITNET_HISTORY_DB" "INSERT INTO usage (request_id, tenant_id, key_id, model,
        prompt_tokens, completion_tokens, duration_ms, status, at) VALUES $1"
}
usage "('a1', 1, NULL, 'm', 1000, 2000, 5, 'ok', $now), ('a2', 1, NULL, 'm', 10, 20, 5, 'ok', $now),
    ('g1', 2, NULL, 'm', 4000000, 1000000, 5, 'ok', $now)"

start u --screen usage
wait_for u "Usage per tenant: today and this month" "the Usage screen opens (--screen usage)"
wait_for u "acme +team +active +2 +3030 +2 +3030 +0\\.02 " "acme: requests and tokens today and this month, cost"
wait_for u "globex +developer +active +1 +5000000 +1 +5000000 +49\\.50 .*50\\.0%" \
    "globex: 5M of the developer tier's 10M quota used, its cost"
wait_for u "limits: 1200 requests/min\\*, 400000 tokens/min, 10 streams \\(\\*: its own\\)" \
    "the selected tenant's limits, its own marked"
wait_for u "quota 100000000 tokens a month \\(again [0-9-]+\\), price 499 USD a month" "its quota and price"
wait_for u "today 2 requests, 3030 tokens; month 2 requests, 1010 prompt \\+ 2020 completion" \
    "its figures today and this month"
keys u Down
wait_for u "globex \\(id 2, tier developer, active\\)" "Down selects the next tenant"
wait_for u "limits: 60 requests/min, 40000 tokens/min, 2 streams +│" "globex: its tier's limits"
usage "('a3', 1, NULL, 'm', 1, 1, 5, 'ok', $now)"
"$BIN" tenants suspend acme >/dev/null 2>&1
keys u r
wait_for u "acme +team +suspended +3 +3032 " "r: the ledger and the tenants read again"
wait_for u "usage read again: 2 tenants" "r: said on the status line"
keys u q
wait_for u "EXIT=0" "q quits"

# 80x24: the month's columns, the cost and the quota still show (today's and the status go)
$TM new-session -d -s n -x 80 -y 24 "$BIN tui --screen usage; echo EXIT=\$?; sleep 600"
wait_for n "globex +developer +1 +5000000 +49\\.50 .*50\\.0% │" "80 columns: month, cost and quota of each tenant"
keys n q

start h --screen hardware
wait_for h "Hardware" "the hardware screen"
keys h U
wait_for h "Usage per tenant" "U opens the Usage screen from another screen"
keys h q

$TM kill-session -t e 2>/dev/null
$TM new-session -d -s e -x 120 -y 40 "BITNET_HISTORY_DB=$TMP/empty.db $BIN tui --screen usage; echo EXIT=\$?; sleep 600"
wait_for e "no tenants yet" "an empty store: says how to add tenants"
keys e q
finish "$TEST"
