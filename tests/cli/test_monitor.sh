# bitnet monitor and bitnet alerts: the exposition (promtool check metrics, our own histogram
# checks), the endpoint (Content-Type, health, errors), a real Prometheus scraping it, the
# textfile, the recorder (tests/tools/httprec) standing in for CloudWatch (SigV4), Datadog
# (series, events), a webhook and a Pushgateway, a sink down then up (every spooled sample and
# notification exactly once), the bounded spool, a slow sink that blocks nothing, the alert
# commands and the probe generation. Everything on 127.0.0.1; promtool and prometheus (Debian
# package prometheus) are optional: their checks SKIP without them.
. "$(dirname "$0")/lib.sh"
: "${HTTPREC:=$(dirname "$JSONGET")/httprec}"
export BITNET_CONFIG="$TMP/config.json" BITNET_HISTORY_DB="$TMP/history.db" HOME="$TMP"
unset DD_API_KEY AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE \
    AWS_REGION AWS_DEFAULT_REGION BITNET_MONITOR_LISTEN 2>/dev/null
echo '{}' >"$BITNET_CONFIG"

skip() { echo "  SKIP $1"; }

# cpus_rule [SINKS]: a config with one rule that fires at once (with SINKS, a JSON array, its
# sinks)
cpus_rule() {
    printf '{"alerts": [{"name": "cpus", "metric": "bitnet_host_cpus", "op": ">=", "threshold": 1%s}]}\n' \
        "${1:+, \"sinks\": $1}" >"$BITNET_CONFIG"
}

# start_rec PORT OUT [ARGS]: the recorder on PORT; REC is its pid
start_rec() {
    port=$1 out=$2
    shift 2
    rm -f "$TMP/rec.port"
    "$HTTPREC" --port "$port" --port-file "$TMP/rec.port" --out "$out" --timeout 60 "$@" &
    REC=$!
    PIDS="$PIDS $REC"
    wait_grep "$port" "$TMP/rec.port" 50 || bad "the recorder did not start on $port"
}

# body PORT PATH [METHOD]: the body of a response
body() {
    "$HTTPREC" --fetch "$@" | tr -d '\r' | sed '1,/^$/d'
}

