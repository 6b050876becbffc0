#!/bin/sh
# bitnet serve: the real server on a free loopback port, driven with curl. The bundled model
# for the API (every endpoint, errors as OpenAI's error object, streaming to [DONE], usage
# equal to `bitnet tokenize`'s counts, greedy text equal to `bitnet generate --temp 0`, the API
# key); a synthetic 700m model (slow enough that a request is still running while others come)
# for the queue (429 with Retry-After), a client that hangs up mid-stream (its slot is free at
# once: the request ends long before its max_tokens), and SIGTERM (a running stream still ends
# with [DONE], the server exits 0). The official openai Python client, when installed
# (scripts/deps.sh), in tests/cli/serve_openai.py. Without curl the test skips.
. "$(dirname "$0")/lib.sh"
export BITNET_CONFIG="$TMP/config.json" BITNET_HISTORY_DB="$TMP/history.db" HOME="$TMP"
echo '{}' >"$BITNET_CONFIG"
MODEL=assets/models/bitnet-tinystories.gguf
if ! command -v curl >/dev/null 2>&1; then
    echo "  SKIP test_serve.sh: no curl"
    exit 0
fi

# stop_server WHAT: SIGTERM, then exit 0 and the line with the totals (a sanitizer's report
# at exit fails it too)
stop_server() {
    kill -TERM "$SPID"
    wait "$SPID"
    rc=$?
    [ "$rc" = 0 ] && grep -q "stopped after" "$log" && ok "$1: SIGTERM, exit 0" ||
        bad "$1: exit $rc, $(tail -3 "$log")"
}

# post PATH BODY OUT: the status in $CODE, the body in OUT (and its headers in OUT.h)
post() {
    CODE=$(curl -s -o "$3" -D "$3.h" -w '%{http_code}' -H 'Content-Type: application/json' \
        $AUTH --data-binary "$2" "$URL$1")
}

# expect_err STATUS PARAM WHAT PATH BODY: OpenAI's error object with this status (and param)
expect_err() {
    post "$4" "$5" "$TMP/e.json"
    t=$("$JSONGET" error.type <"$TMP/e.json" 2>/dev/null)
    p=$("$JSONGET" error.param <"$TMP/e.json" 2>/dev/null)
    if [ "$CODE" = "$1" ] && [ -n "$t" ] && [ "$p" = "$2" ]; then ok "$3: $1 ($t)"; else
        bad "$3: got $CODE, param '$p': $(cat "$TMP/e.json")"; fi
}

# check_metrics FILE WHAT: the text exposition parses (promtool when installed, else each
# line a HELP, a TYPE or a sample "name{labels} value")
check_metrics() {
    if command -v promtool >/dev/null 2>&1; then
        promtool check metrics <"$1" >"$TMP/promtool.out" 2>&1 && ok "$2: promtool check metrics" ||
            bad "$2: promtool: $(head -5 "$TMP/promtool.out")"
        return
    fi
    name='[a-zA-Z_:][a-zA-Z0-9_:]*'
    value='([-+]?[0-9.eE+-]+|[-+]Inf|NaN)'
    n=$(grep -Evc "^(# HELP $name .*|# TYPE $name (counter|gauge|histogram)|$name(\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\",?)*\})? $value)\$" "$1")
    [ -s "$1" ] && [ "$n" = 0 ] && ok "$2: every line a HELP, TYPE or sample" ||
        bad "$2: $n lines not in the text format"
}
# metric FILE SERIES: the value of that series ("" when none)
metric() { awk -v s="$2" '$1 == s { print $2 }' "$1"; }
# last_run FIELD...: those fields of the newest serve run in the history (one a line)
last_run() {
    "$BITNET" history list --command serve --limit 1 --json >"$TMP/run.json"
    for f in "$@"; do "$JSONGET" "runs.0.$f" <"$TMP/run.json" 2>/dev/null || echo "(none)"; done
}

echo "test_serve.sh"
expect_exit 0 "serve --help" -- "$BITNET" serve --help
expect_grep "/v1/chat/completions" "$TMP/out" "help names the endpoints"
expect_grep "GET /metrics" "$TMP/out" "help names /metrics"
expect_exit 2 "serve with an unknown option" -- "$BITNET" serve --nope
expect_exit 2 "serve --slots 0" -- "$BITNET" serve --slots 0
expect_exit 1 "serve a missing model" -- "$BITNET" serve -m "$TMP/none.gguf" --listen 127.0.0.1:0
expect_one_line_err "serve a missing model"

# ---- the API on the bundled model --------------------------------------------------------
export BITNET_SERVE_TRACE=1 # a line per batched step on stderr, checked at the end
start_server "$TMP/s1.log" -m "$MODEL" --slots 2 --queue 4
unset BITNET_SERVE_TRACE
[ -n "$URL" ] || { bad "no port"; finish test_serve.sh; exit; }
code=$(curl -s -o "$TMP/h.json" -w '%{http_code}' "$URL/health")
[ "$code" = 200 ] && [ "$("$JSONGET" status <"$TMP/h.json")" = ok ] && ok "GET /health: 200 ok" ||
    bad "health: $code $(cat "$TMP/h.json")"
curl -s "$URL/v1/models" >"$TMP/m.json"
[ "$("$JSONGET" object <"$TMP/m.json")" = list ] &&
    [ "$("$JSONGET" data.0.id <"$TMP/m.json")" = bitnet-tinystories ] &&
    ok "GET /v1/models names the model" || bad "models: $(cat "$TMP/m.json")"

