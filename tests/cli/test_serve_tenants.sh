#!/bin/sh
# bitnet serve --tenants: the keys of the platform's store (bitnet tenants, keys) against the
# real server on the bundled model, in a temporary history and config. With curl: every
# malformed Authorization header is a 401 JSON error (never a crash: the server still
# answers), scopes give 403, the admin endpoints refuse bad queries with 400/404/405, /metrics
# wants an admin key, keys made, listed and revoked over /v1/keys (a revoked one fails at once,
# bad bodies 400, the changes audited with the admin key as actor), a suspended tenant gets 403
# at once, two servers on one store meter each request, a running server folds ledger rows
# past retention.ledger_days, a timed-out and a hung-up stream are metered with what was
# generated, and SIGTERM still exits 0. With the
# official openai Python client (tests/cli/serve_tenants_openai.py; SKIP when not installed):
# isolation of two tenants' usage, a revoked key failing at once, a burst beyond
# tiers.developer.requests_per_min 3 getting the 429s GCRA predicts, the monthly quota
# (insufficient_quota) and exact metering (the clients' usage == GET /v1/usage == bitnet usage
# report).
. "$(dirname "$0")/lib.sh"
export BITNET_CONFIG="$TMP/config.json" BITNET_HISTORY_DB="$TMP/history.db" HOME="$TMP"
unset BITNET_HISTORY BITNET_HISTORY_RETENTION_DAYS BITNET_DATA_DIR
echo '{"tiers": {"developer": {"requests_per_min": 3}, "business": {"monthly_tokens": 20}},
      "tenants": {"vip": {"requests_per_min": 1000}}}' >"$BITNET_CONFIG"
MODEL=assets/models/bitnet-tinystories.gguf
B=$BITNET
echo "test_serve_tenants.sh"
if ! command -v curl >/dev/null 2>&1; then
    echo "  SKIP test_serve_tenants.sh: no curl"
    exit 0
fi

expect_exit 0 "serve --help" -- "$B" serve --help
expect_grep "\-\-tenants" "$TMP/out" "help names --tenants"
expect_exit 2 "--tenants with --api-key" -- "$B" serve --tenants --api-key k -m "$MODEL"
expect_one_line_err "--tenants with --api-key"

# newkey NAME TENANT SCOPES...: a key, its line "NAME KEY ID" in keys.txt
newkey() {
    name=$1 tenant=$2
    shift 2
    sc=""
    for s in "$@"; do sc="$sc --scope $s"; done
    # shellcheck disable=SC2086
    "$B" keys create --tenant "$tenant" $sc --json >"$TMP/k.json" 2>/dev/null || bad "keys create $name"
    echo "$name $("$JSONGET" key <"$TMP/k.json") $("$JSONGET" id <"$TMP/k.json")" >>"$TMP/keys.txt"
}
key() { awk -v n="$1" '$1 == n { print $2 }' "$TMP/keys.txt"; }
for t in "acme team" "globex team" "burst developer" "quota business" "ops team" "sleepy team" \
    "burst2 developer" "vip developer"; do
    set -- $t
    "$B" tenants add "$1" --tier "$2" >/dev/null 2>&1 || bad "tenants add $1"
done
newkey acme acme inference usage
newkey globex globex inference usage
newkey burst burst inference
newkey quota quota inference
newkey admin ops admin
newkey victim acme inference
newkey sleepy sleepy inference
newkey burst2 burst2 inference
newkey vip vip inference

start_server "$TMP/s.log" -m "$MODEL" --slots 2 --tenants
[ -n "$URL" ] || { bad "no port"; finish test_serve_tenants.sh; exit; }

# get PATH AUTH...: status in CODE, body in $TMP/r.json, headers in $TMP/r.h
get() {
    p=$1
    shift
    CODE=$(curl -s -o "$TMP/r.json" -D "$TMP/r.h" -w '%{http_code}' "$@" "$URL$p")
}
# expect_code STATUS ERRCODE WHAT PATH CURL-ARGS...: that status with error.code ERRCODE
expect_code() {
    want=$1 code=$2 what=$3
    shift 3
    get "$@"
    c=$("$JSONGET" error.code <"$TMP/r.json" 2>/dev/null)
    if [ "$CODE" = "$want" ] && [ "$c" = "$code" ]; then ok "$what: $want $code"; else
        bad "$what: got $CODE: $(head -c 300 "$TMP/r.json")"; fi
}

