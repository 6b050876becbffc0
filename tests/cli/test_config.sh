# bitnet config, validate and doctor: get/set/unset/list/path round trips, environment
# overrides, bad config files (file and line named), wrong types, deployment validation,
# doctor's JSON and exit status. The user's files are never touched: XDG_CONFIG_HOME and
# XDG_DATA_HOME point into a temporary directory.
. tests/cli/lib.sh

export XDG_CONFIG_HOME="$TMP/cfg" XDG_DATA_HOME="$TMP/data" HOME="$TMP/home"
unset BITNET_CONFIG BITNET_THREADS BITNET_MODEL BITNET_TEMP BITNET_HISTORY_RETENTION_DAYS
unset DD_API_KEY AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_PROFILE AWS_SHARED_CREDENTIALS_FILE
unset AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
unset AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_REGION AWS_DEFAULT_REGION
CFG="$TMP/cfg/bitnet/config.json"

# ---- path, defaults -----------------------------------------------------------------------
expect_exit 0 "config path" -- "$BITNET" config path
[ "$(cat "$TMP/out")" = "$CFG" ] && ok "config path is under XDG_CONFIG_HOME" \
    || bad "config path: $(cat "$TMP/out")"
expect_exit 0 "config path --json" -- "$BITNET" config path --json
"$JSONGET" config exists data_dir <"$TMP/out" >"$TMP/j" && ok "config path --json parses" \
    || bad "config path --json"
[ "$(sed -n 3p "$TMP/j")" = "$TMP/data/bitnet" ] && ok "data_dir under XDG_DATA_HOME" \
    || bad "data_dir: $(sed -n 3p "$TMP/j")"
expect_exit 0 "config get threads (default)" -- "$BITNET" config get threads
[ "$(cat "$TMP/out")" = 0 ] && ok "default threads is 0" || bad "threads: $(cat "$TMP/out")"
[ ! -e "$CFG" ] && ok "reading creates no file" || bad "get created $CFG"
expect_exit 0 "config list --json" -- "$BITNET" config list --json
"$JSONGET" config.threads config.history.retention_days sources.threads exists <"$TMP/out" \
    >"$TMP/j" && ok "config list --json parses" || bad "config list --json"
[ "$(tr '\n' ' ' <"$TMP/j")" = "0 90 default false " ] && ok "list: defaults, no file" \
    || bad "list: $(tr '\n' ' ' <"$TMP/j")"

# ---- set, get, unset ------------------------------------------------------------------------
expect_exit 0 "config set threads 4" -- "$BITNET" config set threads 4
expect_exit 0 "config set history.retention_days 30" -- "$BITNET" config set history.retention_days 30
expect_exit 0 "config set temp 0.5" -- "$BITNET" config set temp 0.5
expect_exit 0 "config set exporters.datadog.enabled yes" -- "$BITNET" config set exporters.datadog.enabled yes
expect_exit 0 "config set seed -1 (a negative value is not an option)" -- "$BITNET" config set seed -1
"$JSONGET" threads history.retention_days temp exporters.datadog.enabled <"$CFG" >"$TMP/j" \
    && ok "the file is JSON with nested sections" || bad "the file: $(cat "$CFG")"
[ "$(tr '\n' ' ' <"$TMP/j")" = "4 30 0.5 true " ] && ok "the file holds the values set" \
    || bad "file values: $(tr '\n' ' ' <"$TMP/j")"
expect_exit 0 "config get threads" -- "$BITNET" config get threads
[ "$(cat "$TMP/out")" = 4 ] && ok "get returns the value set" || bad "get: $(cat "$TMP/out")"
expect_exit 0 "config get --json" -- "$BITNET" config get history.retention_days --json
"$JSONGET" key value source <"$TMP/out" >"$TMP/j" && [ "$(tr '\n' ' ' <"$TMP/j")" = \
    "history.retention_days 30 file " ] && ok "get --json: key, value, source" \
    || bad "get --json: $(tr '\n' ' ' <"$TMP/j")"