# completions, greedy: the text of `bitnet generate --temp 0`, usage from `bitnet tokenize`
P="Once upon a time"
"$BITNET" generate -m "$MODEL" -p "$P" -n 24 --temp 0 >"$TMP/gen.txt" 2>/dev/null
post /v1/completions "{\"model\":\"any-name\",\"prompt\":\"$P\",\"max_tokens\":24,\"temperature\":0}" \
    "$TMP/c.json"
"$JSONGET" choices.0.text <"$TMP/c.json" >"$TMP/c.txt"
[ "$CODE" = 200 ] && cmp -s "$TMP/gen.txt" "$TMP/c.txt" && ok "completion equals generate --temp 0" ||
    bad "completion: $CODE $(cat "$TMP/c.json") vs $(cat "$TMP/gen.txt")"
[ "$("$JSONGET" object model <"$TMP/c.json" | tr '\n' ' ')" = "text_completion bitnet-tinystories " ] &&
    ok "completion: object and the served model's name" || bad "completion shape: $(cat "$TMP/c.json")"
ntok=$("$BITNET" tokenize -m "$MODEL" --bos --special --json "$P" | "$JSONGET" n_tokens)
set -- $("$JSONGET" usage.prompt_tokens usage.completion_tokens usage.total_tokens \
    choices.0.finish_reason <"$TMP/c.json")
[ "$1" = "$ntok" ] && [ "$3" = $(($1 + $2)) ] && ok "usage: prompt_tokens $1 = tokenize's, total = sum" ||
    bad "usage: $* (tokenize: $ntok)"
[ "$2" = 24 ] && [ "$4" = length ] && ok "max_tokens 24: 24 tokens, finish_reason length" ||
    bad "max_tokens: $2 $4"

# a stop string cuts the text before it, finish_reason stop
post /v1/completions "{\"prompt\":\"$P\",\"stop\":[\" little\"],\"temperature\":0}" "$TMP/st.json"
t=$("$JSONGET" choices.0.text <"$TMP/st.json")
case $(cat "$TMP/gen.txt") in
"$t little"*) [ "$("$JSONGET" choices.0.finish_reason <"$TMP/st.json")" = stop ] &&
    ok "stop string: text cut before it, finish_reason stop" || bad "stop: $(cat "$TMP/st.json")" ;;
*) bad "stop string: '$t' vs $(cat "$TMP/gen.txt")" ;;
esac

# chat: the plain chat format (no template in the file), a reply that ends at its line break:
# the first line of generate's text for the same laid-out prompt; usage from tokenize
printf 'User: Tell me a story\nAssistant:' >"$TMP/chat.txt"
"$BITNET" generate -m "$MODEL" -f "$TMP/chat.txt" -n 40 --temp 0 2>/dev/null | head -1 >"$TMP/gchat.txt"
post /v1/chat/completions \
    '{"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":40,"temperature":0}' \
    "$TMP/ch.json"
"$JSONGET" choices.0.message.content <"$TMP/ch.json" >"$TMP/ch.txt"
[ "$CODE" = 200 ] && cmp -s "$TMP/gchat.txt" "$TMP/ch.txt" &&
    [ "$("$JSONGET" object choices.0.message.role <"$TMP/ch.json" | tr '\n' ' ')" = "chat.completion assistant " ] &&
    ok "chat: the greedy reply of the laid-out conversation" ||
    bad "chat: $CODE $(cat "$TMP/ch.json") vs $(cat "$TMP/gchat.txt")"
nchat=$("$BITNET" tokenize -m "$MODEL" --bos --special --json --file "$TMP/chat.txt" | "$JSONGET" n_tokens)
[ "$("$JSONGET" usage.prompt_tokens <"$TMP/ch.json")" = "$nchat" ] &&
    ok "chat usage: prompt_tokens $nchat = tokenize's" || bad "chat usage: $(cat "$TMP/ch.json")"

# GET /metrics after three completions: it parses, and the token counters are the sums of the
# usage fields the three returned
code=$(curl -s -o "$TMP/m1.txt" -D "$TMP/m1.h" -w '%{http_code}' "$URL/metrics")
[ "$code" = 200 ] && grep -qi '^content-type: text/plain; version=0.0.4' "$TMP/m1.h" &&
    ok "GET /metrics: 200, the text format's content type" || bad "metrics: $code $(cat "$TMP/m1.h")"
check_metrics "$TMP/m1.txt" "/metrics"
up=0 ug=0
for f in c st ch; do
    up=$((up + $("$JSONGET" usage.prompt_tokens <"$TMP/$f.json")))
    ug=$((ug + $("$JSONGET" usage.completion_tokens <"$TMP/$f.json")))
done
L='{model="bitnet-tinystories"}'
mp=$(metric "$TMP/m1.txt" "bitnet_prompt_tokens_total$L")
mg=$(metric "$TMP/m1.txt" "bitnet_generation_tokens_total$L")
[ "$mp" = "$up" ] && [ "$mg" = "$ug" ] && [ "$ug" -gt 0 ] &&
    ok "metrics: prompt and generation tokens ($mp, $mg) = the sums of usage" ||
    bad "metrics tokens: $mp $mg, usage sums $up $ug"
