#!/bin/sh
# bitnet billing and the sender in bitnet serve --tenants, against a loopback Stripe
# (tests/cli/stripe_recorder.py: checks method, path, content type, Bearer key and the form
# fields with their types, refuses a repeated identifier as Stripe does) with the official
# openai client making the requests (tests/cli/billing_clients.py). Usage errors and an
# unconfigured or keyless billing; requests billed while the recorder is up; the recorder down
# a while with requests served meanwhile, then up again answering 500, 429, a 200 of garbage
# and an answer past the timeout first, with a second sender (billing send) at work too: every
# meter event delivered exactly once, reconcile equal, and the usage the clients saw = the
# ledger = bitnet usage report = the recorder's total, per tenant; a tenant without a Stripe
# customer is not billed; a refused event fails for good and reconcile says so (exit 1),
# billing retry sends it again (audited); bitnet monitor exports the outbox (events by status,
# the oldest pending's age); bitnet billing send --once for cron with the endpoint down
# (exit 1) and up; billing.api stream (Stripe's meter event stream, API v2): the recorder's
# session token, a 500, an expired session renewed, the events in one request, reconcile equal,
# no token in any output; the secret key in no output.
. "$(dirname "$0")/lib.sh"
export BITNET_CONFIG="$TMP/config.json" BITNET_HISTORY_DB="$TMP/history.db" HOME="$TMP"
unset BITNET_HISTORY BITNET_HISTORY_RETENTION_DAYS BITNET_DATA_DIR
KEY="sk_test_bn$$x"
export STRIPE_SECRET_KEY="$KEY"
MODEL=assets/models/bitnet-tinystories.gguf
B=$BITNET
echo '{}' >"$BITNET_CONFIG"
echo "test_billing.sh"

# ---- usage errors, nothing configured -------------------------------------------------------
expect_exit 0 "billing --help" -- "$B" billing --help
expect_grep "v1/billing/meter_events" "$TMP/out" "help names the API"
expect_exit 2 "billing without a subcommand" -- "$B" billing
expect_one_line_err "billing without a subcommand"
expect_exit 2 "billing send --bogus" -- "$B" billing send --bogus
expect_exit 2 "billing reconcile --from bad" -- "$B" billing reconcile --from yesterday
expect_exit 2 "billing reconcile --to before --from" -- "$B" billing reconcile --from 2026-02-02 \
    --to 2026-01-01
expect_exit 1 "billing reconcile --tenant unknown" -- "$B" billing reconcile --tenant nobody
expect_one_line_err "reconcile of an unknown tenant"
expect_exit 1 "billing send --once, not configured" -- "$B" billing send --once
expect_grep "billing.event_name" "$TMP/err" "not configured: says which setting"
expect_exit 0 "billing status of an empty outbox" -- "$B" billing status --json
[ "$("$JSONGET" pending <"$TMP/out")" = 0 ] && ok "nothing pending" || bad "status: $(cat "$TMP/out")"
expect_exit 0 "billing reconcile of nothing" -- "$B" billing reconcile
# the example of bitnet-config(5): billing on, an alert rule on the outbox's oldest event
cat >"$TMP/example.json" <<'EOF'
{"billing": {"event_name": "bitnet_tokens", "backoff_max": "2m"},
 "alerts": [{"name": "billing-stuck", "metric": "bitnet_billing_oldest_pending_age_seconds",
             "op": ">", "threshold": 900, "for": "5m", "severity": "critical"}]}
EOF
expect_exit 0 "validate: billing settings and an alert on the outbox" -- "$B" validate "$TMP/example.json"
echo '{"billing": {"event_name": "x", "timeout": "0s"}}' >"$TMP/bad.json"
expect_exit 1 "validate: billing.timeout 0s refused" -- "$B" validate "$TMP/bad.json"
expect_grep "billing.timeout" "$TMP/out" "validate names billing.timeout"

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c "import openai" 2>/dev/null ||
    ! command -v curl >/dev/null 2>&1; then
    echo "  SKIP the sender: needs python3 with the openai package, and curl"
    finish test_billing.sh
    exit
fi