expect_exit 0 "config get a section" -- "$BITNET" config get exporters.datadog
"$JSONGET" enabled site <"$TMP/out" >/dev/null && ok "a section prints as JSON" \
    || bad "section: $(cat "$TMP/out")"
# other keys are kept, unknown ones included
sed 's/^{/{\n\t"x_custom": "kept",/' "$CFG" >"$TMP/c2" && cp "$TMP/c2" "$CFG"
expect_exit 0 "set keeps other keys" -- "$BITNET" config set ctx 2048
"$JSONGET" x_custom threads ctx <"$CFG" >"$TMP/j" && [ "$(tr '\n' ' ' <"$TMP/j")" = \
    "kept 4 2048 " ] && ok "unknown and other keys survive a set" || bad "after set: $(cat "$CFG")"
ls "$TMP/cfg/bitnet" | grep -v '^config.json$' >"$TMP/stray"
[ ! -s "$TMP/stray" ] && ok "no temporary file left behind" || bad "left: $(cat "$TMP/stray")"
expect_exit 0 "config unset" -- "$BITNET" config unset history.retention_days --json
"$JSONGET" removed <"$TMP/out" | grep -q true && ok "unset --json says removed" || bad "unset --json"
expect_exit 0 "get after unset" -- "$BITNET" config get history.retention_days
[ "$(cat "$TMP/out")" = 90 ] && ok "unset restores the default" || bad "after unset: $(cat "$TMP/out")"
expect_exit 0 "unset of an absent key" -- "$BITNET" config unset history.retention_days
expect_exit 0 "config set model (relative)" -- sh -c "cd '$TMP' && '$PWD/$BITNET' config set model m.gguf"
"$JSONGET" model <"$CFG" | grep -q "^$TMP/m.gguf\$" && ok "a relative path is stored absolute" \
    || bad "model: $("$JSONGET" model <"$CFG")"

# ---- environment overrides -------------------------------------------------------------------
expect_exit 0 "BITNET_THREADS overrides" -- env BITNET_THREADS=7 "$BITNET" config get threads --json
"$JSONGET" value source <"$TMP/out" >"$TMP/j" && [ "$(tr '\n' ' ' <"$TMP/j")" = "7 env " ] \
    && ok "env value and source" || bad "env: $(tr '\n' ' ' <"$TMP/j")"
expect_exit 0 "generic rule: BITNET_EXPORTERS_DATADOG_SITE" -- \
    env BITNET_EXPORTERS_DATADOG_SITE=datadoghq.eu "$BITNET" config get exporters.datadog.site
[ "$(cat "$TMP/out")" = datadoghq.eu ] && ok "a.b.c -> BITNET_A_B_C" || bad "site: $(cat "$TMP/out")"
expect_exit 1 "a bad override" -- env BITNET_THREADS=lots "$BITNET" config get threads
expect_grep "BITNET_THREADS: expected an integer" "$TMP/err" "the error names the variable"
expect_exit 0 "set with an override in force" -- env BITNET_THREADS=7 "$BITNET" config set threads 3
expect_grep "overrides" "$TMP/err" "set notes the override"
expect_exit 0 "BITNET_CONFIG names another file" -- env BITNET_CONFIG="$TMP/other.json" "$BITNET" config path
[ "$(cat "$TMP/out")" = "$TMP/other.json" ] && ok "BITNET_CONFIG" || bad "BITNET_CONFIG: $(cat "$TMP/out")"