[ "$(metric "$TMP/m1.txt" "bitnet_generation_duration_seconds_count$L")" = 3 ] &&
    [ "$(metric "$TMP/m1.txt" 'bitnet_http_requests_total{endpoint="/v1/completions",code="200"}')" = 2 ] &&
    [ "$(metric "$TMP/m1.txt" 'bitnet_http_requests_total{endpoint="/v1/chat/completions",code="200"}')" = 1 ] &&
    [ "$(metric "$TMP/m1.txt" bitnet_slots)" = 2 ] &&
    [ "$(metric "$TMP/m1.txt" bitnet_slots_busy)" = 0 ] &&
    [ "$(metric "$TMP/m1.txt" bitnet_requests_rejected_total)" = 0 ] &&
    [ "$(metric "$TMP/m1.txt" bitnet_http_requests_in_flight)" -ge 1 ] 2>/dev/null &&
    ok "metrics: 3 requests timed, HTTP requests by endpoint and code, slots, in flight" ||
    bad "metrics: $(grep -v '^#' "$TMP/m1.txt" | grep -v _bucket)"

# the same prompt again: a slot's KV cache holds it (the requests before), so it goes to that
# slot and only its last token is evaluated again; the text is the same
curl -s "$URL/metrics" >"$TMP/pc0.txt"
post /v1/completions "{\"prompt\":\"$P\",\"max_tokens\":24,\"temperature\":0}" "$TMP/c2.json"
curl -s "$URL/metrics" >"$TMP/pc1.txt"
"$JSONGET" choices.0.text <"$TMP/c2.json" >"$TMP/c2.txt"
c0=$(metric "$TMP/pc0.txt" bitnet_prompt_tokens_cached_total)
c1=$(metric "$TMP/pc1.txt" bitnet_prompt_tokens_cached_total)
[ "$CODE" = 200 ] && cmp -s "$TMP/gen.txt" "$TMP/c2.txt" && [ -n "$c0" ] && [ -n "$c1" ] &&
    [ $((c1 - c0)) = $((ntok - 1)) ] &&
    ok "a prompt in a slot's cache: $((c1 - c0)) of its $ntok tokens not evaluated again, the same text" ||
    bad "cached prompt: $CODE, cached '$c0' -> '$c1' of $ntok, $(cat "$TMP/c2.txt")"

# continuous batching: four greedy completions at once on 2 slots, each the text of
# `bitnet generate --temp 0` for its prompt; the decoding steps carried more than one token;
# each connection was woken by the engine at most once, at its request's end (not at every
# step of every slot: a broadcast woke each waiting connection about 32 times here; two of
# them wait in the queue, so at least one is woken)
curl -s "$URL/metrics" >"$TMP/mb0.txt"
i=0 cpids=""
for p in "Once upon a time" "The little dog" "Tom and Lily went" "One day, a bird"; do
    i=$((i + 1))
    "$BITNET" generate -m "$MODEL" -p "$p" -n 32 --temp 0 >"$TMP/g$i.txt" 2>/dev/null
    curl -s -H 'Content-Type: application/json' "$URL/v1/completions" \
        -d "{\"prompt\":\"$p\",\"max_tokens\":32,\"temperature\":0}" >"$TMP/b$i.json" &
    cpids="$cpids $!"
done
wait $cpids # (a bare wait would wait for the server too)
same=0
for i in 1 2 3 4; do
    "$JSONGET" choices.0.text <"$TMP/b$i.json" >"$TMP/b$i.txt" 2>/dev/null
    cmp -s "$TMP/g$i.txt" "$TMP/b$i.txt" && same=$((same + 1))
done
[ "$same" = 4 ] && ok "4 concurrent greedy completions on 2 slots: each equals generate --temp 0" ||
    bad "batched completions: $same of 4 equal generate's"
curl -s "$URL/metrics" >"$TMP/mb.txt"
steps=$(metric "$TMP/mb.txt" bitnet_decode_steps_total)
toks=$(metric "$TMP/mb.txt" bitnet_decode_tokens_total)
[ "${toks:-0}" -gt "${steps:-0}" ] 2>/dev/null && [ "$steps" -gt 0 ] &&
    ok "decoding steps were batched: $toks tokens in $steps steps" ||
    bad "decode steps: $steps steps, $toks tokens"
w0=$(metric "$TMP/mb0.txt" bitnet_connection_wakeups_total)
w1=$(metric "$TMP/mb.txt" bitnet_connection_wakeups_total)
[ -n "$w0" ] && [ -n "$w1" ] && [ $((w1 - w0)) -ge 1 ] && [ $((w1 - w0)) -le 8 ] &&
    ok "4 completions answered whole: their connections woken $((w1 - w0)) times (at most once each)" ||
    bad "wake-ups of 4 whole answers: '$w0' -> '$w1'"

# streaming: well-formed chunks, the same text as the whole answer, usage, then [DONE]
check_stream() { # FILE WHAT FIELD: every event parses, the last is [DONE]
    n=0
    grep '^data: ' "$1" | sed 's/^data: //' | grep -v '^\[DONE\]$' >"$TMP/ev"
    while IFS= read -r line; do
        printf '%s' "$line" | "$JSONGET" >/dev/null || n=$((n + 1))
    done <"$TMP/ev"
    last=$(grep '^data: ' "$1" | tail -1)
    [ "$n" = 0 ] && [ "$last" = "data: [DONE]" ] && ok "$2: JSON events, ends with [DONE]" ||
        bad "$2: $n bad events, last '$last'"
    while IFS= read -r line; do printf '%s' "$line" | "$JSONGET" "$3" 2>/dev/null; done <"$TMP/ev" |
        tr -d '\n' >"$TMP/stream.txt"
}
curl -sN -H 'Content-Type: application/json' "$URL/v1/completions" -d \
    "{\"prompt\":\"$P\",\"max_tokens\":24,\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" \
    >"$TMP/s.sse"