# ---- the store: billed tenants, one without a customer, one Stripe refuses ------------------
for t in "acme cus_acme" "globex cus_globex" "free" "refused cus_refused"; do
    set -- $t
    "$B" tenants add "$1" --tier team ${2:+--stripe-customer "$2"} >/dev/null 2>&1 ||
        bad "tenants add $1"
    "$B" keys create --tenant "$1" --scope inference --json >"$TMP/k.json" 2>/dev/null ||
        bad "keys create $1"
    echo "$1=$("$JSONGET" key <"$TMP/k.json")" >>"$TMP/keys"
done
key() { grep "^$1=" "$TMP/keys"; }

# ---- the recorder ----------------------------------------------------------------------------
mkdir "$TMP/rec"
# start_rec PORT: the recorder on PORT (0: a free one); REC its pid, RPORT its port
start_rec() { # PORT [FAULTS]
    rm -f "$TMP/rec/port"
    python3 tests/cli/stripe_recorder.py "$TMP/rec" "$KEY" bitnet_tokens "$1" ${2:-} 2>>"$TMP/rec.log" &
    REC=$!
    PIDS="$PIDS $REC"
    wait_grep . "$TMP/rec/port" 100 || bad "the recorder did not start: $(cat "$TMP/rec.log")"
    RPORT=$(cat "$TMP/rec/port")
}
stop_rec() {
    kill "$REC" 2>/dev/null
    wait "$REC" 2>/dev/null
}
start_rec 0
cat >"$BITNET_CONFIG" <<EOF
{"billing": {"event_name": "bitnet_tokens", "endpoint": "http://127.0.0.1:$RPORT/",
             "timeout": "2s", "backoff_max": "1s", "interval": "1s"}}
EOF

expect_exit 1 "billing send --once without the key" -- env -u STRIPE_SECRET_KEY "$B" billing send --once
expect_grep "STRIPE_SECRET_KEY" "$TMP/err" "no key: names the variable"
env -u STRIPE_SECRET_KEY "$B" serve --tenants -m "$MODEL" --listen 127.0.0.1:0 >"$TMP/nokey.out" \
    2>"$TMP/nokey.err" &
NK=$!
PIDS="$PIDS $NK"
i=0
while kill -0 "$NK" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$NK" 2>/dev/null; then bad "serve --tenants started with billing on and no key"; else
    wait "$NK"
    rc=$?
    [ "$rc" != 0 ] && grep -q "STRIPE_SECRET_KEY" "$TMP/nokey.err" &&
        ok "serve --tenants with billing on and no key: exit $rc, names the variable" ||
        bad "serve without the key: exit $rc: $(cat "$TMP/nokey.err")"
fi