# ---- usage errors and wrong types: exit 2, the file unchanged -----------------------------------
cp "$CFG" "$TMP/before"
expect_exit 2 "set threads -3" -- "$BITNET" config set threads -3
expect_grep "threads: expected an integer from 0 to 4096" "$TMP/err" "the type error names the key"
expect_one_line_err "wrong type"
expect_exit 2 "set threads abc" -- "$BITNET" config set threads abc
expect_exit 2 "set top_p 2" -- "$BITNET" config set top_p 2
expect_exit 2 "set a boolean to maybe" -- "$BITNET" config set exporters.cloudwatch.enabled maybe
expect_exit 2 "set monitor.listen without a port" -- "$BITNET" config set monitor.listen localhost
expect_exit 2 "set alerts to bad JSON" -- "$BITNET" config set alerts '[{'
expect_exit 2 "set alerts with a bad operator" -- "$BITNET" config set alerts \
    '[{"metric":"m","op":"=~","threshold":1}]'
expect_exit 2 "set an unknown key" -- "$BITNET" config set threadz 4
expect_exit 2 "get an unknown key" -- "$BITNET" config get nope
expect_exit 2 "config without an action" -- "$BITNET" config
expect_exit 2 "config frob" -- "$BITNET" config frob
expect_exit 2 "config set with one argument" -- "$BITNET" config set threads
expect_exit 2 "config get with two" -- "$BITNET" config get a b
expect_exit 2 "config --frob" -- "$BITNET" config --frob
cmp -s "$CFG" "$TMP/before" && ok "failed sets left the file unchanged" || bad "the file changed"
expect_exit 0 "config set alerts (valid)" -- "$BITNET" config set alerts \
    '[{"name":"slow","metric":"bitnet_generation_tokens_per_second","op":"<","threshold":5,"for":"2m"}]'
"$JSONGET" alerts.0.for <"$CFG" | grep -q 2m && ok "alerts stored as JSON" || bad "alerts"

# ---- a bad config file: the error names the file and the line or the key -------------------------
printf '{\n  "threads": 4,\n  "ctx": 12,,\n}\n' >"$CFG"
expect_exit 1 "syntax error" -- "$BITNET" config get threads
expect_grep "$CFG:3:" "$TMP/err" "the error names the file and line"
expect_one_line_err "syntax error"
expect_exit 1 "set refuses to rewrite a broken file" -- "$BITNET" config set threads 2
grep -q ',,' "$CFG" && ok "the broken file was left alone" || bad "the broken file was rewritten"
printf '{"threads": "many"}\n' >"$CFG"
expect_exit 1 "wrong type in the file" -- "$BITNET" config list
expect_grep "$CFG: threads: expected an integer" "$TMP/err" "the error names the file and key"
expect_exit 0 "set repairs a wrong value" -- "$BITNET" config set threads 2
expect_exit 0 "and the file loads again" -- "$BITNET" config get threads
printf '[1, 2]\n' >"$CFG"
expect_exit 1 "not an object" -- "$BITNET" config get threads
expect_grep "expected a JSON object" "$TMP/err" "top level must be an object"
rm -f "$CFG"

# ---- validate -------------------------------------------------------------------------------
M="$TMP/tiny.gguf"
"$BITNET" synth --shape tiny -o "$M" --seed 1 >/dev/null 2>&1 || bad "synth for validate"
PORT=$((20000 + $$ % 20000))
cat >"$TMP/good.json" <<EOF
{
  "model": "tiny.gguf",
  "threads": 1,
  "data_dir": "$TMP/data2",
  "monitor": {"listen": "127.0.0.1:$PORT"},
  "alerts": [{"name": "slow", "metric": "bitnet_generation_tokens_per_second", "op": "<", "threshold": 5, "for": "1m30s"}],
  "exporters": {"datadog": {"enabled": true, "api_key_env": "MY_DD_KEY"},
                "cloudwatch": {"enabled": true, "region": "eu-west-1", "namespace": "BitNet/test"}}
}
EOF
mkdir -p "$TMP/home/.aws"
printf '[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = s3cr3t\n' \
    >"$TMP/home/.aws/credentials"