check_stream "$TMP/s.sse" "completion stream" choices.0.text
curl -s "$URL/metrics" >"$TMP/ms.txt"
w2=$(metric "$TMP/ms.txt" bitnet_connection_wakeups_total)
[ -n "$w2" ] && [ $((w2 - w1)) -ge 0 ] && [ $((w2 - w1)) -le 25 ] &&
    ok "a 24-token stream: its connection woken $((w2 - w1)) times (text came, or the end)" ||
    bad "wake-ups of a 24-token stream: '$w1' -> '$w2'"
tr -d '\n' <"$TMP/gen.txt" | cmp -s - "$TMP/stream.txt" && ok "stream: the text of the whole answer" ||
    bad "stream text: $(cat "$TMP/stream.txt")"
grep -q '"finish_reason":"length"' "$TMP/s.sse" && grep -q '"completion_tokens":24' "$TMP/s.sse" &&
    ok "stream: finish_reason and usage chunks" || bad "stream end: $(tail -3 "$TMP/s.sse")"
# a stop string that begins inside a token ("lit|tle gi"), in a stream: the same text as the
# whole answer (that text which may begin a stop string is held back is test_serve's check)
post /v1/completions "{\"prompt\":\"$P\",\"stop\":\"tle gi\",\"temperature\":0}" "$TMP/st2.json"
t2=$("$JSONGET" choices.0.text <"$TMP/st2.json")
curl -sN "$URL/v1/completions" -d \
    "{\"prompt\":\"$P\",\"stop\":\"tle gi\",\"temperature\":0,\"stream\":true}" >"$TMP/ss.sse"
check_stream "$TMP/ss.sse" "stream with a stop string" choices.0.text
case $t2 in
*" a lit") [ "$(cat "$TMP/stream.txt")" = "$t2" ] && grep -q '"finish_reason":"stop"' "$TMP/ss.sse" &&
    ok "stream with a stop string inside a token: the whole answer's text" ||
    bad "stop in a stream: '$(cat "$TMP/stream.txt")' vs '$t2'" ;;
*) bad "stop inside a token: '$t2'" ;;
esac
curl -sN "$URL/v1/chat/completions" -d \
    '{"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":40,"temperature":0,"stream":true}' \
    >"$TMP/c.sse"
check_stream "$TMP/c.sse" "chat stream" choices.0.delta.content
grep -q '"delta":{"role":"assistant"' "$TMP/c.sse" && tr -d '\n' <"$TMP/gchat.txt" | cmp -s - "$TMP/stream.txt" &&
    ok "chat stream: role first, the same reply" || bad "chat stream: $(head -c 600 "$TMP/c.sse")"

# errors: OpenAI's error object with the right status
expect_err 400 null "malformed JSON" /v1/chat/completions '{"messages": ['
expect_err 400 messages "no messages" /v1/chat/completions '{"model":"x"}'
expect_err 400 messages "a message without content" /v1/chat/completions '{"messages":[{"role":"user","content":7}]}'
expect_err 400 messages "last message not the user's" /v1/chat/completions \
    '{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}'
expect_err 400 n "n=2" /v1/chat/completions '{"messages":[{"role":"user","content":"a"}],"n":2}'
expect_err 400 temperature "temperature as a string" /v1/completions '{"prompt":"a","temperature":"hot"}'
expect_err 400 max_tokens "max_tokens 0" /v1/completions '{"prompt":"a","max_tokens":0}'
expect_err 400 stop "five stop strings" /v1/completions '{"prompt":"a","stop":["a","b","c","d","e"]}'
expect_err 400 prompt "no prompt" /v1/completions '{"max_tokens":3}'
expect_err 404 null "an unknown path" /v1/embeddings '{}'
long=$(head -c 3000 /dev/zero | tr '\0' 'a' | sed 's/a/once /g')
expect_err 400 null "a prompt longer than the context" /v1/completions "{\"prompt\":\"$long\"}"
[ "$("$JSONGET" error.code <"$TMP/e.json")" = context_length_exceeded ] && ok "code context_length_exceeded" ||
    bad "long prompt: $(cat "$TMP/e.json")"
head -c 2000000 /dev/zero | tr '\0' ' ' >"$TMP/big.json"
code=$(curl -s -o "$TMP/e.json" -w '%{http_code}' --data-binary @"$TMP/big.json" "$URL/v1/completions")
[ "$code" = 413 ] && ok "a 2 MB body: 413" || bad "big body: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/health")
[ "$code" = 200 ] && ok "still up after the bad requests" || bad "health after errors: $code"

# 32 streaming clients at once on 2 slots and a queue of 4: each stream is whole (ends with
# [DONE]) or a 429 error object; afterwards no slot is busy and nothing waits
i=0
while [ "$i" -lt 32 ]; do
    curl -sN -o "$TMP/many$i.out" -w '%{http_code}' "$URL/v1/completions" \
        -d '{"prompt":"Once upon a time","max_tokens":30,"stream":true}' >"$TMP/many$i.code" &
    PIDS="$PIDS $!"
    i=$((i + 1))