# ---- malformed Authorization headers: 401, the server goes on ------------------------------
expect_code 401 invalid_api_key "no Authorization" /v1/models
expect_code 401 invalid_api_key "Authorization: Bearer" /v1/models -H "Authorization: Bearer"
expect_code 401 invalid_api_key "Basic credentials" /v1/models -H "Authorization: Basic dTpw"
expect_code 401 invalid_api_key "bearer in lower case" /v1/models -H "Authorization: bearer $(key acme)"
expect_code 401 invalid_api_key "a short key" /v1/models -H "Authorization: Bearer bnk_x"
expect_code 401 invalid_api_key "a key and a byte more" /v1/models -H "Authorization: Bearer $(key acme)x"
expect_code 401 invalid_api_key "an unknown well-formed key" /v1/models \
    -H "Authorization: Bearer bnk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
long=$(head -c 6000 /dev/zero | tr '\0' 'k')
expect_code 401 invalid_api_key "a 6000-byte key" /v1/models -H "Authorization: Bearer $long"
expect_code 401 invalid_api_key "bytes above 0x7f" /v1/models -H "$(printf 'Authorization: Bearer bnk_\303\251\377')"
expect_code 401 invalid_api_key "two spaces" /v1/models -H "Authorization: Bearer  $(key acme)"
get /health
[ "$CODE" = 200 ] && ok "the server still answers /health" || bad "health after bad keys: $CODE"

# ---- scopes and the admin endpoints -------------------------------------------------------
A="Authorization: Bearer $(key acme)"
ADM="Authorization: Bearer $(key admin)"
get /v1/models -H "$A"
[ "$CODE" = 200 ] && ok "GET /v1/models with a tenant key" || bad "models: $CODE"
expect_code 403 insufficient_scope "/metrics with an inference key" /metrics -H "$A"
get /metrics -H "$ADM"
[ "$CODE" = 200 ] && grep -q bitnet_slots "$TMP/r.json" && ok "/metrics with the admin key" ||
    bad "metrics admin: $CODE"
expect_code 403 insufficient_scope "completion with an admin-only key" /v1/completions -H "$ADM" \
    -H 'Content-Type: application/json' -d '{"prompt": "x", "max_tokens": 1}'
expect_code 403 insufficient_scope "GET /v1/tenants with a usage key" /v1/tenants -H "$A"
expect_code 400 invalid_date "usage from=2026-13-01" "/v1/usage?from=2026-13-01" -H "$ADM"
expect_code 400 invalid_date "usage to before from" "/v1/usage?from=2026-02-01&to=2026-01-01" -H "$ADM"
expect_code 404 tenant_not_found "usage of an unknown tenant" "/v1/usage?tenant=nobody" -H "$ADM"
expect_code 403 insufficient_scope "acme reads globex's usage" "/v1/usage?tenant=globex" -H "$A"
get /v1/tenants -H "$ADM" -X POST
[ "$CODE" = 405 ] && ok "POST /v1/tenants: 405" || bad "POST tenants: $CODE"
get /v1/tenants -H "$ADM"
[ "$CODE" = 200 ] && [ "$("$JSONGET" data.0.name <"$TMP/r.json")" = acme ] &&
    ok "GET /v1/tenants with the admin key" || bad "tenants: $CODE $(cat "$TMP/r.json")"
[ "$("$JSONGET" data.0.limits.requests_per_min <"$TMP/r.json")" = 600 ] &&
    [ "$("$JSONGET" data.7.name <"$TMP/r.json")" = vip ] &&
    [ "$("$JSONGET" data.7.limits.requests_per_min <"$TMP/r.json")" = 1000 ] &&
    [ "$("$JSONGET" data.7.limits.overrides.0 <"$TMP/r.json")" = requests_per_min ] &&
    ok "GET /v1/tenants: each tenant's limits, vip's own named" || bad "tenants limits: $(cat "$TMP/r.json")"
"$B" audit list --json >"$TMP/audit.json" 2>&1
grep -q 'api.tenants.list' "$TMP/audit.json" && ok "the admin read is in the audit log" ||
    bad "no api.tenants.list in the audit log"

# ---- the openai Python client -------------------------------------------------------------
if python3 -c 'import openai' 2>/dev/null; then
    if python3 tests/cli/serve_tenants_openai.py "$URL/v1" "$B" "$TMP/keys.txt" >"$TMP/py.out" 2>&1; then
        ok "openai client: $(tr '\n' ';' <"$TMP/py.out")"
    else
        bad "openai client: $(tail -5 "$TMP/py.out")"
    fi