expect_exit 0 "validate a good config" -- env MY_DD_KEY=k "$BITNET" validate "$TMP/good.json"
expect_grep "valid (0 errors" "$TMP/out" "validate says valid"
expect_exit 0 "validate --json" -- env MY_DD_KEY=k "$BITNET" validate "$TMP/good.json" --json
"$JSONGET" valid summary.errors findings <"$TMP/out" >"$TMP/j" && [ "$(head -2 "$TMP/j" | \
    tr '\n' ' ')" = "true 0 " ] && ok "validate --json: valid, no errors" || bad "validate --json: $(cat "$TMP/j")"
expect_exit 1 "validate without the Datadog key" -- "$BITNET" validate "$TMP/good.json" --json
"$JSONGET" findings.0.key findings.0.severity <"$TMP/out" >"$TMP/j"
[ "$(tr '\n' ' ' <"$TMP/j")" = "exporters.datadog.api_key_env error " ] \
    && ok "the missing key is named" || bad "datadog: $(tr '\n' ' ' <"$TMP/j")"
rm "$TMP/home/.aws/credentials"
expect_exit 1 "validate without AWS credentials" -- env MY_DD_KEY=k "$BITNET" validate "$TMP/good.json"
expect_grep "exporters.cloudwatch: .*credentials" "$TMP/out" "missing AWS credentials named"
expect_exit 0 "AWS credentials from the environment" -- env MY_DD_KEY=k AWS_ACCESS_KEY_ID=a \
    AWS_SECRET_ACCESS_KEY=b "$BITNET" validate "$TMP/good.json"

cat >"$TMP/bad.json" <<EOF
{
  "threads": "many",
  "modle": "x.gguf",
  "model": "$TMP/missing.gguf",
  "monitor": {"listen": "127.0.0.1:99999"},
  "history": {"retention_days": -1},
  "alerts": [{"name": "a", "metric": "m", "op": "=>", "threshold": "high", "for": "soon"}],
  "exporters": {"cloudwatch": {"enabled": true, "namespace": "AWS/EC2", "region": "x"}}
}
EOF
expect_exit 1 "validate a bad config" -- "$BITNET" validate "$TMP/bad.json" --json
for k in threads modle model monitor.listen history.retention_days "alerts\[0\].op" \
    "alerts\[0\].threshold" "alerts\[0\].for"; do
    grep -q "\"key\":.*\"$k\"" "$TMP/out" && ok "finding for $k" || bad "no finding for $k"
done
"$JSONGET" valid <"$TMP/out" | grep -q false && ok "valid is false" || bad "valid"
# the monitor's own checks run on a file that loads
printf '{"exporters": {"cloudwatch": {"enabled": true, "namespace": "AWS/EC2", "region": "x"}}}\n' \
    >"$TMP/ns.json"
expect_exit 1 "validate: a reserved CloudWatch namespace" -- env AWS_ACCESS_KEY_ID=a \
    AWS_SECRET_ACCESS_KEY=b "$BITNET" validate "$TMP/ns.json" --json
grep -q '"key":.*"exporters.cloudwatch"' "$TMP/out" && grep -q 'AWS/' "$TMP/out" \
    && ok "finding for the namespace" || bad "namespace: $(cat "$TMP/out")"
printf '{\n  "a": 1\n  "b": 2\n}\n' >"$TMP/syn.json"
expect_exit 1 "validate: syntax error" -- "$BITNET" validate "$TMP/syn.json"
expect_grep "syn.json:3:3: error: not valid JSON" "$TMP/out" "file:line:col: error"
expect_exit 1 "validate: a model that is not a bitnet model" -- sh -c \
    "echo '{\"model\": \"$PWD/tests/data/ggml-vocab-gpt-2.gguf\"}' >'$TMP/v.json'; '$BITNET' validate '$TMP/v.json'"