done
wait_clients=0
while [ "$wait_clients" -lt 600 ] && [ "$(cat "$TMP"/many*.code 2>/dev/null | wc -c)" -lt 96 ]; do
    sleep 0.1
    wait_clients=$((wait_clients + 1))
done
n200=0 n429=0 nbad=0
i=0
while [ "$i" -lt 32 ]; do
    case $(cat "$TMP/many$i.code") in
    200) [ "$(grep '^data: ' "$TMP/many$i.out" | tail -1)" = "data: [DONE]" ] && n200=$((n200 + 1)) ||
        nbad=$((nbad + 1)) ;;
    429) [ "$("$JSONGET" error.code <"$TMP/many$i.out")" = rate_limit_exceeded ] && n429=$((n429 + 1)) ||
        nbad=$((nbad + 1)) ;;
    *) nbad=$((nbad + 1)) ;;
    esac
    i=$((i + 1))
done
[ "$nbad" = 0 ] && [ "$n200" -ge 1 ] && [ $((n200 + n429)) = 32 ] &&
    ok "32 streaming clients: $n200 whole streams, $n429 answered 429" ||
    bad "32 clients: $n200 whole, $n429 429, $nbad bad"
curl -s "$URL/health" >"$TMP/h.json"
[ "$("$JSONGET" slots_processing requests_waiting <"$TMP/h.json" | tr '\n' ' ')" = "0 0 " ] &&
    ok "after them no slot is busy" || bad "health after 32 clients: $(cat "$TMP/h.json")"
# 300 slow clients from one address (a header line every 0.5 s, never a whole request): it
# gets 64 connections, the rest are turned away, and others are still answered meanwhile
: "${SLOWCLIENT:=$(dirname "$JSONGET")/slowclient}"
if [ -x "$SLOWCLIENT" ]; then
    port=${URL##*:}
    "$SLOWCLIENT" --port "$port" --conns 300 --from 127.0.0.2 --addrs 1 --every-ms 500 \
        --for-ms 3000 --ready "$TMP/ready" >"$TMP/slow.out" 2>&1 &
    SLOW=$!
    PIDS="$PIDS $SLOW"
    wait_grep 300 "$TMP/ready" 100
    post /v1/completions '{"prompt":"Once","max_tokens":3}' "$TMP/amid.json"
    [ "$CODE" = 200 ] && ok "a completion is answered amid 300 slow connections" ||
        bad "amid slow clients: $CODE"
    wait "$SLOW"
    closed=$(sed -n 's/.* closed=\([0-9]*\).*/\1/p' "$TMP/slow.out")
    [ -n "$closed" ] && [ "$closed" -ge 200 ] && ok "one address gets at most 64 ($closed turned away)" ||
        bad "slow clients: $(cat "$TMP/slow.out")"
else
    echo "  SKIP slow clients: no $SLOWCLIENT"
fi
curl -s "$URL/metrics" >"$TMP/mend.txt"
stop_server "the API server"
# BITNET_SERVE_TRACE: one line per step, their slots and tokens those of the step counters
grep 'bitnet serve: step [0-9]*: ' "$TMP/s1.log" >"$TMP/steps.txt"
set -- $(awk '{ n++; t += $9 } $5 > 1 { b++ } END { print n + 0, t + 0, b + 0 }' "$TMP/steps.txt")
[ "$1" = "$(metric "$TMP/mend.txt" bitnet_decode_steps_total)" ] &&
    [ "$2" = "$(metric "$TMP/mend.txt" bitnet_decode_tokens_total)" ] && [ "$3" -ge 1 ] &&
    grep -q 'model [0-9.]* ms, sampling [0-9.]* ms, the rest [0-9.]* ms (waits for the lock [0-9.]* ms); [0-9.]* ms since the last step$' "$TMP/steps.txt" &&
    ok "BITNET_SERVE_TRACE: $1 step lines, $2 tokens: the step counters; $3 with several slots" ||
    bad "trace: $* vs $(grep decode_ "$TMP/mend.txt" | grep -v '^#'); $(tail -2 "$TMP/steps.txt")"

# ---- the API key -------------------------------------------------------------------------
start_server "$TMP/s2.log" -m "$MODEL" --api-key sekrit
echo 'header = "Authorization: Bearer wrong"' >"$TMP/auth.cfg"
AUTH="-K $TMP/auth.cfg"
expect_err 401 null "a wrong API key" /v1/completions '{"prompt":"a","max_tokens":2}'
AUTH=""
expect_err 401 null "no API key" /v1/models ''
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer sekrit" "$URL/v1/models")
[ "$code" = 200 ] && ok "the right API key: 200" || bad "right key: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/health")
[ "$code" = 200 ] && ok "/health needs no key" || bad "health with a key set: $code"
# the KV cache of the one slot after a completion that ends at max_tokens: its prompt and
# every generated token but the last sampled (which is never evaluated); capacity the context
echo 'header = "Authorization: Bearer sekrit"' >"$TMP/auth.cfg"
AUTH="-K $TMP/auth.cfg"
post /v1/completions "{\"prompt\":\"$P\",\"max_tokens\":9,\"temperature\":0}" "$TMP/kv.json"
curl -s $AUTH "$URL/metrics" >"$TMP/m2.txt"
set -- $("$JSONGET" usage.prompt_tokens usage.completion_tokens choices.0.finish_reason <"$TMP/kv.json")
nctx=$(sed -n 's/.* of \([0-9]*\) tokens.*/\1/p' "$TMP/s2.log")
[ "$3" = length ] && [ "$(metric "$TMP/m2.txt" 'bitnet_slot_kv_tokens{slot="0"}')" = $(($1 + $2 - 1)) ] &&
    [ -n "$nctx" ] && [ "$(metric "$TMP/m2.txt" 'bitnet_slot_kv_capacity_tokens{slot="0"}')" = "$nctx" ] &&
    ok "metrics: slot 0 holds $1 prompt + $2 generated - 1 tokens of $nctx" ||
    bad "slot KV: usage $*, ctx $nctx: $(grep slot_kv "$TMP/m2.txt")"
