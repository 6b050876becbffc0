#!/bin/sh
# bitnet serve --tenants --redis: two replicas on one store share their tenants' limits through
# a Redis server the test starts on a unix socket in its temporary folder (Debian's
# redis-server; SKIP without it). A burst of 3-a-minute requests spread over both replicas
# gets exactly 3 admitted (each replica alone would admit 3); the month's quota counter
# starts from the ledger and stops the tenant on the other replica; the keys are in Redis.
# Then Redis is stopped: the rate limits are local (a request is admitted), a quota tier gets
# 503 quota_unavailable, one log line says so, /metrics shows bitnet_limits_mode local and
# bitnet_redis_errors_total; Redis restarted empty: shared again (one log line), the quota
# counter starts again from the ledger (still 429); a stream that ends while a Redis that keeps
# its data is down is in the ledger, and the counters start again from the ledger when that
# Redis is back with the old counter. A key revoked over one replica's API and a
# tenant suspended on the store are refused by both replicas at once. Over TCP with a password
# (AUTH, SELECT 2; the password in no log nor in the history); a wrong password leaves the
# limits local. Bad URLs are one-line errors.
. "$(dirname "$0")/lib.sh"
export BITNET_CONFIG="$TMP/config.json" BITNET_HISTORY_DB="$TMP/history.db" HOME="$TMP"
unset BITNET_HISTORY BITNET_HISTORY_RETENTION_DAYS BITNET_DATA_DIR
echo '{"tiers": {"developer": {"requests_per_min": 3}, "business": {"monthly_tokens": 5},
  "team": {"monthly_tokens": 0}}}' >"$BITNET_CONFIG"
MODEL=assets/models/bitnet-tinystories.gguf
B=$BITNET
echo "test_serve_redis.sh"

expect_exit 2 "--redis without --tenants" -- "$B" serve --redis redis://127.0.0.1 -m "$MODEL"
expect_one_line_err "--redis without --tenants"
for u in ftp://h redis:// "redis://h:0" "redis://h:99999" "redis://h/x" "unix://rel.sock" \
    "unix:///s?db=x" "redis://[::1"; do
    expect_exit 1 "--redis $u" -- "$B" serve --tenants --redis "$u" -m "$MODEL" --listen 127.0.0.1:0
    expect_grep "bad Redis URL" "$TMP/err" "--redis $u: bad Redis URL"
done
expect_exit 1 "a URL with a password" -- "$B" serve --tenants --redis "redis://u:s3cret@h:x" -m "$MODEL"
grep -q s3cret "$TMP/err" && bad "the password is in the error" || ok "the error hides the password"

for c in redis-server curl; do
    if ! command -v $c >/dev/null 2>&1; then
        echo "  SKIP the rest of test_serve_redis.sh: no $c (Debian package redis-server, curl)"
        finish test_serve_redis.sh
        exit
    fi
done

SOCK="$TMP/redis.sock"
start_redis() {
    redis-server --port 0 --unixsocket "$SOCK" --save "" --appendonly no \
        --dir "$TMP" >"$TMP/redis.log" 2>&1 &
    RPID=$!
    PIDS="$PIDS $RPID"
    i=0
    while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}
rcli() { redis-cli -s "$SOCK" "$@"; }
start_redis

for t in "burst developer" "quota business" "free team" "ops team"; do
    set -- $t
    "$B" tenants add "$1" --tier "$2" >/dev/null 2>&1 || bad "tenants add $1"
done
key() { "$B" keys create --tenant "$1" --scope "$2" --json 2>/dev/null | "$JSONGET" key; }
KB=$(key burst inference) KQ=$(key quota inference) KF=$(key free inference) KA=$(key ops admin)

start_server "$TMP/a.log" -m "$MODEL" --tenants --redis "unix://$SOCK"
URLA=$URL PA=$SPID
start_server "$TMP/b.log" -m "$MODEL" --tenants --redis "unix://$SOCK"
URLB=$URL
[ -n "$URLA" ] && [ -n "$URLB" ] || { bad "no servers"; finish test_serve_redis.sh; exit; }
grep -q "limits shared through Redis unix://$SOCK" "$TMP/a.log" &&
    ok "the replica says its limits are shared" || bad "no shared line: $(cat "$TMP/a.log")"

# post URL KEY: the status of a one-token completion in CODE, the body in $TMP/r.json
post() {
    CODE=$(curl -s -o "$TMP/r.json" -D "$TMP/r.h" -w '%{http_code}' -H "Authorization: Bearer $2" \
        -H 'Content-Type: application/json' -d '{"prompt": "Once upon a time", "max_tokens": 2}' \
        "$1/v1/completions")
}