# pending: the events waiting in the outbox
pending() { "$B" billing status --json 2>/dev/null | "$JSONGET" pending; }
# wait_sent TENTHS: until nothing is pending
wait_sent() {
    i=0
    while [ "$i" -lt "$1" ]; do
        [ "$(pending)" = 0 ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

start_server "$TMP/s.log" -m "$MODEL" --tenants
[ -n "$URL" ] || { bad "no server"; finish test_billing.sh; exit; }
expect_grep "billing: meter events 'bitnet_tokens' to http://127.0.0.1:$RPORT/v1/billing/meter_events" \
    "$TMP/s.log" "serve runs the sender (endpoint without its trailing /)"

# ---- the recorder up -------------------------------------------------------------------------
python3 tests/cli/billing_clients.py "$URL/v1" 3 "$(key acme)" "$(key globex)" "$(key free)" \
    >"$TMP/c1.json" 2>"$TMP/c1.err" || bad "clients (recorder up): $(tail -3 "$TMP/c1.err")"
wait_sent 300 && ok "recorder up: every event sent" || bad "recorder up: $(pending) pending"
n=$(wc -l <"$TMP/rec/events.jsonl")
[ "$n" = 6 ] && ok "6 events (acme, globex: 3 each; free has no customer)" || bad "$n events"

# ---- the recorder down a while, requests served meanwhile ------------------------------------
stop_rec
python3 tests/cli/billing_clients.py "$URL/v1" 4 "$(key acme)" "$(key globex)" \
    >"$TMP/c2.json" 2>"$TMP/c2.err" && ok "recorder down: the requests are served" ||
    bad "clients (recorder down): $(tail -3 "$TMP/c2.err")"
wait_grep "cannot deliver meter events" "$TMP/s.log" 100 && ok "recorder down: logged once" ||
    bad "recorder down not logged"
"$B" billing status --json >"$TMP/st.json"
p=$("$JSONGET" pending <"$TMP/st.json")
[ "$p" = 8 ] && [ "$("$JSONGET" retrying <"$TMP/st.json")" -ge 1 ] &&
    grep -q '"last_error"' "$TMP/st.json" && ok "recorder down: 8 events wait, with the error" ||
    bad "status while down: $(cat "$TMP/st.json")"
expect_exit 0 "monitor --once while events wait" -- "$B" monitor --once --no-listen
expect_grep '^bitnet_billing_events{status="pending"} 8$' "$TMP/out" "monitor: 8 events pending"
age=$(sed -n 's/^bitnet_billing_oldest_pending_age_seconds \([0-9.e+-]*\)$/\1/p' "$TMP/out")
awk -v a="$age" 'BEGIN { exit !(a > 0 && a < 3600) }' && ok "monitor: the oldest waits ${age}s" ||
    bad "monitor: oldest pending age '$age'"
expect_exit 1 "reconcile while events wait" -- "$B" billing reconcile
expect_grep "pending" "$TMP/out" "reconcile says pending"

# ---- up again, answering 500, 429, garbage and too late first ---------------------------------
# (queued before it listens: queued afterwards, a sender that waited could send everything first)
start_rec "$RPORT" 500,429,garbage,hang
# a second sender on the same history meanwhile (bitnet billing send, in the foreground): the
# leases keep the two from sending one event at once, the identifiers from billing it twice
"$B" billing send >"$TMP/send.out" 2>"$TMP/send.err" &
SND=$!
PIDS="$PIDS $SND"
wait_sent 600 && ok "recorder up again: every event sent" || bad "after the outage: $(pending) pending"
kill -TERM "$SND"
wait "$SND" && grep -q "stopped (SIGTERM)" "$TMP/send.err" &&
    ok "billing send (foreground): SIGTERM, exit 0" || bad "billing send: $(tail -3 "$TMP/send.err")"
expect_grep "delivering again" "$TMP/s.log" "the sender logs the recovery"
for w in "fault 500" "fault 429" garbage duplicate; do
    grep -q "\"what\": \"$w\"" "$TMP/rec/answers.jsonl" && ok "the recorder answered $w" ||
        bad "no $w answer"
done

# ---- exactly once, and every count the same ---------------------------------------------------
dups=$(python3 -c 'import json,sys,collections
c=collections.Counter(json.loads(l)["identifier"] for l in open(sys.argv[1]))
print(sum(1 for v in c.values() if v > 1))' "$TMP/rec/events.jsonl")
n=$(wc -l <"$TMP/rec/events.jsonl")
[ "$dups" = 0 ] && [ "$n" = 14 ] && ok "14 events, each identifier once" ||
    bad "$n events, $dups identifiers repeated"
[ ! -s "$TMP/rec/violations" ] && ok "no request the recorder refused for its form" ||
    bad "violations: $(head -3 "$TMP/rec/violations")"
# per tenant: the clients' usage, the ledger (usage report), the recorder's total
for t in acme:cus_acme globex:cus_globex free:; do
    name=${t%%:*} cus=${t#*:}
    seen=$(python3 -c 'import json,sys
t=0
for f in sys.argv[2:]:
    u=json.load(open(f)).get(sys.argv[1], {})
    t+=u.get("prompt_tokens",0)+u.get("completion_tokens",0)
print(t)' "$name" "$TMP/c1.json" "$TMP/c2.json")
    "$B" usage report --tenant "$name" --json >"$TMP/u.json"
    led=$(($("$JSONGET" total.prompt_tokens <"$TMP/u.json") + $("$JSONGET" total.completion_tokens <"$TMP/u.json")))
    rec=$(python3 -c 'import json,sys
print(sum(json.loads(l)["value"] for l in open(sys.argv[1]) if json.loads(l)["customer"] == sys.argv[2]))' \
        "$TMP/rec/events.jsonl" "$cus")
    if [ "$name" = free ]; then
        [ "$seen" = "$led" ] && [ "$seen" -gt 0 ] && [ "$rec" = 0 ] &&
            ok "free: clients $seen = ledger, nothing billed (no customer)" ||
            bad "free: clients $seen, ledger $led, recorder $rec"
    else
        [ "$seen" = "$led" ] && [ "$led" = "$rec" ] && [ "$seen" -gt 0 ] &&
            ok "$name: clients = ledger = usage report = recorder = $seen tokens" ||
            bad "$name: clients $seen, ledger $led, recorder $rec"
    fi
done
expect_exit 0 "monitor --once after the outage" -- "$B" monitor --once --no-listen
expect_grep '^bitnet_billing_events{status="acked"} 14$' "$TMP/out" "monitor: 14 acked"
expect_grep '^bitnet_billing_oldest_pending_age_seconds 0$' "$TMP/out" "monitor: nothing waits"
expect_exit 0 "billing reconcile after the outage" -- "$B" billing reconcile --json
[ "$("$JSONGET" equal <"$TMP/out")" = true ] && [ "$("$JSONGET" tenants.0.difference <"$TMP/out")" = 0 ] &&
    ok "reconcile: equal" || bad "reconcile: $(cat "$TMP/out")"

# ---- a refused event: failed for good, with Stripe's error -------------------------------------
python3 tests/cli/billing_clients.py "$URL/v1" 1 "$(key refused)" >/dev/null 2>&1 || bad "client (refused)"
wait_sent 300 || bad "the refused event still pending"
"$B" billing status --json >"$TMP/st.json"
[ "$("$JSONGET" failed <"$TMP/st.json")" = 1 ] && grep -q "No such customer" "$TMP/st.json" &&
    ok "a refused event: failed, Stripe's error kept" || bad "status: $(cat "$TMP/st.json")"
expect_grep "refused: HTTP 400" "$TMP/s.log" "the refusal is logged"
expect_exit 1 "reconcile with a refused event" -- "$B" billing reconcile --tenant refused
expect_grep "refused" "$TMP/out" "reconcile names it"
expect_exit 0 "reconcile of acme alone" -- "$B" billing reconcile --tenant acme
# put back (as after creating a missing meter): sent again, refused again
expect_exit 1 "billing retry --tenant unknown" -- "$B" billing retry --tenant nobody
expect_exit 0 "billing retry --tenant refused" -- "$B" billing retry --tenant refused --json
[ "$("$JSONGET" requeued <"$TMP/out")" = 1 ] && ok "retry: 1 event due again" || bad "retry: $(cat "$TMP/out")"
i=0
while [ "$(grep -c '"what": "refused"' "$TMP/rec/answers.jsonl")" -lt 2 ] && [ "$i" -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
wait_sent 300
[ "$(grep -c '"what": "refused"' "$TMP/rec/answers.jsonl")" = 2 ] &&
    [ "$("$B" billing status --json | "$JSONGET" failed)" = 1 ] &&
    ok "the requeued event was sent again and refused again" || bad "after retry: $(pending) pending"
"$B" audit list --json >"$TMP/audit.json"
grep -q '"billing.retry"' "$TMP/audit.json" && ok "billing retry is audited" || bad "no billing.retry audit entry"
kill -TERM "$SPID"
wait "$SPID" && ok "the server stops with its sender (exit 0)" || bad "server exit: $(tail -3 "$TMP/s.log")"

# ---- bitnet billing send --once (cron): billing off in the server, events kept -----------------
sed 's/"event_name": "bitnet_tokens"/"event_name": ""/' "$BITNET_CONFIG" >"$TMP/off.json"
export BITNET_CONFIG="$TMP/off.json"
start_server "$TMP/s2.log" -m "$MODEL" --tenants
export BITNET_CONFIG="$TMP/config.json"
python3 tests/cli/billing_clients.py "$URL/v1" 2 "$(key globex)" >"$TMP/c3.json" 2>&1 || bad "clients (off)"
kill -TERM "$SPID"
wait "$SPID"
[ "$(pending)" = 2 ] && ok "billing off in serve: the outbox still keeps 2 events" ||
    bad "pending with billing off: $(pending)"
stop_rec
expect_exit 1 "billing send --once, endpoint down" -- "$B" billing send --once
expect_grep "rest waits" "$TMP/out" "send --once says the rest waits"
start_rec "$RPORT"
sleep 1.2 # the backoff of the failed try (billing.backoff_max 1s)
expect_exit 0 "billing send --once, endpoint up" -- "$B" billing send --once
expect_grep "acknowledged 2" "$TMP/out" "send --once: 2 acknowledged"
expect_exit 0 "reconcile of globex" -- "$B" billing reconcile --tenant globex

# ---- billing.api stream: Stripe's meter event stream (API v2), a session token ------------------
export BITNET_CONFIG="$TMP/off.json"
start_server "$TMP/s3.log" -m "$MODEL" --tenants
python3 tests/cli/billing_clients.py "$URL/v1" 2 "$(key acme)" "$(key globex)" >"$TMP/c4.json" 2>&1 ||
    bad "clients (stream)"
kill -TERM "$SPID"
wait "$SPID"
[ "$(pending)" = 4 ] && ok "4 events wait for the stream" || bad "pending before the stream: $(pending)"
sed 's/"timeout": "2s"/"api": "stream", "stream_endpoint": "http:\/\/127.0.0.1:'"$RPORT"'", "timeout": "2s"/' \
    "$TMP/config.json" >"$TMP/stream.json"
export BITNET_CONFIG="$TMP/stream.json"
grep -q '"api": "stream"' "$TMP/stream.json" || bad "the stream config: $(cat "$TMP/stream.json")"
events_before=$(wc -l <"$TMP/rec/events.jsonl")
curl -s -X POST "http://127.0.0.1:$RPORT/_fault/500" >/dev/null
expect_exit 1 "billing send --once, the stream answering 500" -- "$B" billing send --once
sleep 1.2 # the backoff
curl -s -X POST "http://127.0.0.1:$RPORT/_fault/expire" >/dev/null
expect_exit 0 "billing send --once over the stream, its session expired on the way" -- \
    "$B" billing send --once
expect_grep "acknowledged 4" "$TMP/out" "stream: 4 acknowledged"
grep -q '"what": "expired"' "$TMP/rec/answers.jsonl" && ok "the recorder answered 401 session expired" ||
    bad "no expired session answered"
[ "$(grep -c '"what": "stream 4"' "$TMP/rec/answers.jsonl")" = 1 ] &&
    ok "the 4 events went in one request, once" || bad "stream requests: $(grep stream "$TMP/rec/answers.jsonl")"
[ $(($(wc -l <"$TMP/rec/events.jsonl") - events_before)) = 4 ] && [ ! -s "$TMP/rec/duplicates.jsonl" ] &&
    ok "the recorder took 4 new events, none twice" || bad "events after the stream"
[ ! -s "$TMP/rec/violations" ] && ok "no stream request the recorder refused for its shape" ||
    bad "violations: $(cat "$TMP/rec/violations")"
expect_exit 0 "reconcile of acme after the stream" -- "$B" billing reconcile --tenant acme
expect_exit 0 "reconcile of globex after the stream" -- "$B" billing reconcile --tenant globex
echo '{"billing": {"event_name": "x", "api": "batch"}}' >"$TMP/bad.json"
expect_exit 1 "validate: billing.api batch refused" -- "$B" validate "$TMP/bad.json"
expect_grep "meter_events or stream" "$TMP/out" "validate names the choices of billing.api"
export BITNET_CONFIG="$TMP/config.json"
if grep -rq "ekst_" "$TMP"/*.log "$TMP"/*.err "$TMP"/*.out "$TMP/out" "$TMP/err" 2>/dev/null; then
    bad "a session token is in an output"
else ok "no session token in any output"; fi
if grep -rqF "$KEY" "$TMP"/*.log "$TMP"/*.err "$TMP"/*.out "$TMP/out" "$TMP/err" 2>/dev/null; then
    bad "the secret key is in an output"
else ok "the secret key is in no output"; fi
finish test_billing.sh