check_metrics "$TMP/m2.txt" "/metrics with the slot gauges"
AUTH=""
stop_server "the server with a key"
# its one run in the history: the totals of its one completion (the 401s never ran), and
# the API key not in the recorded arguments
set -- $(last_run status metrics.requests metrics.prompt_tokens metrics.generated_tokens \
    metrics.errors metrics.rejected metrics.slots)
want="ok 1 $("$JSONGET" usage.prompt_tokens <"$TMP/kv.json") 9 0 0 1"
[ "$*" = "$want" ] && ok "history: the server's run with its totals ($want)" ||
    bad "history run: '$*', want '$want': $(cat "$TMP/run.json")"
grep -q '"(hidden)"' "$TMP/run.json" && ! grep -q sekrit "$TMP/run.json" &&
    ok "history: the API key is not recorded" || bad "history params: $(cat "$TMP/run.json")"

# ---- connections from one address: --max-per-client ------------------------------------------
expect_exit 2 "--max-per-client beyond 256" -- "$BITNET" serve -m "$MODEL" --max-per-client 257
if command -v python3 >/dev/null 2>&1; then
    start_server "$TMP/s6.log" -m "$MODEL" --max-per-client 2
    # three keep-alive connections at once: two answered, the third closed unanswered; once
    # one of the two is gone, a new one is answered
    got=$(python3 - "${URL#http://}" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
def ask(c):
    try:
        c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        c.settimeout(5)
        return "200" if c.recv(64).startswith(b"HTTP/1.1 200") else "closed"
    except OSError:
        return "closed"
cs = [socket.create_connection((host, int(port))) for _ in range(3)]
out = [ask(c) for c in cs]
cs[0].close(); cs[2].close()
import time; time.sleep(0.3)
out.append(ask(socket.create_connection((host, int(port)))))
print(" ".join(out))
PY
)
    [ "$got" = "200 200 closed 200" ] &&
        ok "--max-per-client 2: a third connection from one address is closed, a later one answered" ||
        bad "--max-per-client 2: $got"
    stop_server "the server with --max-per-client"
    N_SERVERS=1
else
    echo "  SKIP --max-per-client: no python3"
fi