else
    echo "  SKIP the openai Python client: not installed (scripts/deps.sh installs it)"
fi

# ---- keys over the API (admin): create, list, revoke ------------------------------------------
post_key() { get /v1/keys -H "$ADM" -H 'Content-Type: application/json' -d "$1"; }
post_key '{"tenant": "globex", "scopes": ["inference"]}'
NK=$("$JSONGET" key <"$TMP/r.json" 2>/dev/null)
NID=$("$JSONGET" id <"$TMP/r.json" 2>/dev/null)
[ "$CODE" = 200 ] && [ "$("$JSONGET" scopes <"$TMP/r.json")" = inference ] &&
    ok "POST /v1/keys: a new key ($NID) shown once" || bad "POST keys: $CODE $(cat "$TMP/r.json")"
get /v1/completions -H "Authorization: Bearer $NK" -d '{"prompt": "x", "max_tokens": 1}'
[ "$CODE" = 200 ] && ok "the new key completes" || bad "new key: $CODE"
get "/v1/keys?tenant=globex" -H "$ADM"
[ "$CODE" = 200 ] && grep -q "\"id\":$NID" "$TMP/r.json" && ! grep -q "$NK" "$TMP/r.json" &&
    ok "GET /v1/keys?tenant=globex lists it, without the key" || bad "GET keys: $(cat "$TMP/r.json")"
get "/v1/keys/$NID" -H "$ADM" -X DELETE
[ "$CODE" = 200 ] && [ "$("$JSONGET" revoked <"$TMP/r.json")" = true ] &&
    ok "DELETE /v1/keys/$NID revokes it" || bad "DELETE key: $CODE $(cat "$TMP/r.json")"
expect_code 401 invalid_api_key "the revoked key at once" /v1/completions -H "Authorization: Bearer $NK" \
    -d '{"prompt": "x", "max_tokens": 1}'
expect_code 404 key_not_found "DELETE it again" "/v1/keys/$NID" -H "$ADM" -X DELETE
expect_code 400 invalid_value "DELETE /v1/keys/abc" /v1/keys/abc -H "$ADM" -X DELETE
expect_code 400 invalid_value "POST /v1/keys not JSON" /v1/keys -H "$ADM" -d 'nope'
expect_code 400 invalid_value "POST /v1/keys scope root" /v1/keys -H "$ADM" -d '{"tenant": "acme", "scopes": "root"}'
expect_code 400 invalid_value "POST /v1/keys no scopes" /v1/keys -H "$ADM" -d '{"tenant": "acme", "scopes": []}'
expect_code 400 invalid_value "POST /v1/keys expiry past" /v1/keys -H "$ADM" \
    -d '{"tenant": "acme", "scopes": "inference", "expires": "2001-01-01"}'
expect_code 400 invalid_value "POST /v1/keys tenant 3.5e300" /v1/keys -H "$ADM" -d '{"tenant": 3.5e300, "scopes": "usage"}'
expect_code 404 tenant_not_found "POST /v1/keys unknown tenant" /v1/keys -H "$ADM" -d '{"tenant": "nobody", "scopes": "usage"}'
expect_code 403 insufficient_scope "GET /v1/keys with a usage key" /v1/keys -H "$A"
get /v1/keys -H "$ADM" -X PUT
[ "$CODE" = 405 ] && ok "PUT /v1/keys: 405" || bad "PUT keys: $CODE"
"$B" audit list --json >"$TMP/audit.json" 2>&1
aid=$(awk '$1 == "admin" { print $3 }' "$TMP/keys.txt")
grep -q "\"key:$aid\"" "$TMP/audit.json" && grep -q 'key.revoke' "$TMP/audit.json" &&
    ok "key.create and key.revoke audited with actor key:$aid" || bad "audit of API key changes"

# a stream carries the x-ratelimit headers too
get /v1/chat/completions -H "$A" -N -d '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": true}'
[ "$CODE" = 200 ] && grep -qi '^x-ratelimit-remaining-requests: [0-9]' "$TMP/r.h" &&
    grep -qi '^x-ratelimit-reset-tokens: [0-9]' "$TMP/r.h" && grep -q '^data: \[DONE\]' "$TMP/r.json" &&
    ok "a stream: 200 with x-ratelimit headers, ends [DONE]" || bad "stream headers: $CODE $(cat "$TMP/r.h")"