expect_grep "architecture 'gpt2'" "$TMP/out" "the architecture is named"
expect_exit 1 "validate: a missing file" -- "$BITNET" validate "$TMP/none.json"
expect_exit 2 "validate: two files" -- "$BITNET" validate a.json b.json
expect_exit 2 "validate: bad option" -- "$BITNET" validate --frob
# a port in use
if command -v python3 >/dev/null 2>&1; then
    printf '{"monitor": {"listen": "127.0.0.1:%s"}}\n' "$PORT" >"$TMP/port.json"
    python3 -c "
import socket, subprocess, sys
s = socket.socket(); s.bind(('127.0.0.1', $PORT)); s.listen(1)
r = subprocess.run(['$BITNET', 'validate', '$TMP/port.json'], capture_output=True, text=True)
sys.stdout.write(r.stdout); sys.exit(r.returncode)" >"$TMP/out" 2>&1
    [ $? -eq 1 ] && grep -q "in use" "$TMP/out" && ok "a port in use is an error" \
        || bad "port in use: $(cat "$TMP/out")"
fi

# ---- doctor ---------------------------------------------------------------------------------
"$BITNET" doctor --quick --json >"$TMP/out" 2>"$TMP/err"; rc=$?
"$JSONGET" checks.0.name checks.0.status checks.0.detail checks.0.hint summary.pass summary.warn \
    summary.fail <"$TMP/out" >"$TMP/j" && ok "doctor --json parses (checks, summary)" || bad "doctor --json"
fails=$(sed -n 7p "$TMP/j")
{ [ "$fails" -eq 0 ] && [ $rc -eq 0 ]; } || { [ "$fails" -gt 0 ] && [ $rc -eq 1 ]; } \
    && ok "doctor exit status $rc agrees with $fails failures" || bad "doctor: exit $rc, $fails failures"
for name in lib_cjson lib_pcre2 config data_dir disk_space cpu_isa bundled_model; do
    grep -q "\"name\":.*\"$name\"" "$TMP/out" && ok "doctor checks $name" || bad "doctor: no $name"
done
[ -d "$TMP/data/bitnet" ] && ok "doctor created the data directory" || bad "no data directory"
# a library the program does not link is not reported; one in the process is, with its version
if ! ldd "$BITNET" 2>/dev/null | grep -q libcurl; then
    grep -q '"lib_curl"' "$TMP/out" && bad "doctor reports libcurl, which is not linked" \
        || ok "doctor reports only linked libraries"
fi
if ldconfig -p 2>/dev/null | grep -q 'libcurl.so.4 '; then
    env LD_PRELOAD=libcurl.so.4 ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
        "$BITNET" doctor --quick --json >"$TMP/out" 2>&1
    grep -q '"detail":.*"libcurl/[0-9]' "$TMP/out" && ok "a library in the process is reported" \
        || bad "libcurl preloaded but not reported"
fi
# a bad config is a FAIL and exit 1
printf '{"threads": -2}\n' >"$CFG"
expect_exit 1 "doctor with a bad config" -- "$BITNET" doctor --quick
expect_grep "^FAIL  config" "$TMP/out" "the config check fails"
rm -f "$CFG"
# a bundled model: checked against SHA256SUMS (a copy of the binary beside assets/models)
mkdir -p "$TMP/tree/build" "$TMP/tree/assets/models"
cp "$BITNET" "$TMP/tree/build/bitnet" && cp "$M" "$TMP/tree/assets/models/tiny.gguf"
expect_exit 0 "doctor: a bundled model without SHA256SUMS" -- "$TMP/tree/build/bitnet" doctor --quick
expect_grep "tiny.gguf" "$TMP/out" "the bundled model is found"
if command -v sha256sum >/dev/null 2>&1; then
    (cd "$TMP/tree/assets/models" && sha256sum tiny.gguf >SHA256SUMS)
    "$TMP/tree/build/bitnet" doctor --json >"$TMP/out" 2>&1
    grep -q "sha256 OK" "$TMP/out" && ok "the sha256 matches SHA256SUMS" || bad "sha256: $(grep bundled -A2 "$TMP/out")"
    printf 'x' >>"$TMP/tree/assets/models/tiny.gguf"
    "$TMP/tree/build/bitnet" doctor --json >"$TMP/out" 2>&1; rc=$?
    [ $rc -eq 1 ] && grep -q "sha256 mismatch" "$TMP/out" && ok "a damaged model is a FAIL" \
        || bad "damaged model: exit $rc"