# ---- a burst over both replicas: 3 a minute in all ----------------------------------------
codes="" rems="" t0=$(date +%s)
for u in "$URLA" "$URLB" "$URLA" "$URLB" "$URLA" "$URLB"; do
    post "$u" "$KB"
    codes="$codes $CODE"
    rems="$rems $(sed -n 's/^x-ratelimit-remaining-requests: *\([0-9]*\).*/\1/ip' "$TMP/r.h")"
    [ -n "${reset1:-}" ] || reset1=$(sed -n 's/^x-ratelimit-reset-requests: *\([0-9a-z.]*\).*/\1/ip' "$TMP/r.h")
done
el=$(($(date +%s) - t0))
if [ "$codes" = " 200 200 200 429 429 429" ]; then
    ok "3 a minute over two replicas: $codes"
elif [ "$el" -ge 19 ]; then
    ok "burst took ${el}s (a refill may have come): $codes"
else
    bad "3 a minute over two replicas: $codes"
fi
case $rems in " 2 1 0 "*) ok "x-ratelimit-remaining-requests across the replicas:$rems (as in process)" ;;
*) [ "$el" -ge 19 ] && ok "remaining after ${el}s:$rems" || bad "remaining across replicas:$rems" ;; esac
[ "$reset1" = 20s ] && ok "the first x-ratelimit-reset-requests: 20s (Redis's clock, as in process)" ||
    bad "first reset: '$reset1'"
grep -qi "^x-ratelimit-remaining-requests: 0" "$TMP/r.h" && grep -qi "^retry-after:" "$TMP/r.h" &&
    ok "the 429 has Retry-After and x-ratelimit-remaining-requests 0" || bad "429 headers: $(cat "$TMP/r.h")"
BID=$("$B" tenants show burst --json 2>/dev/null | "$JSONGET" id)
[ "$(rcli exists "bitnet:{t$BID}:req")" = 1 ] && ok "the bucket is in Redis (bitnet:{t$BID}:req)" ||
    bad "no bitnet:{t$BID}:req in Redis: $(rcli keys '*' | tr '\n' ' ')"

# ---- the month's quota: counted in Redis from the ledger, seen by the other replica ----------
post "$URLA" "$KQ"
[ "$CODE" = 200 ] && ok "quota tenant: first request 200" || bad "quota first: $CODE $(cat "$TMP/r.json")"
QID=$("$B" tenants show quota --json 2>/dev/null | "$JSONGET" id)
used=$(sqlite3 "$BITNET_HISTORY_DB" "SELECT sum(prompt_tokens + completion_tokens) FROM usage WHERE tenant_id = $QID" 2>/dev/null)
qk=$(rcli --scan --pattern "bitnet:{t$QID}:quota:*")
[ -n "$used" ] && [ "$(rcli get "$qk")" = "$used" ] && ok "the Redis counter $qk = the ledger's $used tokens" ||
    bad "counter $qk: $(rcli get "$qk") vs ledger $used"
post "$URLB" "$KQ"
[ "$CODE" = 429 ] && [ "$("$JSONGET" error.code <"$TMP/r.json")" = insufficient_quota ] &&
    ok "over the quota on the other replica: 429 insufficient_quota" || bad "quota on B: $CODE $(cat "$TMP/r.json")"

# ---- revocation and suspension reach every replica at once (each request reads the store) ---
"$B" keys create --tenant free --scope inference --json >"$TMP/k.json" 2>/dev/null
KR=$("$JSONGET" key <"$TMP/k.json") KRID=$("$JSONGET" id <"$TMP/k.json")
post "$URLB" "$KR"
c1=$CODE
dc=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer $KA" "$URLA/v1/keys/$KRID")
post "$URLB" "$KR"
[ "$c1" = 200 ] && [ "$dc" = 200 ] && [ "$CODE" = 401 ] &&
    ok "a key revoked on replica A is refused by replica B at once (200, DELETE 200, 401)" ||
    bad "revocation across replicas: $c1 $dc $CODE"
"$B" tenants suspend free >/dev/null 2>&1
post "$URLA" "$KF"
ca=$CODE
post "$URLB" "$KF"
[ "$ca" = 403 ] && [ "$CODE" = 403 ] && ok "a suspended tenant: 403 on both replicas at once" ||
    bad "suspension: $ca $CODE"
"$B" tenants resume free >/dev/null 2>&1