# ---- slots, the queue, a client that hangs up, SIGTERM: a model slow enough to watch ----------
"$BITNET" synth --shape 700m -o "$TMP/slow.gguf" >/dev/null 2>&1 || bad "synth 700m"
start_server "$TMP/s4.log" -m "$TMP/slow.gguf" --slots 1 --queue 1 --ctx 1024 -t 2
sse() { # OUT N: a streaming completion of up to N tokens, in the background
    curl -sN "$URL/v1/completions" -d "{\"prompt\":\"hello\",\"max_tokens\":$2,\"stream\":true}" >"$1" &
}
# wait_waiting N: until /health says N requests wait (at most 10 s); 0 when it does
wait_waiting() {
    i=0
    while [ "$i" -lt 100 ]; do
        [ "$(curl -s "$URL/health" | "$JSONGET" requests_waiting)" = "$1" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
sse "$TMP/a.sse" 1000
APID=$!
wait_grep '^data: ' "$TMP/a.sse" 300 || bad "stream A did not start"
curl -s -o "$TMP/b.json" -w '%{http_code}' "$URL/v1/completions" \
    -d '{"prompt":"hi","max_tokens":3}' >"$TMP/b.code" &
BPID=$!
wait_waiting 1 || bad "B not queued"
post /v1/completions '{"prompt":"hi","max_tokens":3}' "$TMP/c429.json"
[ "$CODE" = 429 ] && grep -qi '^retry-after: ' "$TMP/c429.json.h" &&
    [ "$("$JSONGET" error.code <"$TMP/c429.json")" = rate_limit_exceeded ] &&
    ok "slot and queue full: 429 with Retry-After" || bad "third request: $CODE $(cat "$TMP/c429.json")"
curl -s "$URL/metrics" >"$TMP/m4.txt"
[ "$(metric "$TMP/m4.txt" bitnet_requests_rejected_total)" = 1 ] &&
    [ "$(metric "$TMP/m4.txt" 'bitnet_http_requests_total{endpoint="/v1/completions",code="429"}')" = 1 ] &&
    [ "$(metric "$TMP/m4.txt" bitnet_requests_waiting)" = 1 ] &&
    [ "$(metric "$TMP/m4.txt" bitnet_slots_busy)" = 1 ] &&
    ok "metrics: the 429 counted, 1 waiting, 1 slot busy" ||
    bad "metrics after 429: $(grep -v '^#' "$TMP/m4.txt" | grep -v _bucket)"
check_metrics "$TMP/m4.txt" "/metrics while busy"
kill "$BPID" 2>/dev/null # the queued client hangs up: its place in the queue is free at once
wait "$BPID" 2>/dev/null
wait_waiting 0 && ok "a queued client that hangs up leaves the queue" || bad "queue after B hung up"
curl -s -o "$TMP/b.json" -w '%{http_code}' "$URL/v1/completions" \
    -d '{"prompt":"hi","max_tokens":3}' >"$TMP/b.code" &
BPID=$!
wait_waiting 1 || bad "B not queued again"
kill "$APID" 2>/dev/null # the client of stream A hangs up: its slot goes to B at once
wait "$BPID"
[ "$(cat "$TMP/b.code")" = 200 ] && ok "the queued request runs once the client of the slot is gone" ||
    bad "queued request: $(cat "$TMP/b.code") $(cat "$TMP/b.json")"
curl -s "$URL/health" >"$TMP/h.json"
[ "$("$JSONGET" slots_processing requests_waiting <"$TMP/h.json" | tr '\n' ' ')" = "0 0 " ] &&
    ok "no slot left busy" || bad "health after: $(cat "$TMP/h.json")"
# SIGTERM while a stream runs: it still ends with [DONE], then the server exits 0
sse "$TMP/d.sse" 40
DPID=$!
wait_grep '^data: ' "$TMP/d.sse" 300
kill -TERM "$SPID"
wait "$SPID"
rc=$?
wait "$DPID"
[ "$rc" = 0 ] && [ "$(grep '^data: ' "$TMP/d.sse" | tail -1)" = "data: [DONE]" ] &&
    ok "SIGTERM mid-stream: the stream ends with [DONE], exit 0" ||
    bad "SIGTERM mid-stream: exit $rc, $(tail -c 300 "$TMP/d.sse")"
[ "$(last_run status metrics.rejected | tr '\n' ' ')" = "ok 1 " ] &&
    ok "history: the run counts the 429" || bad "history 429s: $(cat "$TMP/run.json")"
# stream A was cut short: far fewer than its 500 tokens were generated in all
gen=$(sed -n 's/.*, \([0-9]*\) generated tokens.*/\1/p' "$TMP/s4.log")
[ -n "$gen" ] && [ "$gen" -lt 800 ] && ok "the hung-up stream stopped early ($gen tokens in all)" ||
    bad "tokens generated: '$gen' ($(tail -1 "$TMP/s4.log"))"

# ---- --timeout 1 on the slow model: a request of 1000 tokens ends at its deadline -----------
# (the request runs at most 1 s whatever the machine's load; what is asserted is how it ends)
start_server "$TMP/s5.log" -m "$TMP/slow.gguf" --slots 1 --queue 1 --ctx 1024 -t 2 --timeout 1
expect_err 504 null "past --timeout 1, nothing sent yet" /v1/completions \
    '{"prompt":"hello","max_tokens":1000,"temperature":0}'
[ "$("$JSONGET" error.code error.type <"$TMP/e.json" | tr '\n' ' ')" = "timeout server_error " ] &&
    ok "timeout: error code timeout" || bad "timeout error: $(cat "$TMP/e.json")"
curl -s "$URL/health" >"$TMP/h.json"
[ "$("$JSONGET" slots_processing requests_waiting <"$TMP/h.json" | tr '\n' ' ')" = "0 0 " ] &&
    ok "timeout: the slot is free once the 504 is out" || bad "health after timeout: $(cat "$TMP/h.json")"
curl -sN "$URL/v1/chat/completions" -d \
    '{"messages":[{"role":"user","content":"hello"}],"max_tokens":1000,"temperature":0,"stream":true}' \
    >"$TMP/t.sse"
grep '^data: ' "$TMP/t.sse" | tail -2 | head -1 | sed 's/^data: //' >"$TMP/t.last"
[ "$(grep '^data: ' "$TMP/t.sse" | tail -1)" = "data: [DONE]" ] &&
    [ "$("$JSONGET" error.code <"$TMP/t.last")" = timeout ] &&
    ! grep -q '"finish_reason":"' "$TMP/t.sse" &&
    ok "timeout mid-stream: an error event with code timeout, then [DONE], no finish_reason" ||
    bad "timeout in a stream: $(tail -c 400 "$TMP/t.sse")"
curl -s "$URL/metrics" >"$TMP/m5.txt"
[ "$(metric "$TMP/m5.txt" bitnet_requests_timed_out_total)" = 2 ] &&
    [ "$(metric "$TMP/m5.txt" 'bitnet_generation_requests_total{model="slow",result="error"}')" = 2 ] &&
    [ "$(metric "$TMP/m5.txt" 'bitnet_http_requests_total{endpoint="/v1/completions",code="504"}')" = 1 ] &&
    [ "$(metric "$TMP/m5.txt" bitnet_slots_busy)" = 0 ] &&
    ok "metrics: 2 timed out (result error), one 504, no slot busy" ||
    bad "metrics after timeouts: $(grep -v '^#' "$TMP/m5.txt" | grep -v _bucket)"
check_metrics "$TMP/m5.txt" "/metrics after timeouts"
stop_server "the server with --timeout 1"
[ "$(last_run status metrics.requests metrics.errors metrics.timeouts | tr '\n' ' ')" = "ok 2 2 2 " ] &&
    ok "history: 2 requests, both errors by timeout" || bad "history timeouts: $(cat "$TMP/run.json")"
# one run per server, not per request: the missing model's (failed) and four or five servers'
"$BITNET" history list --command serve --limit 0 --json >"$TMP/runs.json"
n=$(grep -c '"command":' "$TMP/runs.json")
nf=$(grep -c '"status":[[:space:]]*"failed"' "$TMP/runs.json")
want=$((5 + ${N_SERVERS:-0}))
[ "$n" = "$want" ] && [ "$nf" = 1 ] && ok "history: one run per server ($want, 1 failed: the missing model)" ||
    bad "history: $n serve runs, $nf failed"
expect_exit 2 "serve --timeout -1" -- "$BITNET" serve --timeout -1
expect_exit 2 "serve --timeout 1.5" -- "$BITNET" serve --timeout 1.5

# ---- --batch 8: a long prompt goes through the model in parts of at most 8 tokens over
# several steps, beside a stream that goes on decoding (it does not wait for the whole
# prompt), and its greedy text is still generate's
export BITNET_SERVE_TRACE=1
start_server "$TMP/s6.log" -m "$MODEL" --slots 2 --batch 8
unset BITNET_SERVE_TRACE
LP="Once upon a time there was a little girl named Lily who loved to play in the park with her friends"
"$BITNET" generate -m "$MODEL" -p "$LP" -n 8 --temp 0 >"$TMP/glp.txt" 2>/dev/null
nlp=$("$BITNET" tokenize -m "$MODEL" --bos --special --json "$LP" | "$JSONGET" n_tokens)
curl -sN "$URL/v1/completions" -o "$TMP/lp.sse" \
    -d '{"prompt":"Once upon a time","max_tokens":60,"temperature":0,"stream":true}' &
LPID=$!
post /v1/completions "{\"prompt\":\"$LP\",\"max_tokens\":8,\"temperature\":0}" "$TMP/lp.json"
wait "$LPID"
"$JSONGET" choices.0.text <"$TMP/lp.json" >"$TMP/lp.txt"
[ "$CODE" = 200 ] && cmp -s "$TMP/glp.txt" "$TMP/lp.txt" &&
    [ "$(grep '^data: ' "$TMP/lp.sse" | tail -1)" = "data: [DONE]" ] &&
    ok "--batch 8: a $nlp-token prompt's greedy text is generate's, the other stream whole" ||
    bad "long prompt in parts: $CODE $(cat "$TMP/lp.json") vs $(cat "$TMP/glp.txt")"
stop_server "the server with --batch 8"
grep 'bitnet serve: step [0-9]*: ' "$TMP/s6.log" >"$TMP/steps6.txt"
set -- $(awk '$9 > m { m = $9 } $7 >= 1 { p++ } END { print m + 0, p + 0 }' "$TMP/steps6.txt")
[ "$nlp" -gt 16 ] && [ "$1" -le 8 ] && [ "$2" -ge $(((nlp + 7) / 8)) ] &&
    ok "--batch 8: the $nlp-token prompt in parts: $2 steps with prompt tokens, at most $1 tokens a step" ||
    bad "prompt parts: most $1 tokens a step, $2 steps with prompt tokens ($nlp tokens)"

# ---- 16 slots on 2 threads: a step of 16 decoding slots is shared out by slots (each
# thread runs the whole forward of its 8, split_forward in model_forward.c), and every
# slot's greedy text is still generate's
export BITNET_SERVE_TRACE=1
start_server "$TMP/s7.log" -m "$MODEL" --slots 16 -t 2 --ctx 256
unset BITNET_SERVE_TRACE
names="Lily Tom Ben Sue Max Amy Sam Kim Joe Ann Bob Eve Dan Meg Tim Zoe"
i=0
for w in $names; do
    i=$((i + 1))
    "$BITNET" generate -m "$MODEL" -p "$w went to the park" -n 24 --temp 0 >"$TMP/g16_$i.txt" \
        2>/dev/null
done
i=0 cpids=""
for w in $names; do
    i=$((i + 1))
    curl -s -H 'Content-Type: application/json' "$URL/v1/completions" \
        -d "{\"prompt\":\"$w went to the park\",\"max_tokens\":24,\"temperature\":0}" \
        >"$TMP/b16_$i.json" &
    cpids="$cpids $!"
done
wait $cpids
same=0
for i in $(seq 16); do
    "$JSONGET" choices.0.text <"$TMP/b16_$i.json" >"$TMP/b16_$i.txt" 2>/dev/null
    cmp -s "$TMP/g16_$i.txt" "$TMP/b16_$i.txt" && same=$((same + 1))
done
stop_server "the server with 16 slots"
full=$(grep -c 'bitnet serve: step [0-9]*: 16 slots, 0 prompts, 16 tokens' "$TMP/s7.log")
[ "$same" = 16 ] && [ "$full" -ge 5 ] &&
    ok "16 greedy completions at once on 16 slots, 2 threads ($full steps of 16 decoding slots): each equals generate --temp 0" ||
    bad "16 slots: $same of 16 equal generate's, $full steps of 16 decoding slots"

# ---- the openai Python client --------------------------------------------------------------
if python3 -c 'import openai' 2>/dev/null; then
    start_server "$TMP/s3.log" -m "$MODEL"
    if python3 tests/cli/serve_openai.py "$URL/v1" "$TMP/gen.txt" "$TMP/gchat.txt" "$ntok" \
        >"$TMP/py.out" 2>&1; then
        ok "openai client: $(tr '\n' ';' <"$TMP/py.out")"
    else
        bad "openai client: $(tail -5 "$TMP/py.out")"
    fi
    stop_server "the openai client's server"
else
    echo "  SKIP the openai Python client: not installed (scripts/deps.sh installs it)"
fi

finish test_serve.sh