fi
expect_exit 2 "doctor --frob" -- "$BITNET" doctor --frob

# the monitor's keys are in the schema: typed, validated, overridable
unset BITNET_CONFIG
expect_exit 0 "config set monitor.interval 30s" -- "$BITNET" config set monitor.interval 30s
expect_exit 0 "config get monitor.interval" -- "$BITNET" config get monitor.interval
[ "$(cat "$TMP/out")" = "30s" ] && ok "monitor.interval stored" || bad "monitor.interval: $(cat "$TMP/out")"
expect_exit 2 "monitor.interval below 100ms" -- "$BITNET" config set monitor.interval 50ms
expect_exit 2 "monitor.interval not a duration" -- "$BITNET" config set monitor.interval soon
expect_exit 2 "monitor.spool_max 0" -- "$BITNET" config set monitor.spool_max 0
expect_exit 0 "exporters.webhook.url" -- "$BITNET" config set exporters.webhook.url http://127.0.0.1:9/hook
expect_exit 2 "exporters.webhook.url not a URL" -- "$BITNET" config set exporters.webhook.url ftp://x
printf '{"alerts": [{"name": "slow", "metric": "bitnet_host_load1", "op": "<", "threshold": 1, "labels": {"team": "ml"}, "sinks": ["log", "webhook"]}]}\n' >"$TMP/alerts.json"
expect_exit 0 "alert rule with labels and sinks validates" -- "$BITNET" validate "$TMP/alerts.json"
printf '{"alerts": [{"name": "x", "metric": "m", "op": "<", "threshold": 1, "sinks": ["pager"]}]}\n' >"$TMP/badsink.json"
expect_exit 1 "an unknown sink is an error" -- "$BITNET" validate "$TMP/badsink.json"
expect_grep "alerts\[0\].sinks" "$TMP/out" "the error names alerts[0].sinks"

# ---- validate and monitor agree: one check, the monitor's own -----------------------------
# each file is validated, then given to `bitnet monitor --once`: the same verdict for both
unset BITNET_CONFIG
mkdir -p "$TMP/agree" "$TMP/prom"
printf 'token' >"$TMP/agree/token"
rule() { printf '{"name": "%s", "metric": "%s", "op": ">", "threshold": 1}' "$1" "$2"; }
agree_case() { # NAME EXPECTED-EXIT JSON [VAR=VALUE...]
    name=$1 want=$2
    printf '%s\n' "$3" >"$TMP/agree/$name.json"
    shift 3
    env "$@" "$BITNET" validate "$TMP/agree/$name.json" >"$TMP/agree/$name.v" 2>&1
    v=$?
    env "$@" BITNET_CONFIG="$TMP/agree/$name.json" BITNET_HISTORY_DB="$TMP/agree/h.db" \
        "$BITNET" monitor --once --no-listen -q >/dev/null 2>"$TMP/agree/$name.m"
    m=$?
    if [ "$v" -eq "$want" ] && [ "$m" -eq "$want" ]; then
        ok "validate and monitor agree: $name (exit $want)"
    else
        bad "$name: validate exit $v, monitor exit $m, wanted $want"
        sed 's/^/       /' "$TMP/agree/$name.v" "$TMP/agree/$name.m" | head -6
    fi
}
L="\"monitor\": {\"listen\": \"127.0.0.1:$((PORT + 1))\"}, \"data_dir\": \"$TMP/data2\""
CW='"exporters": {"cloudwatch": {"enabled": true, "region": "eu-west-1"}}'
agree_case good 0 "{$L, \"alerts\": [$(rule a bitnet_host_load1), $(rule b bitnet_monitor_errors_total)],
    \"exporters\": {\"prometheus\": {\"textfile\": \"$TMP/prom\"}}}"