# ---- Redis stops: rate limits local, quota fails closed, said once, on /metrics ---------------
kill "$RPID"
wait "$RPID" 2>/dev/null
post "$URLA" "$KF"
[ "$CODE" = 200 ] && ok "Redis down: a tenant without quota is admitted (local limits)" ||
    bad "free while down: $CODE $(cat "$TMP/r.json")"
post "$URLA" "$KQ"
[ "$CODE" = 503 ] && [ "$("$JSONGET" error.code <"$TMP/r.json")" = quota_unavailable ] &&
    grep -qi "^retry-after: 1" "$TMP/r.h" &&
    ok "Redis down: the quota tier gets 503 quota_unavailable, Retry-After 1" ||
    bad "quota while down: $CODE $(cat "$TMP/r.json")"
post "$URLA" "$KF"
n=$(grep -c "does not answer" "$TMP/a.log")
[ "$n" = 1 ] && ok "one log line for the change: $(grep "does not answer" "$TMP/a.log" | cut -c1-90)..." ||
    bad "$n 'does not answer' lines: $(cat "$TMP/a.log")"
curl -s -H "Authorization: Bearer $KA" "$URLA/metrics" >"$TMP/m.txt"
grep -q '^bitnet_limits_mode{mode="local"} 1' "$TMP/m.txt" &&
    grep -q '^bitnet_limits_mode{mode="redis"} 0' "$TMP/m.txt" &&
    ok "/metrics: bitnet_limits_mode local 1, redis 0" || bad "mode: $(grep limits_mode "$TMP/m.txt")"
e=$(awk '/^bitnet_redis_errors_total/ {print $2}' "$TMP/m.txt")
[ -n "$e" ] && [ "$e" -ge 1 ] && ok "/metrics: bitnet_redis_errors_total $e" || bad "errors: '$e'"

# ---- Redis back (empty): shared again, the quota counter from the ledger -------------------------
rm -f "$SOCK"
start_redis
i=0 code=""
while [ $i -lt 80 ]; do # the backoff is 5 s at most
    post "$URLA" "$KQ"
    [ "$CODE" != 503 ] && break
    sleep 0.25
    i=$((i + 1))
done
[ "$CODE" = 429 ] && [ "$("$JSONGET" error.code <"$TMP/r.json")" = insufficient_quota ] &&
    ok "Redis back empty: the quota counter starts from the ledger (429 insufficient_quota)" ||
    bad "quota after restart: $CODE $(cat "$TMP/r.json")"
n=$(grep -c "limits shared through Redis" "$TMP/a.log")
[ "$n" = 2 ] && ok "one log line when it answers again" || bad "$n shared lines: $(cat "$TMP/a.log")"
curl -s -H "Authorization: Bearer $KA" "$URLA/metrics" | grep -q '^bitnet_limits_mode{mode="redis"} 1' &&
    ok "/metrics: bitnet_limits_mode redis 1 again" || bad "mode after restart"
kill -TERM "$PA"
wait "$PA" 2>/dev/null
ec=$?
[ "$ec" = 0 ] && ok "SIGTERM: exit 0" || bad "SIGTERM exit $ec"

# ---- an end that Redis missed: the month's counters start again from the ledger ------------------
# a Redis that keeps its data (appendonly) admits a slow model's stream; it stops (SIGTERM) and
# the client hangs up: the request ends, its ledger row is written, its counter update is lost;
# the same Redis comes back with the old counter
"$B" tenants add dev2 --tier developer >/dev/null 2>&1
KD=$("$B" keys create --tenant dev2 --scope inference --json 2>/dev/null | "$JSONGET" key)
DID=$("$B" tenants show dev2 --json 2>/dev/null | "$JSONGET" id)
mkdir -p "$TMP/r3"
S3="$TMP/r3/redis.sock"
start_r3() {
    redis-server --port 0 --unixsocket "$S3" --save "" --appendonly yes --dir "$TMP/r3" \
        >>"$TMP/r3/log" 2>&1 &
    R3=$!
    PIDS="$PIDS $R3"
    i=0
    while ! redis-cli -s "$S3" ping 2>/dev/null | grep -q PONG && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}
start_r3
"$B" synth --shape 700m -o "$TMP/slow.gguf" >/dev/null 2>&1 || bad "synth 700m"
start_server "$TMP/e.log" -m "$TMP/slow.gguf" --ctx 512 -t 1 --tenants --redis "unix://$S3"
PE=$SPID URLE=$URL
curl -sN "$URLE/v1/completions" -H "Authorization: Bearer $KD" \
    -d '{"prompt": "hello", "max_tokens": 400, "stream": true}' >"$TMP/e.sse" 2>/dev/null &