# ---- a burst with curl: 3 a minute admitted, then 429s, counted on /metrics by limit -------
# limited LIMIT: bitnet_requests_limited_total{limit="LIMIT"} now (0 when not shown yet)
limited() {
    curl -s -H "$ADM" "$URL/metrics" | awk -v s="bitnet_requests_limited_total{limit=\"$1\"}" \
        '$1 == s { v = $2 } END { print v + 0 }'
}
l0=$(limited requests)
codes=""
t0=$(date +%s)
for i in 1 2 3 4 5; do
    get /v1/completions -H "Authorization: Bearer $(key burst2)" -d '{"prompt": "x", "max_tokens": 1}'
    codes="$codes$CODE "
done
n429=$(echo "$codes" | grep -o 429 | wc -l)
if [ $(($(date +%s) - t0)) -lt 19 ]; then # within 20 s the bucket gives back nothing
    [ "$codes" = "200 200 200 429 429 " ] && ok "burst of 5 at 3 a minute: $codes" || bad "burst: $codes"
else
    case "$codes" in "200 200 200 "*) ok "burst of 5 at 3 a minute (slow machine): $codes" ;;
    *) bad "burst: $codes" ;; esac
fi
l1=$(limited requests)
[ $((l1 - l0)) = "$n429" ] && ok "bitnet_requests_limited_total{limit=requests} +$n429" ||
    bad "limited metric: $l0 -> $l1, $n429 429s"
NLIMITED=$l1
# where the burst's time went before the queue: bitnet_tenant_phase_seconds{phase=auth|admit}
phase() {
    curl -s -H "$ADM" "$URL/metrics" |
        awk -v s="bitnet_tenant_phase_seconds_$1{phase=\"$2\"}" '$1 == s { v = $2 } END { print v + 0 }'
}
pa=$(phase count auth) pd=$(phase count admit)
[ "$pa" -ge 5 ] && [ "$pd" -ge 5 ] &&
    awk -v s="$(phase sum admit)" 'BEGIN { exit !(s > 0 && s < 60) }' &&
    ok "bitnet_tenant_phase_seconds: $pa key lookups, $pd admissions timed" ||
    bad "phase metric: auth $pa admit $pd"

# ---- a slot's cached prompt serves only its own tenant --------------------------------------
# cached: bitnet_prompt_tokens_cached_total now
cached() {
    curl -s -H "$ADM" "$URL/metrics" |
        awk '$1 == "bitnet_prompt_tokens_cached_total" { v = $2 } END { print v + 0 }'
}
CP='{"prompt": "The cache of a slot and the tenant who filled it", "max_tokens": 2, "temperature": 0}'
c0=$(cached)
get /v1/completions -H "Authorization: Bearer $(key vip)" -d "$CP"
n=$("$JSONGET" usage.prompt_tokens <"$TMP/r.json")
c1=$(cached)
get /v1/completions -H "Authorization: Bearer $(key acme)" -d "$CP"
ca=$CODE c2=$(cached)
get /v1/completions -H "Authorization: Bearer $(key vip)" -d "$CP"
cv=$CODE c3=$(cached)
[ "$ca" = 200 ] && [ "$cv" = 200 ] && [ -n "$n" ] && [ $((c2 - c1)) = 0 ] &&
    [ $((c3 - c2)) = $((n - 1)) ] &&
    ok "a prompt cached for one tenant is evaluated again for another (0 of $n cached), not for its own ($((c3 - c2)))" ||
    bad "prompt cache across tenants: $c0 $c1 $c2 $c3 of $n tokens, codes $ca $cv"

# ---- a suspended tenant: 403 at once, and back after resume
S="Authorization: Bearer $(key sleepy)"
"$B" tenants suspend sleepy >/dev/null 2>&1
expect_code 403 tenant_suspended "a suspended tenant" /v1/completions -H "$S" \
    -H 'Content-Type: application/json' -d '{"prompt": "x", "max_tokens": 1}'
"$B" tenants resume sleepy >/dev/null 2>&1
get /v1/completions -H "$S" -H 'Content-Type: application/json' -d '{"prompt": "x", "max_tokens": 1}'
[ "$CODE" = 200 ] && grep -qi '^x-ratelimit-limit-requests: 600' "$TMP/r.h" &&
    ok "resumed: 200 with x-ratelimit headers" || bad "resumed: $CODE"
"$B" usage report --tenant sleepy --json >"$TMP/u.json"
[ "$("$JSONGET" total.requests <"$TMP/u.json")" = 1 ] &&
    [ "$("$JSONGET" total.completion_tokens <"$TMP/u.json")" = "$("$JSONGET" usage.completion_tokens <"$TMP/r.json")" ] &&
    ok "its ledger row has the usage it got" || bad "sleepy ledger: $(cat "$TMP/u.json")"