# item 2: a rule on a metric the monitor never exports; histograms' _sum and _count are samples
agree_case unknown-metric 1 "{$L, \"alerts\": [$(rule a bitnet_host_load1), $(rule b bitnet_nonexistent)]}"
agree_case histogram-count 0 "{$L, \"alerts\": [$(rule a bitnet_generation_duration_seconds_count)]}"
agree_case histogram-bucket 1 "{$L, \"alerts\": [$(rule a bitnet_generation_duration_seconds_bucket)]}"
agree_case duplicate-names 1 "{$L, \"alerts\": [$(rule a bitnet_host_load1), $(rule a bitnet_host_load5)]}"
agree_case regex-selector 1 "{$L, \"alerts\": [$(rule a 'bitnet_host_load1{x=~\\"y\\"}')]}"
agree_case textfile-folder 1 "{$L, \"exporters\": {\"prometheus\": {\"textfile\": \"$TMP/none/bitnet.prom\"}}}"
agree_case textfile-missing-dir 1 "{$L, \"exporters\": {\"prometheus\": {\"textfile\": \"$TMP/none/\"}}}"
agree_case web-identity-unreachable 1 "{$L, $CW}" AWS_WEB_IDENTITY_TOKEN_FILE="$TMP/agree/token" \
    AWS_ROLE_ARN=arn:aws:iam::123456789012:role/r AWS_ENDPOINT_URL_STS=http://127.0.0.1:1 \
    AWS_EC2_METADATA_DISABLED=true
agree_case container-unreachable 1 "{$L, $CW}" \
    AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:1/creds AWS_EC2_METADATA_DISABLED=true
agree_case env-credentials 0 "{$L, $CW}" AWS_ACCESS_KEY_ID=a AWS_SECRET_ACCESS_KEY=b
grep -q "alerts\[1\].name: the same name as alerts\[0\]" "$TMP/agree/duplicate-names.v" \
    && ok "validate names the duplicate rule" || bad "duplicate: $(cat "$TMP/agree/duplicate-names.v")"
grep -q "alerts\[1\].metric: 'bitnet_nonexistent' is not a metric bitnet monitor exports" \
    "$TMP/agree/unknown-metric.v" && grep -q "bitnet_nonexistent" "$TMP/agree/unknown-metric.m" \
    && ok "both name the unknown metric" || bad "unknown metric: $(cat "$TMP/agree/unknown-metric.v")"
grep -q "does not exist" "$TMP/agree/textfile-folder.m" && ok "monitor names the missing folder" \
    || bad "textfile: $(cat "$TMP/agree/textfile-folder.m")"
# config set checks rules as validate does (the monitor's registry), and keeps the file as it was
"$BITNET" config get alerts >"$TMP/alerts.before" 2>&1
expect_exit 2 "config set alerts: a rule on a metric the monitor never exports" -- \
    "$BITNET" config set alerts '[{"name":"x","metric":"bitnet_nonexistent","op":">","threshold":1}]'
expect_grep "alerts\[0\].metric: 'bitnet_nonexistent' is not a metric bitnet monitor exports" "$TMP/err" \
    "  ... names the metric"
"$BITNET" config get alerts >"$TMP/alerts.after" 2>&1
cmp -s "$TMP/alerts.before" "$TMP/alerts.after" && ok "  ... the config is unchanged" \
    || bad "config set alerts changed the file: $(cat "$TMP/alerts.after")"
expect_exit 0 "config set alerts: a rule on a histogram's _count" -- \
    "$BITNET" config set alerts '[{"name":"x","metric":"bitnet_generation_duration_seconds_count","op":">","threshold":1}]'

finish test_config