CP=$!
wait_grep '"text"' "$TMP/e.sse" 600 || bad "no token from the slow model"
ledger() { sqlite3 "$BITNET_HISTORY_DB" "SELECT count(*), coalesce(sum(prompt_tokens + completion_tokens), 0) FROM usage WHERE tenant_id = $DID"; }
qk=$(redis-cli -s "$S3" --scan --pattern "bitnet:{t$DID}:quota:*")
seeded=$(redis-cli -s "$S3" get "$qk")
kill "$R3"
wait "$R3" 2>/dev/null
kill "$CP"
i=0
while [ "$(ledger | cut -d'|' -f1)" != 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
wait_grep "does not answer" "$TMP/e.log" 30 &&
    ok "Redis gone: the stream ends uncounted (counter $seeded, the ledger $(ledger | cut -d'|' -f2) tokens)" ||
    bad "no 'does not answer': $(cat "$TMP/e.log")"
start_r3
[ "$(redis-cli -s "$S3" get "$qk")" = "$seeded" ] && ok "Redis back with the old counter ($seeded)" ||
    bad "counter after restart: $(redis-cli -s "$S3" get "$qk")"
i=0
while [ $i -lt 80 ]; do # the backoff is 5 s at most
    post "$URLE" "$KD"
    [ "$CODE" != 503 ] && break
    sleep 0.25
    i=$((i + 1))
done
grep -q "start again from the ledger" "$TMP/e.log" && ok "back: '$(grep -o 'limits shared.*' "$TMP/e.log" | tail -1)'" ||
    bad "no restart of the counters: $(cat "$TMP/e.log")"
[ "$CODE" = 200 ] && [ "$(redis-cli -s "$S3" get "$qk")" = "$(ledger | cut -d'|' -f2)" ] &&
    ok "the counter = the ledger's $(ledger | cut -d'|' -f2) tokens (the missed end included)" ||
    bad "counter $(redis-cli -s "$S3" get "$qk") vs ledger $(ledger) ($CODE)"
kill -TERM "$PE"
wait "$PE" 2>/dev/null

# ---- over TCP with a password: AUTH; a wrong one is a Redis that does not answer ----------------
RP=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$RP" --bind 127.0.0.1 --requirepass s3cret --save "" --appendonly no \
    --dir "$TMP" >"$TMP/redis2.log" 2>&1 &
PIDS="$PIDS $!"
i=0
until redis-cli -p "$RP" -a s3cret --no-auth-warning ping 2>/dev/null | grep -q PONG; do
    i=$((i + 1)); [ $i -lt 50 ] || break; sleep 0.1
done
start_server "$TMP/c.log" -m "$MODEL" --tenants --redis "redis://:s3cret@127.0.0.1:$RP/2"
PC=$SPID
grep -q "limits shared through Redis redis://127.0.0.1:$RP/2" "$TMP/c.log" && ! grep -q s3cret "$TMP/c.log" &&
    ok "redis://:PASSWORD@127.0.0.1:$RP/2: shared (the log names no password)" || bad "AUTH: $(cat "$TMP/c.log")"
post "$URL" "$KB"
[ "$CODE" = 200 ] && [ "$(redis-cli -p "$RP" -a s3cret --no-auth-warning -n 2 exists "bitnet:{t$BID}:req")" = 1 ] &&
    ok "the request's bucket is in database 2" || bad "db 2: $CODE $(redis-cli -p "$RP" -a s3cret --no-auth-warning -n 2 keys '*')"
kill -TERM "$PC"
wait "$PC" 2>/dev/null
"$B" history list --command serve --limit 1 --json >"$TMP/h.json" 2>&1
grep -q '(hidden)' "$TMP/h.json" && ! grep -q s3cret "$TMP/h.json" &&
    ok "the server's run in the history hides the URL with the password" || bad "history: $(head -c 400 "$TMP/h.json")"
start_server "$TMP/d.log" -m "$MODEL" --tenants --redis "redis://:wrong@127.0.0.1:$RP"
grep -q "does not answer (AUTH" "$TMP/d.log" && ok "a wrong password: $(grep -o 'does not answer ([^)]*' "$TMP/d.log" | head -1))" ||
    bad "wrong password: $(cat "$TMP/d.log")"
post "$URL" "$KF"
[ "$CODE" = 200 ] && ok "and the replica serves on its own limits" || bad "wrong password serve: $CODE"
finish test_serve_redis.sh