# ---- a tenant's own limits (the config's tenants object) over its tier's -----------------
V="Authorization: Bearer $(key vip)"
codes=""
for i in 1 2 3 4; do
    get /v1/completions -H "$V" -H 'Content-Type: application/json' -d '{"prompt": "x", "max_tokens": 1}'
    codes="$codes$CODE "
done
[ "$codes" = "200 200 200 200 " ] && grep -qi '^x-ratelimit-limit-requests: 1000' "$TMP/r.h" &&
    ok "vip's own 1000 a minute, not its tier's 3: $codes" || bad "vip: $codes $(cat "$TMP/r.h")"

# ---- prompts and completions are not stored: not in the database files -------------------
get /v1/completions -H "$V" -H 'Content-Type: application/json' \
    -d '{"prompt": "zebra-orchid-7781 once upon a time", "max_tokens": 24, "temperature": 0}'
# its longest line (grep -F takes each line as a pattern, and an empty one matches anything)
text=$("$JSONGET" choices.0.text <"$TMP/r.json" | awk 'length > length(l) { l = $0 } END { print l }')
[ "$CODE" = 200 ] && [ "${#text}" -ge 12 ] && ok "a completion line of ${#text} characters" ||
    bad "completion: $CODE '$text'"
stored=""
for f in "$BITNET_HISTORY_DB"*; do
    grep -aqF "zebra-orchid" "$f" && stored="$stored prompt:$f"
    grep -aqF "$text" "$f" && stored="$stored completion:$f"
done
# the same search finds what the store does hold (a key's prefix): it reads the files
seen=no
for f in "$BITNET_HISTORY_DB"*; do grep -aqF "$(key vip | cut -c1-12)" "$f" && seen=yes; done
[ -z "$stored" ] && [ $seen = yes ] && ok "neither the prompt nor the completion is in the store's files" ||
    bad "stored:$stored (a key prefix seen: $seen)"

# stop WHAT LOG: SIGTERM, exit 0
stop() {
    kill -TERM "$SPID"
    wait "$SPID"
    rc=$?
    [ "$rc" = 0 ] && grep -q "stopped after" "$2" && ok "$1: SIGTERM, exit 0" ||
        bad "$1: exit $rc: $(tail -3 "$2")"
}
stop "the server" "$TMP/s.log"
"$B" history list --command serve --limit 1 --json >"$TMP/run.json"
nl=$("$JSONGET" runs.0.metrics.limited <"$TMP/run.json")
[ "$nl" -ge "$NLIMITED" ] && [ "$nl" -ge 2 ] && ok "history: the server's run counts $nl limited" ||
    bad "history limited: $nl (metric $NLIMITED)"

# ---- two servers on one store: each answer's id is its own request id in the ledger ---------
# (ids of the time and a counter alone were equal for the first requests of two servers
# started in the same second, and the ledger kept one row of the two)
G="Authorization: Bearer $(key globex)"
"$B" usage report --tenant globex --json >"$TMP/u0.json"
before=$("$JSONGET" total.requests <"$TMP/u0.json")
start_server "$TMP/a.log" -m "$MODEL" --tenants
PA=$SPID UA=$URL
start_server "$TMP/b.log" -m "$MODEL" --tenants
for u in "$UA" "$URL"; do
    curl -s -H "$G" -d '{"prompt": "x", "max_tokens": 2}' "$u/v1/completions" >>"$TMP/two.json" &
done
wait_n=0
while [ "$(grep -c '"usage"' "$TMP/two.json" 2>/dev/null)" != 2 ] && [ "$wait_n" -lt 600 ]; do
    sleep 0.1
    wait_n=$((wait_n + 1))
done
"$B" usage report --tenant globex --json >"$TMP/u1.json"
after=$("$JSONGET" total.requests <"$TMP/u1.json")
[ "$after" = $((before + 2)) ] && ok "two servers, one request each: 2 ledger rows" ||
    bad "two servers: ledger requests $before -> $after: $(cat "$TMP/two.json")"
stop "server B" "$TMP/b.log"
SPID=$PA
stop "server A" "$TMP/a.log"

# ---- a request that ends early is metered with what was generated (the slow model) ---------
if ! command -v sqlite3 >/dev/null 2>&1; then
    echo "  SKIP metering of a timed-out and a cancelled request: no sqlite3"
    finish test_serve_tenants.sh
    exit
