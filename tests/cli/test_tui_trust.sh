# bitnet tui, the figures an operator must be able to trust (issue 18): the alert rules evaluated
# while the UI runs (by the monitor's code, with when and by whom, whether a monitor daemon runs
# and how its sinks deliver), and the same through `bitnet alerts eval`.
. tests/cli/lib.sh

TEST=test_tui_trust
. tests/cli/tui_lib.sh

# a config without the setup wizard's questions; the tiny model is not needed for alerts
mkdir -p "$XDG_CONFIG_HOME/bitnet"
echo '{}' >"$XDG_CONFIG_HOME/bitnet/config.json"

# ---- alerts: evaluated now, by whom, the daemon ---------------------------------------------
# cores holds at once; slow has no data (no generation ran); no monitor has ever run
"$BIN" config set alerts '[{"name":"cores","metric":"bitnet_host_cpus","op":">","threshold":0},
  {"name":"slow","metric":"bitnet_generation_tokens_per_second","op":"<","threshold":5,"for":"5m"}]' \
    >/dev/null 2>&1 || bad "config set alerts"
expect_exit 0 "alerts eval --json with no daemon" -- "$BIN" alerts eval --json
[ "$("$JSONGET" evaluated_by alerts.0.rule alerts.0.state alerts.1.state monitor <"$TMP/out" | tr '\n' ' ')" \
    = "alerts eval cores firing inactive null " ] \
    && ok "alerts eval: evaluated here (no daemon): cores firing, slow inactive" \
    || bad "alerts eval: $(tr '\n' ' ' <"$TMP/out")"
"$JSONGET" alerts.0.evaluated_ms <"$TMP/out" | grep -Eq '^[0-9]{13}$' \
    && ok "alerts eval: each rule says when it was evaluated" || bad "alerts eval: evaluated_ms"
"$BIN" alerts list >"$TMP/list" 2>&1
grep -Eq "^cores +firing" "$TMP/list" && ok "alerts eval recorded the transition (alerts list)" \
    || bad "alerts list after eval: $(cat "$TMP/list")"
expect_exit 2 "alerts eval RULE: usage error" -- "$BIN" alerts eval cores

# the UI evaluates the rules itself: a rule added now fires without any monitor
"$BIN" config set alerts '[{"name":"cores","metric":"bitnet_host_cpus","op":">","threshold":0},
  {"name":"slow","metric":"bitnet_generation_tokens_per_second","op":"<","threshold":5,"for":"5m"},
  {"name":"memory","metric":"bitnet_host_memory_total_bytes","op":">","threshold":0,"severity":"info"}]' \
    >/dev/null 2>&1 || bad "config set alerts (3 rules)"
start t --screen alerts
wait_for t "firing +memory " "alerts screen: a rule that holds fires with no monitor running (the TUI evaluates it)"
grep -Eq "evaluated by this TUI [0-9]+ s ago; no monitor daemon running \(nothing is notified" "$TMP/pane" \
    && ok "alerts screen: evaluated by this TUI, and no monitor daemon running" \
    || bad "alerts screen: who evaluated"
grep -Eq "memory +[0-9: -]+ +tui [0-9]+ s +info" "$TMP/pane" \
    && ok "alerts screen: each rule says when and by whom it was evaluated" \
    || bad "alerts screen: the rule's evaluation"
keys t F2
wait_for t "3 rules: 2 firing, 0 pending \(tui [0-9]+ s ago\)" "dashboard: the rules' states, by whom and when"

# a monitor daemon with a webhook that cannot be reached: the UI shows its evaluation and sinks
"$BIN" config set exporters.webhook.url http://127.0.0.1:9/hook >/dev/null 2>&1 \
    || bad "config set exporters.webhook.url"
"$BIN" config set alerts '[{"name":"cores","metric":"bitnet_host_cpus","op":">","threshold":0},
  {"name":"one","metric":"bitnet_host_cpus","op":">=","threshold":1}]' >/dev/null 2>&1 \
    || bad "config set alerts (for the daemon)"
"$BIN" monitor --no-listen --interval 1 2>"$TMP/mon.err" &
mon=$!
PIDS="$PIDS $mon"
i=0
while [ $i -lt 100 ] && ! [ -f "$BITNET_HISTORY_DB.monitor.json" ]; do sleep 0.1; i=$((i + 1)); done
[ -f "$BITNET_HISTORY_DB.monitor.json" ] && ok "monitor: writes its status beside the history" \
    || bad "monitor: no status file"
expect_exit 0 "alerts eval --json with a daemon" -- "$BIN" alerts eval --json
[ "$("$JSONGET" evaluated_by monitor.running monitor.pid <"$TMP/out" | tr '\n' ' ')" = "monitor true $mon " ] \
    && ok "alerts eval: the daemon's evaluation (running, its pid)" \
    || bad "alerts eval with a daemon: $(tr '\n' ' ' <"$TMP/out")"
keys t a r
wait_for t "evaluated by the monitor daemon \(pid $mon, every 1 s\) [0-9]+ s ago; sinks: webhook" \
    "alerts screen: evaluated by the running monitor daemon, and its sinks"
wait_for t "sinks: webhook [0-9]+ waiting \(last delivery never\)" \
    "alerts screen: the webhook's backlog (the firing notification it could not deliver)" 15
grep -Eq "firing +one +[0-9: -]+ +monitor [0-9]+ s " "$TMP/pane" \
    && ok "alerts screen: a rule evaluated by the monitor" || bad "alerts screen: monitor's rule"
kill -KILL "$mon"
wait "$mon" 2>/dev/null
keys t r
wait_for t "evaluated by this TUI [0-9]+ s ago; no monitor daemon running \(its last pass [0-9]+ s ago\)" \
    "alerts screen: a killed daemon is no longer taken as running"
keys t q
wait_for t "EXIT=0" "q quits"

finish test_tui_trust