# check_histograms FILE: every _bucket series is cumulative and its +Inf bucket equals _count
check_histograms() {
    awk '
    /^#/ { next }
    /_bucket\{/ {
        split($0, a, " "); v = a[2] + 0
        key = a[1]; sub(/,?le="[^"]*"/, "", key); sub(/_bucket/, "", key); sub(/\{\}$/, "", key)
        if ((key in last) && v < last[key]) { print "not monotonic: " $0; bad = 1 }
        last[key] = v
        if ($0 ~ /le="\+Inf"/) inf[key] = v
        next
    }
    /_count[{ ]/ { split($0, a, " "); key = a[1]; sub(/_count/, "", key); count[key] = a[2] + 0 }
    END {
        n = 0
        for (k in inf) { n++; if (!(k in count) || count[k] != inf[k]) { print "+Inf != count: " k; bad = 1 } }
        for (k in count) if (!(k in inf) && k in last) { print "no +Inf bucket: " k; bad = 1 }
        if (bad) exit 1
        print n
    }' "$1"
}

PROMTOOL=$(command -v promtool || true)
promtool_check() {
    if [ -z "$PROMTOOL" ]; then skip "promtool check metrics ($2): promtool absent"; return; fi
    if "$PROMTOOL" check metrics <"$1" >"$TMP/promtool.out" 2>&1; then ok "promtool check metrics: $2"
    else bad "promtool check metrics: $2"; sed 's/^/       /' "$TMP/promtool.out" | head -5; fi
}

# ---- usage ----------------------------------------------------------------------------------
expect_exit 0 "monitor --help" -- "$BITNET" monitor --help
expect_grep "--pushgateway" "$TMP/out" "help names the exporters"
expect_exit 2 "monitor: unknown option" -- "$BITNET" monitor --bogus
expect_one_line_err "unknown option"
expect_exit 2 "monitor --interval bad" -- "$BITNET" monitor --interval 5x
expect_exit 2 "monitor --listen without a value" -- "$BITNET" monitor --listen
expect_exit 2 "alerts without a subcommand" -- "$BITNET" alerts
expect_exit 2 "alerts bogus" -- "$BITNET" alerts bogus
expect_exit 2 "alerts test without a rule" -- "$BITNET" alerts test
expect_exit 0 "alerts --help" -- "$BITNET" alerts --help
expect_exit 1 "monitor --datadog without a key" -- "$BITNET" monitor --once --datadog
expect_grep "DD_API_KEY" "$TMP/err" "the missing key is named"
expect_exit 1 "monitor --cloudwatch without a region" -- "$BITNET" monitor --once --cloudwatch
expect_grep "region" "$TMP/err" "the missing region is named"
expect_exit 1 "monitor: a bad alert rule" -- env BITNET_ALERTS='[{"metric":"x{","op":">","threshold":1}]' \
    "$BITNET" monitor --once

# ---- one pass: the exposition, JSON, textfile ------------------------------------------------
mkdir -p "$TMP/textfile"
expect_exit 0 "monitor --once" -- "$BITNET" monitor --once --textfile "$TMP/textfile"
cp "$TMP/out" "$TMP/once.prom"
expect_grep "^# TYPE process_cpu_seconds_total counter" "$TMP/once.prom" "TYPE lines"
expect_grep "^# HELP bitnet_host_memory_total_bytes " "$TMP/once.prom" "HELP lines"
expect_grep "^bitnet_build_info{version=\"[0-9.]*\",kernels=\"" "$TMP/once.prom" "build info"
expect_grep "^process_resident_memory_bytes [1-9]" "$TMP/once.prom" "resident memory from /proc"
expect_grep "^bitnet_gpus [0-9]" "$TMP/once.prom" "GPU count (0 without NVML)"
promtool_check "$TMP/once.prom" "--once"
[ -f "$TMP/textfile/bitnet.prom" ] && ok "textfile DIR/bitnet.prom written" || bad "no textfile"
ls "$TMP/textfile" | grep -q tmp && bad "a temporary file was left" || ok "no temporary file left"
promtool_check "$TMP/textfile/bitnet.prom" "textfile"
# node_exporter has process_* of its own: the textfile renames ours (the scrape keeps them)
grep -q "^process_" "$TMP/textfile/bitnet.prom" && bad "textfile: process_* names" ||
    ok "textfile: no process_* names"
expect_grep "^bitnet_process_cpu_seconds_total " "$TMP/textfile/bitnet.prom" "textfile: bitnet_process_* instead"
expect_exit 0 "monitor --once --json" -- "$BITNET" monitor --once --json
"$JSONGET" metrics.0.name metrics.0.type <"$TMP/out" >"$TMP/j" && ok "--json parses" || bad "--json"
expect_grep "bitnet_build_info" "$TMP/j" "--json names the metrics"

# ---- the probe generation: generation metrics and histograms --------------------------------
M="$TMP/tiny.gguf"
if "$BITNET" synth --shape tiny -o "$M" --seed 3 >/dev/null 2>&1; then
    expect_exit 0 "monitor --once --probe-model" -- "$BITNET" monitor --once --probe-model "$M" \
        --probe-tokens 4 -t 1
    cp "$TMP/out" "$TMP/probe.prom"
    expect_grep "^bitnet_generation_tokens_per_second{model=\"tiny.gguf\"} [0-9]" "$TMP/probe.prom" \
        "probe tokens/s"
    expect_grep "^bitnet_generation_time_to_first_token_seconds_bucket{model=\"tiny.gguf\",le=\"+Inf\"} 1$" \
        "$TMP/probe.prom" "TTFT histogram"
    expect_grep "^bitnet_model_weight_bytes{model=\"tiny.gguf\"} [1-9]" "$TMP/probe.prom" "model weights"
    expect_grep "^bitnet_model_kv_cache_bytes{model=\"tiny.gguf\"} [1-9]" "$TMP/probe.prom" "KV cache"
    expect_grep "^bitnet_generation_tokens_total{model=\"tiny.gguf\"} 4$" "$TMP/probe.prom" \
        "generated tokens counted"
    # the run metrics llama-server and vLLM users look for
    expect_grep "^bitnet_prompt_tokens_total{model=\"tiny.gguf\"} [1-9]" "$TMP/probe.prom" "prompt tokens counted"
    expect_grep "^# TYPE bitnet_prompt_tokens_total counter" "$TMP/probe.prom" "prompt tokens: a counter"
    expect_grep "^bitnet_generation_time_per_output_token_seconds_count{model=\"tiny.gguf\"} 3$" \
        "$TMP/probe.prom" "time per output token: one per token after the first"
    expect_grep "^bitnet_generation_duration_seconds_bucket{model=\"tiny.gguf\",le=\"+Inf\"} 1$" \
        "$TMP/probe.prom" "end-to-end latency histogram"
    expect_grep "^bitnet_generation_requests_total{model=\"tiny.gguf\",result=\"length\"} 1$" \
        "$TMP/probe.prom" "requests by result (length: the token limit)"
    expect_grep "^bitnet_generation_seconds_total{model=\"tiny.gguf\"} [0-9]" "$TMP/probe.prom" \
        "generation time as a counter (for rates)"
    expect_exit 0 "monitor --once: a probe model that does not load" -- "$BITNET" monitor --once \
        --probe-model "$TMP/none.gguf"
    expect_grep "^bitnet_generation_requests_total{model=\"none.gguf\",result=\"error\"} 1$" "$TMP/out" \
        "requests by result (error)"
    n=$(check_histograms "$TMP/probe.prom") && [ "$n" -ge 2 ] &&
        ok "histograms: cumulative buckets, +Inf == _count ($n series)" || bad "histograms: $n"
    promtool_check "$TMP/probe.prom" "with the probe"
    # a model path that is not UTF-8 (Latin-1 e-grave): the label gets U+FFFD, the scrape stays valid
    L1="$TMP/mod$(printf '\350')le.gguf"
    cp "$M" "$L1"
    expect_exit 0 "monitor --once: a Latin-1 model name" -- "$BITNET" monitor --once --probe-model "$L1" \
        --probe-tokens 2 -t 1
    iconv -f UTF-8 -t UTF-8 <"$TMP/out" >/dev/null 2>&1 && ok "a Latin-1 model name: the exposition is UTF-8" ||
        bad "a Latin-1 model name: invalid UTF-8 in the exposition"
    expect_grep "model=\"mod$(printf '\357\277\275')le.gguf\"" "$TMP/out" "a Latin-1 model name: U+FFFD in the label"
    promtool_check "$TMP/out" "a Latin-1 model name"
    # the history's runs
    if "$BITNET" generate -m "$M" -p "Hello" -n 4 -t 1 --temp 0 >/dev/null 2>&1; then
        expect_exit 0 "monitor --once after a generate run" -- "$BITNET" monitor --once
        expect_grep '^bitnet_history_retained_runs{command="generate",status="ok"} 1$' "$TMP/out" \
            "runs in the history by command and status"
        expect_grep '^# TYPE bitnet_history_retained_runs gauge' "$TMP/out" \
            "runs in the history: a gauge named as a current count (it drops on prune)"
        expect_grep '^bitnet_history_last_run_tokens_per_second{command="generate",metric="gen_tokens_per_s"} [0-9]' \
            "$TMP/out" "tokens/s of the newest generate run"
        expect_grep '^bitnet_history_last_run_timestamp_seconds{command="generate"} [1-9]' "$TMP/out" \
            "time of the newest generate run"
    else
        bad "generate on the tiny model"
    fi
else
    bad "synth a tiny model"
fi

# the bundled model (a context of 256 tokens): the probe takes what the model allows
BUNDLED=$(ls "$(dirname "$0")"/../../assets/models/*.gguf 2>/dev/null | head -1)
if [ -n "$BUNDLED" ]; then
    expect_exit 0 "monitor --once -m the bundled model" -- "$BITNET" monitor --once --no-listen \
        -m "$BUNDLED" --probe-tokens 4 -t 1
    expect_grep "^bitnet_generation_requests_total{model=\"$(basename "$BUNDLED")\",result=\"[sl][a-z]*\"} 1$" \
        "$TMP/out" "the bundled model: the probe succeeds"
    expect_grep "^bitnet_generation_tokens_total{model=\"$(basename "$BUNDLED")\"} [1-9]" \
        "$TMP/out" "the bundled model: probe metrics out of the box"
    grep -q "context of" "$TMP/err" && bad "the probe asked for more context than the model has" ||
        ok "the probe stays within the model's context"
else
    skip "the bundled model: assets/models/*.gguf absent"
fi

# ---- the endpoint ------------------------------------------------------------------------------
start_monitor "$TMP/d.log" --listen 127.0.0.1:0 --interval 1
if [ -n "$MPORT" ]; then
    ok "the endpoint listens (port $MPORT)"
    "$HTTPREC" --fetch "$MPORT" /metrics >"$TMP/scrape.raw" && ok "GET /metrics" || bad "GET /metrics"
    tr -d '\r' <"$TMP/scrape.raw" >"$TMP/scrape.txt"
    grep -qi "^Content-Type: text/plain; version=0.0.4; charset=utf-8$" "$TMP/scrape.txt" &&
        ok "Content-Type of the text format 0.0.4" || bad "Content-Type: $(grep -i content-type "$TMP/scrape.txt")"
    sed '1,/^$/d' "$TMP/scrape.txt" >"$TMP/scrape.prom"
    promtool_check "$TMP/scrape.prom" "/metrics"
    "$HTTPREC" --fetch "$MPORT" /-/healthy >"$TMP/h" && ok "GET /-/healthy" || bad "healthy"
    "$HTTPREC" --fetch "$MPORT" /nope >"$TMP/h"; grep -q " 404 " "$TMP/h" && ok "404 elsewhere" || bad "404"
    "$HTTPREC" --fetch "$MPORT" /metrics POST >"$TMP/h"; grep -q " 405 " "$TMP/h" && ok "405 for POST" || bad "405"
    expect_exit 1 "a second monitor on the same history is refused" -- "$BITNET" monitor --no-listen
    expect_grep "another bitnet monitor" "$TMP/err" "... and says why"
    # ---- a real Prometheus scrapes it
    if command -v prometheus >/dev/null 2>&1; then
        PP=$("$HTTPREC" --free-port)
        cat >"$TMP/prom.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: bitnet
    static_configs:
      - targets: ['127.0.0.1:$MPORT']
EOF
        prometheus --config.file="$TMP/prom.yml" --storage.tsdb.path="$TMP/prom-data" \
            --web.listen-address="127.0.0.1:$PP" >"$TMP/prom.log" 2>&1 &
        PROM=$!
        PIDS="$PIDS $PROM"
        up="" i=0
        while [ "$i" -lt 60 ]; do # 30 s at most
            body "$PP" "/api/v1/query?query=up" 2>/dev/null | "$JSONGET" data.result.0.value.1 \
                >"$TMP/q" 2>/dev/null && up=$(cat "$TMP/q") && [ "$up" = 1 ] && break
            sleep 0.5
            i=$((i + 1))
        done
        [ "$up" = 1 ] && ok "Prometheus: up == 1" || { bad "Prometheus: up = '$up'"; tail -3 "$TMP/prom.log"; }
        body "$PP" "/api/v1/query?query=bitnet_host_cpus" |
            "$JSONGET" data.result.0.metric.job data.result.0.value.1 >"$TMP/q" &&
            grep -q "^bitnet$" "$TMP/q" && ok "Prometheus: bitnet_host_cpus scraped ($(tail -1 "$TMP/q"))" ||
            bad "Prometheus: bitnet_host_cpus not found"
        kill "$PROM" 2>/dev/null
        wait "$PROM" 2>/dev/null
    else
        skip "a real Prometheus scrape: prometheus absent"
    fi
    stop_monitor
    expect_grep "stopping after" "$TMP/d.log" "SIGTERM stops it"
else
    bad "the endpoint did not start: $(head -3 "$TMP/d.log")"
fi

# ---- the recorder as CloudWatch, Datadog, a webhook and a Pushgateway ---------------------------
P=$("$HTTPREC" --free-port)
start_rec "$P" "$TMP/rec.jsonl"
cat >"$BITNET_CONFIG" <<EOF
{"alerts": [
  {"name": "cpus", "metric": "bitnet_host_cpus", "op": ">=", "threshold": 1, "severity": "critical",
   "labels": {"team": "ml"}},
  {"name": "never", "metric": "bitnet_host_cpus", "op": "<", "threshold": 0, "for": "1m",
   "sinks": ["webhook"]}],
 "exporters": {"webhook": {"url": "http://127.0.0.1:$P/hook"},
               "cloudwatch": {"region": "eu-west-1", "namespace": "BitNetTest"}}}
EOF
export AWS_ACCESS_KEY_ID=AKIDTEST AWS_SECRET_ACCESS_KEY=secretkey DD_API_KEY=ddtestkey
"$BITNET" monitor --no-listen --interval 1 --duration 2.5 --cloudwatch \
    --cloudwatch-endpoint "http://127.0.0.1:$P" --datadog-endpoint "http://127.0.0.1:$P" \
    --pushgateway "http://127.0.0.1:$P" 2>"$TMP/f.log" && ok "monitor --duration ends" || bad "monitor --duration"
sleep 0.3
kill "$REC" 2>/dev/null
# line LINE-NUMBER PATHS...: fields of one recorded request
rec() { sed -n "$1p" "$TMP/rec.jsonl" | "$JSONGET" "$2"; }
nth() { grep -n "\"path\":\"$1" "$TMP/rec.jsonl" | head -"$2" | tail -1 | cut -d: -f1; }
cw=$(nth "/\"" 1) dd=$(nth /api/v2/series 1) ev=$(nth /api/v1/events 1) wh=$(nth /hook 1) pg=$(nth /metrics/job 1)
if [ -n "$cw" ]; then
    [ "$(rec "$cw" method)" = POST ] && ok "CloudWatch: POST /" || bad "CloudWatch method"
    rec "$cw" headers.authorization >"$TMP/auth"
    grep -Eq '^AWS4-HMAC-SHA256 Credential=AKIDTEST/[0-9]{8}/eu-west-1/monitoring/aws4_request, SignedHeaders=[a-z0-9;-]*content-type[a-z0-9;-]*, Signature=[0-9a-f]{64}$' "$TMP/auth" &&
        ok "CloudWatch: a well-formed SigV4 Authorization" || bad "CloudWatch Authorization: $(cat "$TMP/auth")"
    rec "$cw" headers.x-amz-date | grep -Eq '^[0-9]{8}T[0-9]{6}Z$' && ok "CloudWatch: X-Amz-Date" || bad "X-Amz-Date"
    rec "$cw" headers.content-type | grep -q "^application/x-www-form-urlencoded" &&
        ok "CloudWatch: form Content-Type" || bad "CloudWatch Content-Type"
    rec "$cw" body | tr '&' '\n' >"$TMP/cw.body"
    expect_grep "^Action=PutMetricData$" "$TMP/cw.body" "CloudWatch: Action=PutMetricData"
    expect_grep "^Version=2010-08-01$" "$TMP/cw.body" "CloudWatch: Version"
    expect_grep "^Namespace=BitNetTest$" "$TMP/cw.body" "CloudWatch: the namespace of the config"
    expect_grep "^MetricData.member.1.Timestamp=20[0-9-]*T[0-9%A:.]*Z$" "$TMP/cw.body" "CloudWatch: timestamps"
    expect_grep "^MetricData.member.[0-9]*.MetricName=bitnet_host_cpus$" "$TMP/cw.body" "CloudWatch: our metrics"
    n=$(grep -c "MetricName=" "$TMP/cw.body")
    [ "$n" -ge 10 ] && [ "$n" -le 1000 ] && ok "CloudWatch: $n datums (<= 1000)" || bad "CloudWatch datums: $n"
    grep -Ei "\.Value=(nan|[+-]?inf)" "$TMP/cw.body" && bad "CloudWatch: NaN or Inf sent" || ok "CloudWatch: no NaN or Inf"
else
    bad "CloudWatch: nothing recorded"
fi
if [ -n "$dd" ]; then
    [ "$(rec "$dd" headers.dd-api-key)" = ddtestkey ] && ok "Datadog: DD-API-KEY" || bad "DD-API-KEY"
    rec "$dd" headers.content-type | grep -q "^application/json" && ok "Datadog: JSON" || bad "Datadog Content-Type"
    rec "$dd" body | "$JSONGET" series.0.metric series.0.type series.0.points.0.timestamp \
        series.0.resources.0.type >"$TMP/dd" && ok "Datadog: v2 series body" || bad "Datadog body"
    expect_grep "^bitnet\." "$TMP/dd" "Datadog: bitnet.* metric names"
    [ "$(rec "$dd" body_bytes)" -le 512000 ] && ok "Datadog: within 512000 bytes" || bad "Datadog size"
else
    bad "Datadog series: nothing recorded"
fi
if [ -n "$ev" ]; then
    rec "$ev" body | "$JSONGET" title alert_type tags >"$TMP/ev" && ok "Datadog: v1 event" || bad "event body"
    expect_grep "^\[FIRING\] cpus$" "$TMP/ev" "Datadog event: title"
    expect_grep "^error$" "$TMP/ev" "Datadog event: critical -> error"
    expect_grep "team:ml" "$TMP/ev" "Datadog event: the rule's labels as tags"
    [ "$(rec "$ev" headers.dd-api-key)" = ddtestkey ] && ok "Datadog event: DD-API-KEY" || bad "event key"
else
    bad "Datadog events: nothing recorded"
fi
if [ -n "$wh" ]; then
    rec "$wh" body | "$JSONGET" rule state severity test labels.team >"$TMP/wh" && ok "webhook: JSON" || bad "webhook body"
    [ "$(tr '\n' ' ' <"$TMP/wh")" = "cpus firing critical false ml " ] && ok "webhook: the firing notification" ||
        bad "webhook: $(tr '\n' ' ' <"$TMP/wh")"
    [ "$(grep -c '"path":"/hook"' "$TMP/rec.jsonl")" = 1 ] && ok "webhook: one notification" || bad "webhook count"
else
    bad "webhook: nothing recorded"
fi
if [ -n "$pg" ]; then
    [ "$(rec "$pg" method)" = PUT ] && ok "Pushgateway: PUT" || bad "Pushgateway method"
    rec "$pg" path | grep -q "^/metrics/job/bitnet/instance/." && ok "Pushgateway: /metrics/job/bitnet/instance/HOST" ||
        bad "Pushgateway path"
    rec "$pg" headers.content-type | grep -q "^text/plain; version=0.0.4" && ok "Pushgateway: text format" ||
        bad "Pushgateway Content-Type"
    rec "$pg" body >"$TMP/pg.prom"
    grep -q "^process_" "$TMP/pg.prom" && bad "Pushgateway: process_* pushed" ||
        ok "Pushgateway: no process_* names (the Pushgateway has its own)"
    expect_grep "^bitnet_process_resident_memory_bytes [1-9]" "$TMP/pg.prom" "Pushgateway: bitnet_process_* instead"
else
    bad "Pushgateway: nothing recorded"
fi

# ---- the alert commands -----------------------------------------------------------------------------
expect_exit 0 "alerts list" -- "$BITNET" alerts list
expect_grep "^cpus  *firing " "$TMP/out" "alerts list: the state recorded"
expect_grep "^never  *inactive " "$TMP/out" "alerts list: an inactive rule"
expect_exit 0 "alerts list --json" -- "$BITNET" alerts list --json
"$JSONGET" alerts.0.rule alerts.0.state alerts.1.sinks.0 <"$TMP/out" >"$TMP/j" &&
    [ "$(tr '\n' ' ' <"$TMP/j")" = "cpus firing webhook " ] && ok "alerts list --json" || bad "list --json: $(cat "$TMP/j")"
expect_exit 0 "alerts history --json" -- "$BITNET" alerts history --json
"$JSONGET" transitions.0.rule transitions.0.from transitions.0.to <"$TMP/out" >"$TMP/j" &&
    [ "$(tr '\n' ' ' <"$TMP/j")" = "cpus inactive firing " ] && ok "alerts history: the transition stored" ||
    bad "history: $(cat "$TMP/j")"
expect_exit 0 "alerts history cpus" -- "$BITNET" alerts history cpus
expect_grep "cpus  *inactive  *firing" "$TMP/out" "alerts history: a table"
expect_exit 1 "alerts test: an unknown rule" -- "$BITNET" alerts test nope
start_rec "$P" "$TMP/test.jsonl"
expect_exit 0 "alerts test cpus --json" -- "$BITNET" alerts test cpus --json
"$JSONGET" holds sinks.webhook <"$TMP/out" >"$TMP/j"
[ "$(tr '\n' ' ' <"$TMP/j")" = "true delivered " ] && ok "alerts test: delivered" || bad "alerts test: $(cat "$TMP/j")"
sleep 0.2
grep '"path":"/hook"' "$TMP/test.jsonl" | head -1 | "$JSONGET" body | "$JSONGET" test rule >"$TMP/j"
[ "$(tr '\n' ' ' <"$TMP/j")" = "true cpus " ] && ok "alerts test: the notification is marked as a test" ||
    bad "test notification: $(cat "$TMP/j")"
kill "$REC" 2>/dev/null
wait "$REC" 2>/dev/null
expect_exit 1 "alerts test with the sink down" -- "$BITNET" alerts test cpus
expect_grep "spooled" "$TMP/out" "alerts test: spooled when the sink is down"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY DD_API_KEY

# ---- a sink down, then up: every spooled sample and notification exactly once --------------------
export BITNET_HISTORY_DB="$TMP/down.db"
P2=$("$HTTPREC" --free-port)
cat >"$BITNET_CONFIG" <<EOF
{"alerts": [{"name": "cpus", "metric": "bitnet_host_cpus", "op": ">=", "threshold": 1}]}
EOF
export AWS_ACCESS_KEY_ID=AKIDTEST AWS_SECRET_ACCESS_KEY=secretkey DD_API_KEY=ddtestkey AWS_REGION=us-east-2
start_monitor "$TMP/g.log" --listen 127.0.0.1:0 --interval 0.5 --backoff-max 0.5 --timeout 2 \
    --cloudwatch-endpoint "http://127.0.0.1:$P2" --datadog-endpoint "http://127.0.0.1:$P2" \
    --webhook "http://127.0.0.1:$P2/hook"
sleep 2
wait_grep "cannot deliver" "$TMP/g.log" 30 && ok "sink down: logged, spooling" || bad "sink down not logged"
"$HTTPREC" --fetch "$MPORT" /metrics >"$TMP/s1"
grep -q '^bitnet_monitor_spool_entries{sink="webhook"} 1' "$TMP/s1" &&
    grep -Eq '^bitnet_monitor_spool_entries\{sink="cloudwatch"\} [2-9]' "$TMP/s1" &&
    ok "sink down: samples and the notification wait in the spool" || bad "spool while down: $(grep spool_entries "$TMP/s1")"
start_rec "$P2" "$TMP/up.jsonl"
i=0 # until the notifications and a few passes more arrived (10 s at most)
while [ "$i" -lt 100 ]; do
    [ "$(grep -c '"path":"/"' "$TMP/up.jsonl")" -ge 3 ] && grep -q '"path":"/hook"' "$TMP/up.jsonl" &&
        grep -q '"path":"/api/v1/events"' "$TMP/up.jsonl" && break
    sleep 0.1
    i=$((i + 1))
done
stop_monitor
kill "$REC" 2>/dev/null
wait "$REC" 2>/dev/null
expect_grep "delivering again" "$TMP/g.log" "sink up: logged"
passes=$(sed -n 's/.*stopping after \([0-9]*\) collections; \([0-9]*\) entries.*/\1/p' "$TMP/g.log")
left=$(sed -n 's/.*stopping after \([0-9]*\) collections; \([0-9]*\) entries.*/\2/p' "$TMP/g.log")
grep '"path":"/"' "$TMP/up.jsonl" | while read -r l; do printf '%s\n' "$l" | "$JSONGET" body | tr '&' '\n'; done |
    awk -F= '/MetricName=bitnet_host_cpus$/ { split($1, a, "."); want[a[3]] = 1 }
             /\.Timestamp=/ { split($1, a, "."); ts[a[3]] = $2 }
             /^Action=/ { for (k in want) print ts[k]; delete want; delete ts }
             END { for (k in want) print ts[k] }' >"$TMP/cw.ts"
got=$(wc -l <"$TMP/cw.ts")
dups=$(sort "$TMP/cw.ts" | uniq -d | wc -l)
[ -n "$passes" ] && [ "$left" = 0 ] && [ "$got" -eq "$passes" ] && [ "$dups" -eq 0 ] &&
    ok "CloudWatch: every sample exactly once ($got of $passes collections, none twice)" ||
    bad "CloudWatch samples: $got received, $dups twice, $passes collections, $left left"
ddn=$(grep '"path":"/api/v2/series"' "$TMP/up.jsonl" | while read -r l; do printf '%s\n' "$l" | "$JSONGET" body; done |
    grep -o '"metric":"bitnet.host_cpus"' | wc -l)
[ "$ddn" -eq "$passes" ] && ok "Datadog: every sample exactly once ($ddn)" || bad "Datadog samples: $ddn of $passes"
[ "$(grep -c '"path":"/hook"' "$TMP/up.jsonl")" = 1 ] && ok "webhook: the spooled notification exactly once" ||
    bad "webhook notifications: $(grep -c '"path":"/hook"' "$TMP/up.jsonl")"
[ "$(grep -c '"path":"/api/v1/events"' "$TMP/up.jsonl")" = 1 ] && ok "Datadog: the spooled event exactly once" ||
    bad "Datadog events: $(grep -c '"path":"/api/v1/events"' "$TMP/up.jsonl")"

# ---- the spool is bounded: the oldest entries go first, counted and logged -------------------------
export BITNET_HISTORY_DB="$TMP/bound.db"
echo '{}' >"$BITNET_CONFIG"
for run in 1 2 3; do
    "$BITNET" monitor --once --spool-max 2 --timeout 1 --cloudwatch-endpoint "http://127.0.0.1:$P2" \
        >"$TMP/b$run.prom" 2>"$TMP/b$run.log"
done
expect_grep "spool full: dropped the 1 oldest samples entries of cloudwatch" "$TMP/b3.log" "drops are logged"
expect_grep '^bitnet_monitor_spool_dropped_total{sink="cloudwatch"} 1$' "$TMP/b3.prom" "drops are exported"
expect_grep '^bitnet_monitor_spool_entries{sink="cloudwatch"} 2$' "$TMP/b3.prom" "the spool keeps its bound"
# a notification waiting meanwhile is not made room for: samples never push it out
export BITNET_HISTORY_DB="$TMP/bound-note.db"
cpus_rule '["webhook"]'
for run in 1 2 3; do
    "$BITNET" monitor --once --spool-max 2 --timeout 1 --cloudwatch-endpoint "http://127.0.0.1:$P2" \
        --webhook "http://127.0.0.1:$P2/hook" >"$TMP/n$run.prom" 2>"$TMP/n$run.log"
done
expect_grep '^bitnet_monitor_spool_entries{sink="webhook"} 1$' "$TMP/n3.prom" \
    "a full spool keeps the firing notification"
expect_grep '^bitnet_monitor_spool_entries{sink="cloudwatch"} 2$' "$TMP/n3.prom" \
    "... and drops samples instead"
echo '{}' >"$BITNET_CONFIG"

# ---- a sink that never answers blocks nothing ---------------------------------------------------------
export BITNET_HISTORY_DB="$TMP/slow.db"
P3=$("$HTTPREC" --free-port)
start_rec "$P3" "$TMP/slow.jsonl" --delay-ms 20000
start_monitor "$TMP/i.log" --listen 127.0.0.1:0 --interval 0.3 --timeout 1 \
    --cloudwatch-endpoint "http://127.0.0.1:$P3"
slow=0
for k in 1 2 3 4 5; do
    t0=$(date +%s%N)
    "$HTTPREC" --fetch "$MPORT" /metrics >"$TMP/s3" || slow=1
    t1=$(date +%s%N)
    [ $(((t1 - t0) / 1000000)) -lt 1000 ] || slow=1
    sleep 0.3
done
[ "$slow" = 0 ] && ok "a slow sink: every scrape answered within 1 s" || bad "a scrape waited on the slow sink"
grep -Eq '^bitnet_monitor_collections_total [4-9]' "$TMP/s3" && ok "a slow sink: collections go on" ||
    bad "collections: $(grep collections_total "$TMP/s3")"
grep -q '^bitnet_monitor_sink_requests_total{sink="cloudwatch",result="error"} [1-9]' "$TMP/s3" &&
    ok "a slow sink: timeouts counted as errors" || bad "no timeout counted"
t0=$(date +%s)
stop_monitor
[ $(($(date +%s) - t0)) -le 3 ] && ok "a slow sink does not delay the stop" || bad "stop waited on the sink"
kill "$REC" 2>/dev/null

# ---- a slow sink delays no other: each sink has a sender of its own -------------------------------
# Datadog answers after 30 s (longer than the test); the webhook and CloudWatch answer at once
export BITNET_HISTORY_DB="$TMP/each.db"
cpus_rule
PD=$("$HTTPREC" --free-port)
start_rec "$PD" "$TMP/dd-slow.jsonl" --delay-ms 30000
RD=$REC
PW=$("$HTTPREC" --free-port)
start_rec "$PW" "$TMP/prompt.jsonl"
RW=$REC
start_monitor "$TMP/e.log" --listen 127.0.0.1:0 --interval 0.5 --timeout 20 \
    --datadog-endpoint "http://127.0.0.1:$PD" --webhook "http://127.0.0.1:$PW/hook" \
    --cloudwatch-endpoint "http://127.0.0.1:$PW"
i=0 # 10 s at most; the webhook waited 40 s behind Datadog's two requests before
while [ "$i" -lt 100 ]; do
    grep -q '"path":"/hook"' "$TMP/prompt.jsonl" 2>/dev/null &&
        [ "$(grep -c '"path":"/"' "$TMP/prompt.jsonl")" -ge 3 ] && break
    sleep 0.1
    i=$((i + 1))
done
grep -q '"path":"/api/v' "$TMP/dd-slow.jsonl" && ok "slow Datadog: a request is waiting" ||
    bad "slow Datadog: no request"
grep -q '"path":"/hook"' "$TMP/prompt.jsonl" && ok "slow Datadog: the webhook got its notification" ||
    bad "slow Datadog: the webhook waits behind it"
n=$(grep -c '"path":"/"' "$TMP/prompt.jsonl")
[ "$n" -ge 3 ] && ok "slow Datadog: CloudWatch goes on ($n requests)" || bad "slow Datadog: CloudWatch got $n"
stop_monitor
# one pass (--once) tries the sinks side by side as well (a new history: the rule fires again)
export BITNET_HISTORY_DB="$TMP/each-once.db"
: >"$TMP/prompt.jsonl"
expect_exit 0 "monitor --once with a slow Datadog" -- "$BITNET" monitor --once --no-listen --timeout 2 \
    --datadog-endpoint "http://127.0.0.1:$PD" --webhook "http://127.0.0.1:$PW/hook" \
    --cloudwatch-endpoint "http://127.0.0.1:$PW"
grep -q '"path":"/hook"' "$TMP/prompt.jsonl" 2>/dev/null && ok "--once: the webhook is not left behind" ||
    bad "--once: the webhook was left behind the slow Datadog"
kill "$RD" "$RW" 2>/dev/null

# ---- CloudWatch throttling is retried; a permanent rejection drops only the entry at fault --------
# cw_cpus FILE: the timestamps of the bitnet_host_cpus datums in the recorded CloudWatch requests
cw_cpus() {
    grep '"path":"/"' "$1" | while read -r l; do printf '%s\n' "$l" | "$JSONGET" body | tr '&' '\n'; done |
        awk -F= '/MetricName=bitnet_host_cpus$/ { split($1, a, "."); want[a[3]] = 1 }
                 /\.Timestamp=/ { split($1, a, "."); ts[a[3]] = $2 }
                 /^Action=/ { for (k in want) print ts[k]; delete want; delete ts }
                 END { for (k in want) print ts[k] }'
}
export BITNET_HISTORY_DB="$TMP/throttle.db"
echo '{}' >"$BITNET_CONFIG"
THROTTLE='<ErrorResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>'
PT=$("$HTTPREC" --free-port)
start_rec "$PT" "$TMP/throttle.jsonl" --first 3 --other-status 400 --other-body "$THROTTLE"
start_monitor "$TMP/t.log" --listen 127.0.0.1:0 --interval 0.5 --backoff-max 0.5 --timeout 2 \
    --cloudwatch-endpoint "http://127.0.0.1:$PT"
i=0 # three throttled requests, then three accepted ones (10 s at most)
while [ "$i" -lt 100 ] && [ "$(grep -c '"path":"/"' "$TMP/throttle.jsonl")" -lt 6 ]; do
    sleep 0.1
    i=$((i + 1))
done
stop_monitor
kill "$REC" 2>/dev/null
passes=$(sed -n 's/.*stopping after \([0-9]*\) collections; \([0-9]*\) entries.*/\1/p' "$TMP/t.log")
left=$(sed -n 's/.*stopping after \([0-9]*\) collections; \([0-9]*\) entries.*/\2/p' "$TMP/t.log")
tail -n +4 "$TMP/throttle.jsonl" >"$TMP/throttle-ok.jsonl" # the requests answered 200
got=$(cw_cpus "$TMP/throttle-ok.jsonl" | sort -u | wc -l)
[ -n "$passes" ] && [ "$((got + left))" -ge "$passes" ] && [ "$got" -ge 2 ] &&
    ok "CloudWatch throttled (HTTP 400 Throttling): retried, no collection lost ($got of $passes, $left waiting)" ||
    bad "CloudWatch throttled: $got delivered of $passes collections, $left waiting"
grep -q "rejected" "$TMP/t.log" && bad "throttling was taken for a rejection" ||
    ok "throttling is not a rejection"
expect_grep "Throttling" "$TMP/t.log" "the throttling is logged"
if command -v sqlite3 >/dev/null 2>&1; then # it edits the history by hand
    # a permanent rejection (InvalidParameterValue) of a batch: the entries are sent again in
    # smaller batches until the one at fault stands alone; only that one is dropped
    export BITNET_HISTORY_DB="$TMP/reject.db"
    DEAD=$("$HTTPREC" --free-port)
    for k in 1 2 3 4; do
        "$BITNET" monitor --once --no-listen --timeout 1 --cloudwatch-endpoint "http://127.0.0.1:$DEAD" \
            >/dev/null 2>&1
        [ "$k" = 2 ] && sqlite3 "$BITNET_HISTORY_DB" "INSERT INTO spool (sink, kind, payload, created_at)
            VALUES ('cloudwatch', 'samples', '{\"t\":$(date +%s)000,\"interval\":10,\"samples\":[{\"n\":\"bitnet_refused_marker\",\"k\":\"g\",\"v\":1,\"l\":{}}]}', $(date +%s)000)"
    done
    INVALID='<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameterValue</Code><Message>refused</Message></Error></ErrorResponse>'
    PR=$("$HTTPREC" --free-port)
    start_rec "$PR" "$TMP/reject.jsonl" --match bitnet_refused_marker --other-status 400 --other-body "$INVALID"
    expect_exit 0 "monitor --once: a batch with a refused entry" -- "$BITNET" monitor --once --no-listen \
        --timeout 2 --cloudwatch-endpoint "http://127.0.0.1:$PR"
    kill "$REC" 2>/dev/null
    grep -v bitnet_refused_marker "$TMP/reject.jsonl" >"$TMP/reject-ok.jsonl"
    got=$(cw_cpus "$TMP/reject-ok.jsonl" | sort -u | wc -l)
    [ "$got" -eq 5 ] && ok "a rejected batch: the 5 good collections delivered" || bad "a rejected batch: $got of 5 delivered"
    [ "$(grep -c "rejected for good" "$TMP/err")" = 1 ] && ok "a rejected batch: one entry dropped, logged once" ||
        bad "a rejected batch: $(grep -c "rejected for good" "$TMP/err") drops logged"
    expect_grep '^bitnet_monitor_sink_dropped_total{sink="cloudwatch",reason="rejected"} 1$' "$TMP/out" \
        "a rejected batch: the drop is counted"
    grep -q "could not be delivered" "$TMP/err" && bad "a rejected batch: entries left behind" ||
        ok "a rejected batch: nothing left in the spool"
else
    skip "a rejected batch: no sqlite3 command"
fi

# ---- what Datadog would refuse as too old (points > 1 h, events > 18 h) is dropped, not replayed --
if command -v sqlite3 >/dev/null 2>&1; then # it edits the history by hand
    export BITNET_HISTORY_DB="$TMP/old.db"
    cpus_rule '["datadog"]'
    DEAD=$("$HTTPREC" --free-port)
    for k in 1 2; do
        "$BITNET" monitor --once --no-listen --timeout 1 --datadog-endpoint "http://127.0.0.1:$DEAD" \
            >/dev/null 2>&1
    done
    sqlite3 "$BITNET_HISTORY_DB" "UPDATE spool SET created_at = created_at - 7200000 WHERE sink = 'datadog';
        UPDATE spool SET created_at = created_at - 19 * 3600000 WHERE sink = 'datadog-events'"
    PO=$("$HTTPREC" --free-port)
    start_rec "$PO" "$TMP/old.jsonl"
    expect_exit 0 "monitor --once: a spool older than Datadog takes" -- "$BITNET" monitor --once --no-listen \
        --timeout 2 --datadog-endpoint "http://127.0.0.1:$PO"
    kill "$REC" 2>/dev/null
    n=$(grep '"path":"/api/v2/series"' "$TMP/old.jsonl" | while read -r l; do printf '%s\n' "$l" | "$JSONGET" body; done |
        grep -o '"metric":"bitnet.host_cpus"' | wc -l)
    [ "$n" = 1 ] && ok "Datadog: points older than an hour are not sent (1 of 3 collections)" ||
        bad "Datadog: $n collections sent, 2 of them two hours old"
    grep -q '"path":"/api/v1/events"' "$TMP/old.jsonl" && bad "Datadog: a 19-hour-old event was sent" ||
        ok "Datadog: an event older than 18 hours is not sent"
    expect_grep "datadog: dropped 2 spooled entries older than" "$TMP/err" "old points: logged once"
    expect_grep "datadog-events: dropped 1 spooled entry older than" "$TMP/err" "an old event: logged"
    expect_grep '^bitnet_monitor_sink_dropped_total{sink="datadog",reason="too_old"} 2$' "$TMP/out" \
        "old points: counted"
    expect_grep '^bitnet_monitor_sink_dropped_total{sink="datadog-events",reason="too_old"} 1$' "$TMP/out" \
        "an old event: counted"
    grep -q "could not be delivered" "$TMP/err" && bad "old entries: some left in the spool" ||
        ok "old entries: the spool is empty afterwards"
else
    skip "entries older than Datadog takes: no sqlite3 command"
fi

# ---- a webhook that answers after our timeout: one Idempotency-Key, and few resends -------------
# it answers after 1.4 s, our timeout is 1 s: the first try times out (the receiver has the
# notification all the same); the next waits longer and gets the answer
export BITNET_HISTORY_DB="$TMP/late.db"
cpus_rule '["webhook"]'
PL=$("$HTTPREC" --free-port)
start_rec "$PL" "$TMP/late.jsonl" --delay-ms 1400
start_monitor "$TMP/l.log" --listen 127.0.0.1:0 --interval 0.5 --backoff-max 0.5 --timeout 1 \
    --webhook "http://127.0.0.1:$PL/hook"
wait_grep "delivering again" "$TMP/l.log" 150 # 15 s at most
sleep 1
stop_monitor
kill "$REC" 2>/dev/null
n=$(grep -c '"path":"/hook"' "$TMP/late.jsonl")
[ "$n" -ge 1 ] && [ "$n" -le 3 ] && ok "a late webhook: the notification sent $n times (at most 3)" ||
    bad "a late webhook: the notification sent $n times"
grep '"path":"/hook"' "$TMP/late.jsonl" | while read -r l; do
    printf '%s\n' "$l" | "$JSONGET" headers.idempotency-key | tr -d '"'
    printf '%s\n' "$l" | "$JSONGET" body | "$JSONGET" id
done | sort | uniq -c >"$TMP/keys"
[ "$(wc -l <"$TMP/keys")" = 1 ] && grep -Eq "^ *$((2 * n)) [0-9a-f]{16}$" "$TMP/keys" &&
    ok "a late webhook: every copy has the same Idempotency-Key, the notification's id" ||
    bad "a late webhook: keys and ids: $(tr '\n' ' ' <"$TMP/keys")"
expect_grep "waiting up to 2s" "$TMP/l.log" "a late webhook: the timeout is raised after a timeout"

# ---- SIGHUP reloads the rules and the sinks; the spool stays --------------------------------------
export BITNET_HISTORY_DB="$TMP/hup.db"
DEAD=$("$HTTPREC" --free-port)
PH=$("$HTTPREC" --free-port)
cat >"$BITNET_CONFIG" <<EOF
{"alerts": [{"name": "cpus", "metric": "bitnet_host_cpus", "op": ">=", "threshold": 1}],
 "exporters": {"webhook": {"url": "http://127.0.0.1:$DEAD/hook"}}}
EOF
start_monitor "$TMP/hup.log" --listen 127.0.0.1:0 --interval 0.5 --backoff-max 0.5 --timeout 1
wait_grep "webhook: cannot deliver" "$TMP/hup.log" 50 || bad "SIGHUP: the first webhook is not down"
start_rec "$PH" "$TMP/hup.jsonl"
cat >"$BITNET_CONFIG" <<EOF
{"alerts": [{"name": "cpus", "metric": "bitnet_host_cpus", "op": ">=", "threshold": 1},
            {"name": "load", "metric": "bitnet_host_load1", "op": ">=", "threshold": 0}],
 "exporters": {"webhook": {"url": "http://127.0.0.1:$PH/hook"}}}
EOF
kill -HUP "$MON"
i=0 # the spooled notification and the new rule's (10 s at most)
while [ "$i" -lt 100 ] && [ "$(grep -c '"path":"/hook"' "$TMP/hup.jsonl")" -lt 2 ]; do
    sleep 0.1
    i=$((i + 1))
done
kill -0 "$MON" 2>/dev/null && ok "SIGHUP: the monitor goes on" || bad "SIGHUP stopped the monitor"
expect_grep "configuration reloaded: 2 alert rules" "$TMP/hup.log" "SIGHUP: the new rules are logged"
grep '"path":"/hook"' "$TMP/hup.jsonl" | while read -r l; do
    printf '%s\n' "$l" | "$JSONGET" body | "$JSONGET" rule state
done | paste -d' ' - - | sort >"$TMP/hup.got"
[ "$(tr '\n' ',' <"$TMP/hup.got")" = "cpus firing,load firing," ] &&
    ok "SIGHUP: the new webhook got the spooled notification and the new rule's, once each" ||
    bad "SIGHUP: the new webhook got: $(tr '\n' ',' <"$TMP/hup.got")"
echo '{"alerts": [' >"$BITNET_CONFIG" # a broken file: the running configuration stays
kill -HUP "$MON"
wait_grep "not reloaded" "$TMP/hup.log" 50 && ok "SIGHUP with a broken file: logged, nothing changed" ||
    bad "SIGHUP with a broken file: not logged"
kill -0 "$MON" 2>/dev/null && ok "SIGHUP with a broken file: the monitor goes on" || bad "a broken file stopped it"
stop_monitor
kill "$REC" 2>/dev/null
echo '{}' >"$BITNET_CONFIG"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY DD_API_KEY AWS_REGION

# conversion jobs: every status exported, zeros included; a queued job is counted
expect_exit 0 "monitor --once: job counts" -- "$BITNET" monitor --once
expect_grep '^bitnet_conversion_jobs{status="failed"} 0$' "$TMP/out" "job statuses exported as zeros"
if command -v sqlite3 >/dev/null 2>&1; then
    sqlite3 "$BITNET_HISTORY_DB" "INSERT INTO jobs (kind, args, status, created_at) VALUES
        ('convert', '{}', 'queued', 1), ('convert', '{}', 'queued', 2), ('convert', '{}', 'failed', 3)"
    expect_exit 0 "monitor --once: queued jobs" -- "$BITNET" monitor --once
    expect_grep '^bitnet_conversion_jobs{status="queued"} 2$' "$TMP/out" "two queued jobs"
    expect_grep '^bitnet_conversion_jobs{status="failed"} 1$' "$TMP/out" "one failed job"
else
    echo "  SKIP queued job counts: no sqlite3 command"
fi

finish test_monitor