fi
# ---- a running server applies the retention periods daily (looked at after a ledger row) ----
start_server "$TMP/r.log" -m "$MODEL" --tenants
old=$(date -u -d 2024-01-01T10:00:00Z +%s)000
sqlite3 "$BITNET_HISTORY_DB" "INSERT INTO usage (request_id, tenant_id, key_id, model, prompt_tokens,
    completion_tokens, duration_ms, status, at) SELECT 'ancient', id, NULL, 'm', 5, 6, 1, 'ok', $old
    FROM tenants WHERE name = 'vip'"
"$B" usage report --tenant vip --to 2024-01-01 --json >"$TMP/r0.json"
# the last application two days ago (no command may open the store from here to the request)
sqlite3 "$BITNET_HISTORY_DB" "UPDATE meta SET value = $(($(date +%s) - 172800))000 WHERE key = 'retention_applied_ms'"
get /v1/completions -H "$V" -H 'Content-Type: application/json' -d '{"prompt": "x", "max_tokens": 1}'
[ "$CODE" = 200 ] && [ "$(sqlite3 "$BITNET_HISTORY_DB" "SELECT count(*) FROM usage WHERE request_id = 'ancient'")" = 0 ] &&
    [ "$(sqlite3 "$BITNET_HISTORY_DB" "SELECT count(*) FROM usage WHERE status = 'aggregate'")" = 1 ] &&
    ok "the running server folded the ledger row older than retention.ledger_days" ||
    bad "retention in the server: $CODE $(sqlite3 "$BITNET_HISTORY_DB" "SELECT request_id, status FROM usage WHERE at = $old")"
"$B" usage report --tenant vip --to 2024-01-01 --json >"$TMP/r1.json"
cmp -s "$TMP/r0.json" "$TMP/r1.json" && ok "its day's report is the same" || bad "report changed: $(cat "$TMP/r1.json")"
stop "the retention server" "$TMP/r.log"

# row ID: status and completion tokens of the ledger row of request ID ("" when none yet)
row() { sqlite3 "$BITNET_HISTORY_DB" "SELECT status || ' ' || completion_tokens FROM usage WHERE request_id = '$1'"; }
"$B" synth --shape 700m -o "$TMP/slow.gguf" >/dev/null 2>&1 || bad "synth 700m"
start_server "$TMP/s2.log" -m "$TMP/slow.gguf" --slots 1 --ctx 1024 -t 2 --timeout 1 --tenants
curl -sN "$URL/v1/completions" -H "$G" -d '{"prompt":"hello","max_tokens":1000,"stream":true}' >"$TMP/t.sse"
id=$(grep '^data: {' "$TMP/t.sse" | head -1 | sed 's/^data: //' | "$JSONGET" id)
r=$(row "$id")
case "$r" in "timeout "*) n=${r#timeout }
    [ "$n" -lt 1000 ] && ok "a timed-out stream: its row ($id) says timeout, $n tokens" ||
        bad "timeout row: $r" ;;
*) bad "timed-out request $id: row '$r'" ;; esac
stop "the slow server" "$TMP/s2.log"
start_server "$TMP/s3.log" -m "$TMP/slow.gguf" --slots 1 --ctx 1024 -t 2 --tenants
curl -sN "$URL/v1/completions" -H "$G" -d '{"prompt":"hello","max_tokens":1000,"stream":true}' >"$TMP/c.sse" &
CPID=$!
wait_grep '"text"' "$TMP/c.sse" 600 || bad "no token from the slow model"
kill "$CPID" 2>/dev/null # the client hangs up mid-stream
id=$(grep '^data: {' "$TMP/c.sse" | head -1 | sed 's/^data: //' | "$JSONGET" id)
i=0
while [ "$i" -lt 300 ] && [ -z "$(row "$id")" ]; do sleep 0.1; i=$((i + 1)); done
r=$(row "$id")
got=$(grep -c '"text"' "$TMP/c.sse")
case "$r" in "cancelled "*) n=${r#cancelled }
    [ "$n" -ge "$got" ] && [ "$n" -lt 1000 ] &&
        ok "a client gone mid-stream: its row says cancelled, $n tokens (it saw $got pieces)" ||
        bad "cancelled row: $r, saw $got" ;;
*) bad "cancelled request $id: row '$r'" ;; esac
stop "the second slow server" "$TMP/s3.log"
finish test_serve_tenants.sh
